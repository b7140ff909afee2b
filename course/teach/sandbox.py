"""Running one submitted notebook in isolation, and leaving nothing of it behind.

Every run gets its own scratch folder (a copy of the notebook, an empty HOME and TMPDIR), a
scrubbed environment (``kernelenv.scrubbed_env``), resource limits (set by the worker on itself,
inherited by the kernel) and a wall-clock limit. What the submission can reach depends on the
sandbox:

* ``bwrap`` (bubblewrap, the default where it runs): no network, a read-only view of the system
  and of Python, only the scratch folder writable, its own PID namespace (``/proc`` shows neither
  the grader nor other students), and every process of it killed with the namespace;
* ``none``: the same user as the grader, seeing and able to change anything that user can. Its
  processes, even those that called ``setsid``, are still found and killed (the grader is a
  "child subreaper" on Linux, so orphans come back to it) and every submission file is checked,
  and restored, after each run.

In both, the course package a grading kernel imports is a copy without the answer keys
(``course/exercises/keys``), first on ``PYTHONPATH``.
"""

from __future__ import annotations

import ctypes
import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from course.teach.kernelenv import COURSE_ROOT

SANDBOXES = ("auto", "bwrap", "none")
_PR_SET_CHILD_SUBREAPER = 36
_PR_SET_DUMPABLE = 4
_PR_SET_PDEATHSIG = 1
#: Folders of the system a sandboxed run may read (missing ones are skipped).
_SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/opt")
_SYSTEM_FILES = ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/localtime", "/etc/passwd",
                 "/etc/group", "/etc/nsswitch.conf", "/etc/hosts", "/etc/mime.types")
_SYSTEM_ETC_DIRS = ("/etc/fonts", "/etc/ld.so.conf.d", "/etc/alternatives", "/etc/ssl")


class SandboxUnavailable(RuntimeError):
    """The sandbox asked for cannot run on this machine (the message says why)."""


@dataclass(frozen=True)
class Limits:
    """What one submission may use. The worker applies them to itself; its kernel inherits."""

    cpu_seconds: int = 1800
    memory_bytes: int = 8 * 2**30
    file_bytes: int = 256 * 2**20
    #: everything a run writes, all files together (its scratch folder, /tmp and its log):
    #: the per-file limit alone lets a run fill the disk with many files
    total_bytes: int = 1 * 2**30
    output_bytes: int = 2 * 2**20
    processes: int = 512

    def as_dict(self) -> dict[str, int]:
        """Plain data for the worker's job."""
        return asdict(self)


def apply_limits(limits: dict[str, int]) -> None:
    """Set this process's resource limits (inherited by every child), never raising them."""
    import resource

    def lower(which: int, value: int) -> None:
        _soft, hard = resource.getrlimit(which)
        value = value if hard == resource.RLIM_INFINITY else min(value, hard)
        resource.setrlimit(which, (value, value))

    lower(resource.RLIMIT_CPU, limits["cpu_seconds"])
    lower(resource.RLIMIT_AS, limits["memory_bytes"])
    lower(resource.RLIMIT_FSIZE, limits["file_bytes"])
    lower(resource.RLIMIT_CORE, 0)
    if os.geteuid() != 0:  # root ignores RLIMIT_NPROC; for others it counts all their processes
        lower(resource.RLIMIT_NPROC, limits["processes"] + _processes_of(os.getuid()))


def _processes_of(uid: int) -> int:
    count = 0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    count += 1
            except OSError:
                continue
    return count


# -- processes ----------------------------------------------------------------------------------------

def _prctl(option: int, value: int) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(option, value, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def become_subreaper() -> bool:
    """Adopt orphaned descendants (Linux): a process that ``setsid``s and forks away still
    reparents to us, so it can be found and killed. Returns whether it worked."""
    return _prctl(_PR_SET_CHILD_SUBREAPER, 1)


def die_with_parent(parent: int | None = None) -> bool:
    """Be killed (SIGKILL) when the process that started us dies (Linux): a grader or a Dask
    worker killed mid-run takes its runs with it. ``parent``: the pid that started us, to catch
    a parent that died before this call. Returns whether it is in force."""
    if not _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL):
        return False
    if parent is not None and os.getppid() != parent:
        os.kill(os.getpid(), signal.SIGKILL)
    return True


def make_undumpable() -> bool:
    """Keep other processes of this user out of our memory (``/proc/<pid>/mem``)."""
    return _prctl(_PR_SET_DUMPABLE, 0)


def children_of(pid: int) -> list[int]:
    """The current children of process ``pid`` (Linux ``/proc``; empty elsewhere)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as handle:
            return [int(p) for p in handle.read().split()]
    except OSError:
        found = []
        for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else []:
            if not entry.name.isdigit():
                continue
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
        return found


def kill_orphans(spare: set[int] | frozenset[int] = frozenset()) -> int:
    """Kill (and reap) every child of this process but ``spare``: call it when they are leftovers.

    With this process a subreaper, that is every process a finished run left behind. A killed
    process's own children become our children in turn, so this repeats until none are left.
    Returns how many were killed.
    """
    killed = 0
    me = os.getpid()
    for _ in range(1000):  # each round kills one generation; a fork bomb is bounded by limits
        victims = [pid for pid in children_of(me) if pid not in spare]
        if not victims:
            return killed
        killed += _kill_each(victims)
        for pid in victims:
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                continue
    return killed


def _kill_each(pids: Sequence[int]) -> int:
    """SIGKILL each process; returns how many were still there to kill."""
    killed = 0
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
            killed += 1
        except ProcessLookupError:
            continue
    return killed


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


# -- bubblewrap ---------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def bwrap_problem() -> str | None:
    """Why bubblewrap cannot sandbox here, or None when it can (probed once per process)."""
    path = shutil.which("bwrap")
    if path is None:
        return "bubblewrap (bwrap) is not installed (Debian/Ubuntu: apt install bubblewrap)"
    import tempfile

    # a folder of our own (mkdtemp), never one that happened to be there: it is removed after
    probe = Path(tempfile.mkdtemp(prefix="course-bwrap-probe-", dir=tempfile_dir()))
    try:
        command = bwrap_command([sys.executable, "-c", "print('ok')"], scratch=probe,
                                readable=())
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"bwrap did not run: {error}"
    finally:
        shutil.rmtree(probe, ignore_errors=True)
    if done.returncode != 0 or done.stdout.strip() != "ok":
        message = (done.stderr or done.stdout).strip().splitlines()
        return f"bwrap failed here: {message[-1] if message else f'exit {done.returncode}'}"
    return None


def tempfile_dir() -> str:
    """Where scratch folders go (honours TMPDIR)."""
    import tempfile

    return tempfile.gettempdir()


def choose_sandbox(requested: str) -> str:
    """``"bwrap"`` or ``"none"`` for a request of ``auto``, ``bwrap`` or ``none``.

    Raises:
        SandboxUnavailable: ``bwrap`` was asked for and cannot run here.
        ValueError: an unknown sandbox name.
    """
    if requested not in SANDBOXES:
        raise ValueError(f"unknown sandbox {requested!r}: choose one of {', '.join(SANDBOXES)}")
    if requested == "none":
        return "none"
    problem = bwrap_problem()
    if problem is None:
        return "bwrap"
    if requested == "bwrap":
        raise SandboxUnavailable(problem)
    return "none"


def _python_dirs() -> list[Path]:
    """The folders Python itself needs: its prefixes, standard library and installed packages."""
    import site
    import sysconfig

    candidates: set[str] = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
                            *site.getsitepackages(), sysconfig.get_paths()["stdlib"],
                            sysconfig.get_paths()["platstdlib"]}
    if site.ENABLE_USER_SITE and site.getusersitepackages():
        candidates.add(site.getusersitepackages())
    dirs = {Path(os.path.realpath(c)) for c in candidates if os.path.isdir(c)}
    # a venv's python is a link into the base installation: mount what it points to as well
    dirs.add(Path(os.path.realpath(sys.executable)).parent.parent)
    return sorted(dirs)


def _contains(outer: Path, inner: Path) -> bool:
    """Whether ``inner`` is ``outer`` or inside it."""
    try:
        inner.resolve().relative_to(outer.resolve())
    except ValueError:
        return False
    return True


def bwrap_command(command: Sequence[str], *, scratch: Path, readable: Sequence[Path]) -> list[str]:
    """``command`` wrapped in bubblewrap: see the module docstring for what it can reach.

    Args:
        scratch: the only writable folder (mounted at the same path inside).
        readable: further folders mounted read-only (the stripped ``course`` copy).
    """
    # /tmp is the scratch folder's tmp/ (where the supervisor counts what a run writes; a tmpfs
    # would fill memory uncounted), /run is empty and read-only
    tmp = ["--bind", str(scratch / "tmp"), "/tmp"] if (scratch / "tmp").is_dir() \
        else ["--tmpfs", "/tmp"]
    args = ["bwrap", "--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL",
            "--proc", "/proc", "--dev", "/dev", *tmp, "--tmpfs", "/run", "--remount-ro", "/run"]
    for name in _SYSTEM_DIRS:
        path = Path(name)
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), name]
        elif path.is_dir():
            args += ["--ro-bind", name, name]
    for name in _SYSTEM_FILES + _SYSTEM_ETC_DIRS:
        if os.path.exists(name):
            args += ["--ro-bind", name, name]
    package = COURSE_ROOT / "course"
    hide = False
    for folder in [*_python_dirs(), *readable]:
        args += ["--ro-bind", str(folder), str(folder)]
        hide = hide or _contains(folder, package)
    if hide:  # e.g. a non-editable install in site-packages: its keys must stay out of reach
        args += ["--tmpfs", str(package)]
    args += ["--bind", str(scratch), str(scratch), "--chdir", str(scratch), "--"]
    return args + list(command)


# -- the stripped course package ---------------------------------------------------------------------

def stage_course(dest: Path) -> Path:
    """Copy the ``course`` package into ``dest`` without the answer keys; returns ``dest``.

    A grading kernel imports this copy: the reference solutions are not importable there.
    """
    source = COURSE_ROOT / "course"

    def ignore(folder: str, names: list[str]) -> list[str]:
        skip = [n for n in names if n in {"__pycache__", ".ipynb_checkpoints"} or n.endswith(".pyc")]
        if Path(folder).resolve() == (source / "exercises").resolve():
            skip.append("keys")
        return skip

    shutil.copytree(source, dest / "course", ignore=ignore)
    return dest


# -- one isolated run ---------------------------------------------------------------------------------

@dataclass
class RunResult:
    """How an isolated run ended."""

    returncode: int | None
    timed_out: bool
    seconds: float
    orphans_killed: int
    over_total: bool = False  # killed for writing more than ``total_bytes`` in all
    cpu_timed_out: bool = False  # killed for using more than ``cpu_timeout`` CPU seconds
    cpu_seconds: float = 0.0  # what the run used, all its processes together


def run_isolated(command: Sequence[str], *, scratch: Path, env: dict[str, str], stdin: bytes,
                 timeout: float, sandbox: str, readable: Sequence[Path] = (),
                 log: Path | None = None, processes: int = Limits.processes,
                 total_bytes: int = Limits.total_bytes,
                 cpu_timeout: float | None = None) -> RunResult:
    """Run ``command`` in ``sandbox`` with ``stdin``; kill it and everything it started at the end.

    A small supervisor process (this module's ``__main__``) starts it, enforces ``timeout`` and,
    being a child subreaper, kills every process the run left behind before it exits, including
    those that called ``setsid`` to get away. It also kills the run once the scratch folder and
    the log together have grown by more than ``total_bytes``, or once all its processes
    together have used ``cpu_timeout`` CPU seconds (``timeout`` is then the wall-clock backstop
    for a run that waits without computing).
    """
    full = bwrap_command(command, scratch=scratch, readable=readable) \
        if sandbox == "bwrap" else list(command)
    spec = {"command": full, "cwd": str(scratch), "timeout": timeout,
            "log": str(log or os.devnull), "stdin": stdin.decode("utf-8"),
            "processes": processes, "parent": os.getpid(), "total_bytes": total_bytes,
            "cpu_timeout": cpu_timeout}
    start = time.monotonic()
    supervisor = subprocess.Popen([sys.executable, "-m", "course.teach.sandbox"], env=env,
                                  cwd=scratch, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL, start_new_session=True)
    try:  # the supervisor keeps its own time; this is the backstop should it be killed
        out, _ = supervisor.communicate(json.dumps(spec).encode(), timeout=timeout + 60)
    except subprocess.TimeoutExpired:
        _kill_group(supervisor.pid)
        out, _ = supervisor.communicate()
    try:
        report = json.loads(out.decode() or "{}")
    except (UnicodeDecodeError, json.JSONDecodeError):
        report = {}
    return RunResult(report.get("returncode"), bool(report.get("timed_out", not report)),
                     time.monotonic() - start, int(report.get("orphans_killed", 0)),
                     bool(report.get("over_total", False)), bool(report.get("cpu_timed_out")),
                     float(report.get("cpu_seconds", 0.0)))


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _proc_stat(pid: int) -> tuple[int, float, float] | None:
    """``(ppid, own CPU seconds, CPU seconds of the children it reaped)`` of a process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            fields = handle.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    try:
        own = (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS
        reaped = (int(fields[13]) + int(fields[14])) / _CLOCK_TICKS
        return int(fields[1]), own, reaped
    except (IndexError, ValueError):
        return None


def tree_cpu_seconds(root: int | None = None) -> float:
    """CPU seconds used so far by the descendants of ``root`` (default: this process): the
    live ones, every thread of each, and the children they reaped, plus what ``root`` itself
    reaped. A run's work, whatever else the machine is doing (Linux ``/proc``; 0 elsewhere)."""
    me = os.getpid() if root is None else root
    stats: dict[int, tuple[int, float, float]] = {}
    try:
        names = os.listdir("/proc")
    except OSError:
        return 0.0
    for name in names:
        if name.isdigit():
            found = _proc_stat(int(name))
            if found is not None:
                stats[int(name)] = found
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    if root is None:
        times = os.times()
        total = times.children_user + times.children_system
    else:
        total = stats[me][2] if me in stats else 0.0
    todo = list(children.get(me, []))
    while todo:
        pid = todo.pop()
        _, own, reaped = stats[pid]
        total += own + reaped
        todo.extend(children.get(pid, []))
    return total


def disk_usage(*paths: str | os.PathLike[str]) -> int:
    """Bytes of disk the files and folders below ``paths`` use (links not followed)."""
    total = 0
    for top in paths:
        try:
            total += os.lstat(top).st_blocks * 512
        except OSError:
            continue
        for here, dirs, files in os.walk(top):
            for name in dirs + files:
                try:
                    total += os.lstat(os.path.join(here, name)).st_blocks * 512
                except OSError:
                    continue
    return total


class PidsCgroup:
    """A cgroup capping how many processes a run may have (a fork bomb stops at the cap).

    RLIMIT_NPROC does not bind root (and CI runs as root), so where this process may create a
    cgroup (cgroup v2 with the pids controller delegated, or v1's ``pids`` hierarchy, as root) a
    run gets one: the supervisor joins it before starting the run, every descendant inherits
    it, and at the end whatever is still in it is killed. Elsewhere it does nothing.
    """

    def __init__(self, limit: int) -> None:
        self.path: Path | None = None
        for base in self._candidates():
            try:
                path = base / f"course-grade-{os.getpid()}"
                path.mkdir()
                (path / "pids.max").write_text(str(limit))
                (path / "cgroup.procs").write_text(str(os.getpid()))
            except OSError:
                if "path" in locals() and path.is_dir():
                    _remove_cgroup(path)
                continue
            self.path = path
            return

    @staticmethod
    def _candidates() -> list[Path]:
        root = Path("/sys/fs/cgroup")
        found = []
        if (root / "cgroup.controllers").is_file():  # cgroup v2: below our own cgroup
            try:
                mine = Path("/proc/self/cgroup").read_text().splitlines()[0].split("::", 1)[1]
            except (OSError, IndexError):
                mine = ""
            found.append(root / mine.lstrip("/"))
        if (root / "pids" / "cgroup.procs").is_file():  # cgroup v1's pids hierarchy
            found.append(root / "pids")
        return found

    def kill_all(self) -> int:
        """Kill every process left in the cgroup (not this one); returns how many."""
        if self.path is None:
            return 0
        killed = 0
        for _ in range(100):
            pids = [int(p) for p in (self.path / "cgroup.procs").read_text().split()
                    if int(p) != os.getpid()]
            if not pids:
                break
            killed += _kill_each(pids)
            time.sleep(0.05)
        return killed

    def close(self) -> None:
        """Leave the cgroup and remove it."""
        if self.path is not None:
            _remove_cgroup(self.path)
            self.path = None


def can_cap_processes() -> bool:
    """Whether a run's process count is capped here (RLIMIT_NPROC for a user, a cgroup for root)."""
    if os.geteuid() != 0:
        return True
    probe = PidsCgroup(Limits.processes)
    try:
        return probe.path is not None
    finally:
        probe.close()


def _remove_cgroup(path: Path) -> None:
    try:
        (path.parent / "cgroup.procs").write_text(str(os.getpid()))
    except OSError:
        pass
    try:
        path.rmdir()
    except OSError:
        pass


def _supervise(spec: dict[str, Any]) -> dict[str, Any]:
    """The supervisor: start the run in its own session, wait, then kill all that is left."""
    die_with_parent(spec.get("parent"))
    become_subreaper()
    make_undumpable()
    cgroup = PidsCgroup(spec.get("processes", Limits.processes))
    try:
        return _run_supervised(spec, cgroup)
    finally:
        cgroup.close()


def _run_supervised(spec: dict[str, Any], cgroup: PidsCgroup) -> dict[str, Any]:
    with open(spec["log"], "wb") as output:
        process = subprocess.Popen(spec["command"], cwd=spec["cwd"], stdin=subprocess.PIPE,
                                   stdout=output, stderr=subprocess.STDOUT,
                                   start_new_session=True, close_fds=True)
        timed_out = False
        stopped: str | None = None
        try:
            assert process.stdin is not None
            try:
                process.stdin.write(spec["stdin"].encode("utf-8"))
                process.stdin.close()
            except BrokenPipeError:
                pass  # it died before reading its job: recorded as a failed run
            stopped = _wait_watching(process, spec)
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:
            _kill_group(process.pid)
            process.wait()
    orphans = cgroup.kill_all() + kill_orphans()
    times = os.times()
    cpu_timed_out = stopped == "cpu"
    timed_out = timed_out or cpu_timed_out
    return {"returncode": None if timed_out else process.returncode, "timed_out": timed_out,
            "orphans_killed": orphans, "cgroup": cgroup.path is not None,
            "over_total": stopped == "total", "cpu_timed_out": cpu_timed_out,
            "cpu_seconds": times.children_user + times.children_system}


def _wait_watching(process: subprocess.Popen[bytes], spec: dict[str, Any]) -> str | None:
    """Wait for the run until its wall-clock timeout (raising ``TimeoutExpired``), checking
    twice a second what it has written and the CPU time it has used in all; returns None when
    it ended, ``"total"`` when it wrote more than ``total_bytes``, ``"cpu"`` when it used more
    than ``cpu_timeout`` CPU seconds."""
    deadline = time.monotonic() + spec["timeout"]
    limit = spec.get("total_bytes")
    cpu_limit = spec.get("cpu_timeout")
    watched = [spec["cwd"], spec["log"]] if spec["log"] != os.devnull else [spec["cwd"]]
    base = disk_usage(*watched)
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise subprocess.TimeoutExpired(spec["command"], spec["timeout"])
        try:
            process.wait(timeout=min(0.5, left))
            return None
        except subprocess.TimeoutExpired:
            if limit and disk_usage(*watched) - base > limit:
                return "total"
            if cpu_limit and tree_cpu_seconds() > cpu_limit:
                return "cpu"


if __name__ == "__main__":
    print(json.dumps(_supervise(json.loads(sys.stdin.read()))), flush=True)
