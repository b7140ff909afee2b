"""Writing files without destroying anyone's: atomic replacement, never a folder, never a delete.

Every file a command writes for the user goes through :func:`atomic_write`: the data goes to a
temporary file in the same folder, flushed to disk, then ``os.replace`` puts it in place in one
step. A reader sees the old file or the new one, never half of one; a process killed mid-write
leaves the old file (and at most a ``.<name>.*.tmp`` beside it). Nothing here removes a user's
file or folder: a path that is a folder, a link or something else is refused, not replaced.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path


class UnsafeOutput(Exception):
    """Writing there would destroy something that is not ours: one line for the user."""


def inside(path: Path, folder: Path) -> bool:
    """Whether ``path`` is ``folder`` or anywhere below it (links resolved, so a link into the
    folder counts as inside)."""
    try:
        Path(os.path.realpath(path)).relative_to(os.path.realpath(folder))
    except ValueError:
        return False
    return True


def check_target(path: Path, *, what: str, protected: Iterable[Path] = (),
                 ours: Callable[[Path], bool] | None = None, links: bool = False) -> None:
    """Refuse a file target that a write would harm; returns quietly when writing is safe.

    Safe means: ``path`` is not inside any ``protected`` folder, and it is either absent or a
    regular file (not a link) that ``ours`` recognises as written by us before. With ``links``,
    a link is allowed (``atomic_write`` replaces the link itself, never what it points to).

    Raises:
        UnsafeOutput: the target is a folder, a link, a device, inside a protected folder, or an
            existing file ``ours`` does not recognise.
    """
    for folder in protected:
        if inside(path, folder) or inside(path.parent, folder):
            raise UnsafeOutput(f"{what} {path} is inside {folder}: refusing to write there "
                               "(choose a path outside it)")
    if path.is_symlink() and not links:
        raise UnsafeOutput(f"{what} {path} is a link: refusing to replace it (choose another path)")
    if path.is_symlink():
        return
    if path.is_dir():
        raise UnsafeOutput(f"{what} {path} is a folder: refusing to replace it (give a file "
                           f"name inside it, e.g. {path / 'grades.csv'})")
    if path.exists() and not path.is_file():
        raise UnsafeOutput(f"{what} {path} exists and is not a regular file: refusing to "
                           "replace it")
    if path.is_file() and ours is not None and not ours(path):
        raise UnsafeOutput(f"{what} {path} exists and was not written by this command: "
                           "refusing to overwrite it (choose another path, or move it away)")


def atomic_write(path: Path, data: bytes, *, mode: int | None = None) -> None:
    """Put ``data`` at ``path`` in one step (temp file, fsync, ``os.replace``).

    ``os.replace`` replaces a file or a link (the link itself, never what it points to) and
    fails on a folder, so a folder is never replaced: an :class:`UnsafeOutput` says so.
    """
    path = Path(path)
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        if mode is not None:
            os.chmod(temp, mode)
        else:  # mkstemp makes 0600; a written file gets the user's usual permissions
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(temp, 0o666 & ~umask)
        try:
            os.replace(temp, path)
        except IsADirectoryError:
            raise UnsafeOutput(f"{path} is a folder: refusing to replace it") from None
    except BaseException:
        try:
            os.unlink(temp)  # our own temp file, never the target
        except OSError:
            pass
        raise


def move_aside(path: Path, why: str) -> Path:
    """Rename whatever is at ``path`` (file, folder, link) to a new name beside it; returns it.

    Used instead of deleting: the thing is kept, only moved out of the way.
    """
    n = 1
    while True:
        candidate = path.with_name(f"{path.name}.{why}-{n}")
        if not os.path.lexists(candidate):
            break
        n += 1
    os.rename(path, candidate)
    return candidate
