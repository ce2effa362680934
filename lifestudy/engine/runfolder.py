"""One writer per run folder, and nothing in it overwritten or mixed.

A run folder (``--out``) is written by one process at a time. :func:`claim` holds an
exclusive lock on ``<out>/.lock`` (``fcntl.flock``) for the run's whole life; the kernel
drops it when the process ends in any way, SIGKILL included, so the lock of a killed run
is stale by construction and the next run takes it over. The lock file names its holder
(pid, host, start time, command) and a second run is refused with that name. Where the
file system has no ``flock`` (some network or FUSE mounts; Windows), the lock file is
created exclusively instead, and a holder on this host whose process is gone is
recognised as stale.

Under the lock, before anything is read or written:

- temporary files of a write that was killed (``.checkpoint.pt.XXXX.tmp``, from
  :func:`lifestudy.records.atomic_write`) are removed;
- a folder that holds any run file (:data:`RUN_FILES`, ``eval-*.json``) is refused unless
  the run resumes it; the message says which way on works for what is there.

:func:`folder_problem` says, before any model or data is built, why a path cannot be
written as a folder (``--out``, ``data fetch --root``).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any, Iterator

from lifestudy.errors import LifestudyError, RunFolderError

try:
    import fcntl
except ImportError:  # Windows: exclusive creation only
    fcntl = None

__all__ = ["LOCK", "RUN_FILES", "RunLock", "claim", "folder_problem", "remove_stale_temps", "run_files"]

LOCK = ".lock"
#: What a run writes into its folder (engine.loop's CONFIG, METRICS_CSV, CHECKPOINT, RECORD).
RUN_FILES = ("config.json", "metrics.csv", "checkpoint.pt", "record.json")
# A lock file left empty for this long (its writer died between creating and filling it) is stale.
_EMPTY_LOCK_STALE_S = 10.0


def folder_problem(path: str | os.PathLike | None, option: str = "--out", writable: bool = True) -> str | None:
    """Why ``path`` cannot be (written as) a folder: one line ending in the fix, or None.

    Args:
        path: the folder (it may not exist yet).
        option: the option that named it, for the message.
        writable: also require that it can be created / written in.
    """
    if path is None or os.fspath(path) == "":
        return None
    p = Path(path).expanduser()
    if p.exists() and not p.is_dir():
        return f"{option} {p} is a file, not a folder; pass {option} a folder"
    base = p
    while not base.exists() and base.parent != base:
        base = base.parent
    if not base.is_dir():
        return f"{option} {p}: {base} is a file, not a folder; pass {option} a path that is not under a file"
    if writable and not os.access(base, os.W_OK | os.X_OK):
        return (f"{option} {p}: cannot write in {base} (read-only for this user); "
                f"pass {option} a folder you can write to")
    return None


def run_files(out: str | os.PathLike) -> list[str]:
    """The run files in ``out`` (sorted as a run writes them), ``eval-*.json`` last."""
    out = Path(out)
    if not out.is_dir():
        return []
    found = [name for name in RUN_FILES if (out / name).exists()]
    return found + sorted(p.name for p in out.glob("eval-*.json"))


def remove_stale_temps(out: str | os.PathLike) -> list[Path]:
    """Remove the temporary files a killed write of a run file left in ``out``; return them.

    Only call this holding the folder's lock: no live writer then owns such a file."""
    out = Path(out)
    gone = []
    for tmp in out.glob(".*.tmp"):
        if any(tmp.name.startswith(f".{name}.") for name in RUN_FILES):
            tmp.unlink(missing_ok=True)
            gone.append(tmp)
    return gone


def _contents_problem(out: Path, resume: bool) -> str | None:
    """Why a run that does not resume may not start in ``out`` (one line), or None."""
    found = run_files(out)
    if resume or not found:
        return None
    if "record.json" in found:
        return f"--out {out} already holds a finished run (record.json); choose a new --out folder"
    if "checkpoint.pt" in found:
        return (f"--out {out} already holds an unfinished run (checkpoint.pt); pass --resume to continue it, "
                "or choose a new --out folder")
    if found == ["config.json"]:
        return (f"--out {out} already holds the start of a run that wrote no checkpoint (config.json); "
                "pass --resume to start it again with the same settings, or choose a new --out folder")
    return f"--out {out} already holds files of a run ({', '.join(found)}); choose a new --out folder"


# ---- the lock ------------------------------------------------------------------------


def _holder() -> dict[str, Any]:
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "command": " ".join(sys.argv)[:500],
    }


def _read_holder(path: Path) -> dict[str, Any]:
    try:
        holder = json.loads(path.read_text() or "{}")
        return holder if isinstance(holder, dict) else {}
    except (OSError, ValueError):
        return {}


def _pid_alive(pid: int) -> bool:
    if os.name != "posix":
        return True  # cannot tell safely: never call a live run stale
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _busy(path: Path, exclusive: bool = False) -> RunFolderError:
    h = _read_holder(path)
    who = (f"pid {h.get('pid')} on host {h.get('host')}, started {h.get('started')}" if h.get("pid")
           else "a process that has not yet written its name")
    gone = f" (if that process is gone, delete {path})" if exclusive else ""
    return RunFolderError(
        f"--out {path.parent} is in use by another run ({who}); wait for it to finish{gone}, "
        "or pass another --out folder"
    )


def _flock(path: Path) -> int | None:
    """A descriptor holding an exclusive ``flock`` on ``path``; None where there is no flock."""
    if fcntl is None:
        return None
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise _busy(path) from None
        except OSError as err:
            os.close(fd)
            if err.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                return None
            raise
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)  # its last holder removed it between our open and our flock: again


def _is_stale(path: Path) -> bool:
    h = _read_holder(path)
    if not h.get("pid"):
        try:
            return time.time() - path.stat().st_mtime > _EMPTY_LOCK_STALE_S
        except FileNotFoundError:
            return True
    return h.get("host") == socket.gethostname() and not _pid_alive(int(h["pid"]))


def _exclusive(path: Path) -> int:
    """A descriptor of ``path`` created exclusively (a stale one of a dead process replaced)."""
    for _ in range(3):
        try:
            return os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            if not _is_stale(path):
                raise _busy(path, exclusive=True) from None
            path.unlink(missing_ok=True)
    raise _busy(path, exclusive=True)


class RunLock:
    """The exclusive lock of one run folder (see the module docstring)."""

    def __init__(self, path: Path, fd: int, created_folder: bool):
        self.path, self.fd, self.created_folder = path, fd, created_folder

    @classmethod
    def acquire(cls, out: str | os.PathLike) -> "RunLock":
        folder = Path(out)
        problem = folder_problem(folder)
        if problem:
            raise RunFolderError(problem)
        created = not folder.exists()
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / LOCK
            fd = _flock(path)
            if fd is None:
                fd = _exclusive(path)
            os.ftruncate(fd, 0)
            os.write(fd, json.dumps(_holder()).encode())
        except OSError as err:
            raise RunFolderError(
                f"--out {folder}: cannot write there ({err.strerror or err}); pass --out a folder you can write to"
            ) from err
        return cls(path, fd, created)

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)  # before unlocking: a newcomer then makes a new file
        finally:
            os.close(self.fd)
            self.fd = None
        if self.created_folder:
            with contextlib.suppress(OSError):
                self.path.parent.rmdir()  # only when the run left nothing in it

    def __enter__(self) -> "RunLock":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


@contextlib.contextmanager
def claim(out: str | os.PathLike, resume: bool = False, dist=None) -> Iterator[Path]:
    """Hold ``out`` for one run: lock it, remove stale temporary files, refuse a folder that
    holds a run unless ``resume``. Under torchrun (``dist``) rank 0 holds the lock and every
    rank raises the same error."""
    main = dist is None or dist.is_main
    lock, error = None, None
    if main:
        try:
            lock = RunLock.acquire(out)
            remove_stale_temps(out)
            problem = _contents_problem(Path(out), resume)
            if problem:
                raise RunFolderError(problem)
        except LifestudyError as err:
            error = err
            if lock is not None:
                lock.release()
                lock = None
    if dist is not None and dist.enabled:
        message = dist.broadcast_object(str(error) if error is not None else None)
        if message is not None and error is None:
            error = RunFolderError(message)
    if error is not None:
        raise error
    try:
        yield Path(out)
    finally:
        if lock is not None:
            lock.release()
