"""Running a submission's functions outside its kernel, where the course cannot do them.

``course grade`` does not trust the kernel a submission ran in: anything there, the checks'
own watchers included, is the student's to change. So the kernel's last cell only hands over
its answers (``protocol.hand_over``: values as plain data, functions pickled *by value* with
cloudpickle) and runs nothing. Then, after that kernel is gone, the worker starts this module
in a fresh process (``python -m course.teach.replay``) whose ``course`` package is a copy in
which every implementation of the graded exercises (``FunctionKey.forbidden``) is rewritten to
raise (``guard_package``), and which, like every grading process, has no answer keys. There
the functions run on the hidden inputs, which only this process is given (the kernel never
sees them): an answer that borrows the course's implementation, however it reaches it (an
alias, a thread, the profile hook switched off, the code object copied), meets a guard or is
recognised by its code (``fingerprints``) and records what it used.
"""

from __future__ import annotations

import ast
import gc
import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import CodeType
from typing import Any

from course.teach import plaindata

#: Written by the kernel's last cell when it has handed everything over.
INDEX_NAME = "index.json"
#: The largest pickled function read back (a function that drags a model along is a few MB).
MAX_PICKLE_BYTES = 256 * 2**20


# -- the guarded package ------------------------------------------------------------------------

def _guard_statement(label: str) -> ast.stmt:
    return ast.parse(f"raise __import__('course.teach.protocol', fromlist=['borrowed'])"
                     f".borrowed({label!r})").body[0]


def _guard_body(node: ast.FunctionDef | ast.AsyncFunctionDef, label: str) -> None:
    first = node.body[0]
    docstring = (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
                 and isinstance(first.value.value, str))
    node.body = [first, _guard_statement(label)] if docstring else [_guard_statement(label)]


def guard_source(source: str, names: Sequence[str], label_of: dict[str, str]) -> str | None:
    """``source`` with each top-level function or class called one of ``names`` made to raise
    (a class: each of its methods), or None when it defines none of them (an alias, say)."""
    tree = ast.parse(source)
    changed = False
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name in names:
            _guard_body(node, label_of[node.name])
            changed = True
        elif isinstance(node, ast.ClassDef) and node.name in names:
            for member in ast.walk(node):
                if isinstance(member, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    _guard_body(member, label_of[node.name])
            changed = True
    return ast.unparse(tree) + "\n" if changed else None


def guard_package(package: Path, dest: Path, forbidden: Sequence[str]) -> Path:
    """Copy the ``course`` package at ``package`` into ``dest/course`` with the ``forbidden``
    implementations (``"module:function"`` names) rewritten to raise; returns ``dest``."""
    def link_or_copy(source: str, target: str) -> object:
        try:  # the weights need not be copied again: the rewritten files are unlinked first
            os.link(source, target)
            return target
        except OSError:
            return shutil.copy2(source, target)

    shutil.copytree(package, dest / "course", copy_function=link_or_copy,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "keys"))
    by_module: dict[str, list[str]] = {}
    for name in forbidden:
        module, _, attribute = name.partition(":")
        if module == "course" or module.startswith("course."):
            by_module.setdefault(module, []).append(attribute.split(".")[0])
    for module, names in by_module.items():
        parts = module.split(".")[1:]
        candidates = [dest / "course" / Path(*parts, "__init__.py") if parts else
                      dest / "course" / "__init__.py"]
        if parts:
            candidates.insert(0, (dest / "course" / Path(*parts)).with_suffix(".py"))
        for path in candidates:
            if path.is_file():
                labels = {n: f"`{module}.{n}`" for n in names}
                guarded = guard_source(path.read_text(encoding="utf-8"), names, labels)
                if guarded is not None:
                    path.unlink()  # a hard link to the original: never write through it
                    path.write_text(guarded, encoding="utf-8")
                break
    return dest


# -- fingerprints of the real implementations ---------------------------------------------------

def _codes_within(code: CodeType) -> Iterator[CodeType]:
    yield code
    for constant in code.co_consts:
        if isinstance(constant, CodeType):
            yield from _codes_within(constant)


def _content(code: CodeType) -> tuple[Any, ...]:
    consts = tuple(_content(c) if type(c) is CodeType else repr(c) for c in code.co_consts)
    return (code.co_code, consts, code.co_names, code.co_varnames, code.co_freevars,
            code.co_cellvars, code.co_name, code.co_argcount, code.co_kwonlyargcount,
            code.co_flags)


def fingerprint(code: CodeType) -> str:
    """A digest of a code object's content: equal for a copy carried over by pickling (marshal's
    bytes are not: they depend on which strings happen to be shared)."""
    return hashlib.sha256(repr(_content(code)).encode()).hexdigest()


def fingerprints(forbidden: Sequence[str]) -> dict[str, str]:
    """``{digest: label}`` of every code object of the ``forbidden`` implementations, as this
    process (which has the real ones) imports them."""
    import course
    from course.teach.protocol import guard_targets

    package = Path(course.__file__).resolve().parent
    found: dict[str, str] = {}
    for function, label in guard_targets(forbidden):
        code = function.__code__
        # Code the course wrote only: a dataclass's generated ``__init__`` and ``__eq__``
        # ("<string>") are rebuilt alike in any process that imports the class (the guarded
        # copy too), and its ``__repr__`` is dataclasses.py's wrapper, shared by every dataclass:
        # alive in the replay, they would accuse any answer of carrying TipAdapter along.
        if not Path(code.co_filename).resolve().is_relative_to(package):
            continue
        # the function's own code only: its nested code objects (a list comprehension such as
        # ``[v / v.norm() for v in image_embeds]``) are generic enough to recur in honest code
        # or in the course's other functions, and a copy of the function carries its own code
        found[fingerprint(code)] = label
    return found


def _carried_copies(known: dict[str, str]) -> set[str]:
    """Labels of the real implementations whose code is alive in this process (a copy that came
    along with an answer: this process's own copies are guards, with other code)."""
    import course

    seen: set[str] = set()
    if not known:
        return seen
    # This process's own course (the guarded copy) is no carried copy, though some of its code
    # equals a forbidden function's: ApproximateIndex.search_text is EmbeddingIndex's, line for
    # line, and is not guarded (it accused every solved nb05 answer of using EmbeddingIndex).
    own = str(Path(course.__file__).resolve().parent) + os.sep
    for holder in gc.get_objects():
        for item in gc.get_referents(holder):
            # not isinstance: no lazy module may be woken
            if type(item) is CodeType and not item.co_filename.startswith(own):
                for code in _codes_within(item):
                    label = known.get(fingerprint(code))
                    if label:
                        seen.add(label)
    return seen


# -- the replay process ---------------------------------------------------------------------------

def _record(status: str, **fields: Any) -> dict[str, Any]:
    return {"status": status, "output": None, "error": "", "used": [], **fields}


def replay(job: dict[str, Any]) -> dict[str, Any]:
    """Run each handed-over function on its hidden inputs; ``{id: answer entry}``."""
    import pickle
    from dataclasses import fields

    from course.teach.protocol import _bounded, code_objects, run_on_cases

    folder = Path(job["folder"])
    known = job.get("fingerprints", {})
    answers: dict[str, Any] = {}
    for item in job["exercises"]:
        path = folder / f"{item['id']}.pkl"
        try:
            function = pickle.loads(plaindata.read_regular(path, MAX_PICKLE_BYTES))  # the student's own code, sandboxed
        except Exception as error:  # noqa: BLE001 - whatever the student's pickle does
            answers[item["id"]] = {"status": "ran", "calls": [_record(
                "raised", error=f"your function could not be rebuilt outside the notebook "
                                f"({type(error).__name__}: {str(error)[:200]})")]}
            continue
        carried = sorted(_carried_copies(known))
        if carried:
            answers[item["id"]] = {"status": "ran", "calls": [_record("raised", used=carried)]}
            continue
        records = run_on_cases(function, item["inputs"], time_limit_s=item["time_limit"],
                               variants=item["variants"], forbidden=code_objects(item["forbidden"]))
        late = sorted(_carried_copies(known))  # code made while it ran (marshal, exec)
        calls = [{f.name: getattr(r, f.name) for f in fields(r)} for r in records]
        for call in calls:
            call["used"] = sorted(set(call["used"]) | set(late))
        answers[item["id"]] = _bounded({"status": "ran", "calls": calls})
    return answers


def main() -> None:
    """The replay process: the job on standard input, answers as plain data to ``job["out"]``."""
    from course.teach.sandbox import make_undumpable

    make_undumpable()
    job = plaindata.decode(json.loads(sys.stdin.read()))
    out = job["out"]
    plaindata.dump(replay(job), out)


def run_replay(job: dict[str, Any], library: Path, timeout: float) -> dict[str, Any] | None:
    """Start the replay process with ``library`` as its ``course``; its answers, or None."""
    out = Path(job["folder"]) / "replayed.json"
    env = {**os.environ, "PYTHONPATH": str(library)}
    document = json.dumps(plaindata.encode({**job, "out": str(out)}))
    try:
        subprocess.run([sys.executable, "-s", "-m", "course.teach.replay"], input=document.encode(),
                       env=env, cwd=job["folder"], timeout=timeout, check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        answers = plaindata.load(out, max_bytes=64 * 2**20)
    except (subprocess.TimeoutExpired, OSError, plaindata.PlainDataError):
        return None
    return answers if isinstance(answers, dict) else None


if __name__ == "__main__":
    main()
