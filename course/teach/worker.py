"""Executes one submitted notebook, then the grader's collecting cell: ``python -m course.teach.worker``.

Runs inside the sandbox (``course.teach.sandbox``) with its job on standard input: the job, and
with it the nonce that marks the answers as written by the grader's own cell, never touches the
disk. The worker applies the resource limits to itself before the kernel starts (the kernel
inherits them), keeps no cell output but errors, and writes ``result.json`` (how the run went).
Nothing it writes is trusted by the grader beyond being data.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from course.teach.sandbox import (
    apply_limits,
    become_subreaper,
    die_with_parent,
    kill_orphans,
    make_undumpable,
    tree_cpu_seconds,
)

#: The longest error message kept per cell.
MAX_ERROR_CHARS = 300
#: Cell errors reported at most.
MAX_ERRORS = 20


def collector_source(manifest: str, answers: str, nonce: str) -> str:
    """The in-kernel collector of earlier versions (kept for ``collect_answers``' tests)."""
    return ("# appended by `course grade`\n"
            "from course.teach.protocol import collect_answers as __course_collect\n"
            f"__course_collect(globals(), {manifest!r}, {answers!r}, {nonce!r})")


def hand_over_source(exercises: list[dict[str, Any]], folder: str) -> str:
    """The grader's last cell: hand every answer over (``protocol.hand_over`` runs nothing, and
    the cell carries neither the hidden inputs nor the nonce)."""
    return ("# appended by `course grade`\n"
            "from course.teach.protocol import hand_over as __course_hand_over\n"
            f"__course_hand_over(globals(), {exercises!r}, {folder!r})")


def _read_manifest(path: str) -> dict[str, Any]:
    """The hidden inputs, read into this process and removed from the disk before the kernel
    starts: only the replay process gets them."""
    from course.teach import plaindata
    from course.teach.protocol import MAX_DOCUMENT_BYTES

    manifest = plaindata.load(path, max_bytes=MAX_DOCUMENT_BYTES)
    Path(path).unlink()
    return manifest


def collect(job: dict[str, Any], manifest: dict[str, Any], folder: Path) -> None:
    """After the kernel is gone: replay the handed-over functions where the course cannot do
    them (``course.teach.replay``) and write the answers, with the nonce, for the grader."""
    import course
    from course.teach import plaindata, replay
    from course.teach.protocol import MAX_DOCUMENT_BYTES

    collector = job["collector"]
    try:
        index = plaindata.load(folder / replay.INDEX_NAME, max_bytes=MAX_DOCUMENT_BYTES)
    except (OSError, plaindata.PlainDataError):
        return  # the kernel never reached the last cell: nothing arrived
    if not isinstance(index, dict):
        return
    answers: dict[str, Any] = {}
    functions = []
    for item in manifest["exercises"]:
        entry = index.get(item["id"])
        if not isinstance(entry, dict):
            answers[item["id"]] = {"status": "missing"}
        elif item["kind"] == "function" and entry.get("status") == "sent":
            functions.append(item)
        else:
            answers[item["id"]] = entry
    if functions:
        forbidden = sorted({name for item in functions for name in item["forbidden"]})
        library = folder / "guarded"
        replay.guard_package(Path(course.__file__).parent, library, forbidden)
        replayed = replay.run_replay(
            {"folder": str(folder), "exercises": functions,
             "fingerprints": replay.fingerprints(forbidden)},
            library, timeout=job["collector_timeout"]) or {}
        for item in functions:
            entry = replayed.get(item["id"])
            answers[item["id"]] = entry if isinstance(entry, dict) else {
                "status": "ran", "calls": [{"status": "timeout", "output": None, "error": "",
                                            "used": []}]}
    plaindata.dump({"nonce": collector["nonce"], "answers": answers}, collector["answers"])


def _client(nb: Any, job: dict[str, Any]) -> Any:
    from nbclient import NotebookClient

    class ErrorsOnly(NotebookClient):
        """Keeps a cell's error outputs only: a submission cannot fill the worker's memory
        with printing, and the grader needs nothing else."""

        def output(self, outs: list[Any], msg: dict[str, Any], display_id: Any,
                   cell_index: int) -> Any:
            if msg.get("msg_type") != "error":
                return None
            return super().output(outs, msg, display_id, cell_index)

    return ErrorsOnly(nb, timeout=job["cell_timeout"], interrupt_on_timeout=True,
                      allow_errors=True, kernel_name="python3", store_widget_state=False,
                      resources={"metadata": {"path": job["cwd"]}})


class CpuWatch(threading.Thread):
    """Interrupts a cell once the kernel (and whatever it started) has used ``budget`` CPU
    seconds on it: the student's work, not the wall clock, which a busy machine stretches."""

    def __init__(self, client: Any, budget: float | None) -> None:
        super().__init__(daemon=True)
        self.client, self.budget = client, budget
        self.cell: int | None = None
        self.base = 0.0
        self.stopped: set[int] = set()
        self.used: dict[int, float] = {}  # CPU seconds each learner cell took
        self.done = threading.Event()

    def watch(self, index: int | None) -> None:
        """Start counting for cell ``index`` (None: stop counting)."""
        now = tree_cpu_seconds()
        if self.cell is not None:
            self.used[self.cell] = now - self.base
        self.base = now
        self.cell = index

    def run(self) -> None:
        while self.budget and not self.done.wait(0.25):
            cell = self.cell
            if cell is None or cell in self.stopped:
                continue
            if tree_cpu_seconds() - self.base > self.budget:
                self.stopped.add(cell)
                self._interrupt()

    def _interrupt(self) -> None:
        try:
            pid = self.client.km.provisioner.process.pid
        except AttributeError:
            return
        try:
            os.kill(pid, signal.SIGINT)  # ipykernel's interrupt: a KeyboardInterrupt in the cell
        except ProcessLookupError:
            pass


#: Beside ``result.json``: the cell being run, so that a run stopped from outside (its budget
#: spent, the wall-clock backstop) can say what it cut short.
PROGRESS_NAME = "progress.json"


def note_progress(job: dict[str, Any], index: int, cells: int) -> None:
    """Record that cell ``index`` of ``cells`` (the grader's own is the last) starts now."""
    target = Path(job["result"]).with_name(PROGRESS_NAME)
    temp = target.with_name(f".{PROGRESS_NAME}.tmp")
    try:
        temp.write_text(json.dumps({"cell": index, "cells": cells}), encoding="utf-8")
        os.replace(temp, target)  # whole or not at all, whenever the run is killed
    except OSError:
        pass  # a full disk: the report says less, the grading goes on


def run(job: dict[str, Any]) -> dict[str, Any]:
    """Execute the job's notebook plus the collecting cell; returns how it went."""
    import nbformat
    from nbclient.exceptions import DeadKernelError

    nb = nbformat.read(job["notebook"], as_version=4)
    manifest = _read_manifest(job["collector"]["manifest"])
    # a fresh, unguessable folder: nothing the submission planted earlier can be in it
    folder = Path(tempfile.mkdtemp(prefix="handover-", dir=Path(job["result"]).parent))
    listed = [{k: item[k] for k in ("id", "answer_name", "kind")}
              for item in manifest["exercises"]]
    nb.cells.append(nbformat.v4.new_code_cell(hand_over_source(listed, str(folder))))
    status = "ok"
    client = _client(nb, job)
    budget = job.get("cell_cpu")
    watch = CpuWatch(client, budget)
    watch.start()
    try:
        with client.setup_kernel():
            for index, cell in enumerate(nb.cells):
                last = index == len(nb.cells) - 1
                if last:  # the grader's cell hands the answers over, with its own time limit
                    client.timeout = job["collector_timeout"]
                watch.watch(None if last or cell.cell_type != "code" else index)
                note_progress(job, index, len(nb.cells))
                client.execute_cell(cell, index, execution_count=client.code_cells_executed + 1)
                watch.watch(None)
    except DeadKernelError:
        status = "kernel died"
    except Exception as error:  # noqa: BLE001 - nbclient failures are recorded, not raised
        status = f"execution failed ({type(error).__name__})"
    finally:
        watch.done.set()
    errors = []
    for index, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []) if cell.cell_type == "code" else []:
            if output.get("output_type") == "error":
                where = "the grader's cell" if index == len(nb.cells) - 1 else f"cell {index}"
                text = f"{where}: {output.get('ename')}: {output.get('evalue')}"
                if index in watch.stopped and output.get("ename") == "KeyboardInterrupt":
                    text = (f"{where}: stopped after {budget:g} CPU seconds (the limit of a "
                            "cell, --timeout-cell)")
                errors.append(text[:MAX_ERROR_CHARS])
    if status == "ok" and errors:
        status = f"ok, {len(errors)} cell error(s)"
    kill_orphans()  # nothing of the kernel may outlive it into the replay
    collect(job, manifest, folder)
    costliest = max(watch.used, key=watch.used.__getitem__, default=None)
    return {"status": status, "cell_errors": errors[:MAX_ERRORS],
            # what the budgets are measured against (bench/grading.py --budgets)
            "max_cell_cpu": watch.used.get(costliest, 0.0) if costliest is not None else 0.0,
            "max_cell": costliest}


def main() -> None:
    """Read the job from standard input, run it, write ``result.json``."""
    job = json.loads(sys.stdin.read())
    die_with_parent()  # the supervisor killed (with its grader): this run ends too
    make_undumpable()  # the nonce is in this process's memory
    become_subreaper()  # the kernel's runaway children come back here and die with the run
    apply_limits(job["limits"])
    try:
        result = run(job)
    finally:
        kill_orphans()
    Path(job["result"]).write_text(json.dumps(result), encoding="utf-8")


if __name__ == "__main__":
    main()
