"""Run records: one JSON file per run with its metrics and provenance, written atomically.

Every number the book shows is read from such a record (see docs/design.md, "Contracts").
A record is a flat-ish dict::

    {"kind": "train" | "bench" | "complexity" | ..., "metrics": {...},
     "provenance": {...}, ...anything else the writer adds}

``write_json_atomic`` writes to a temporary file in the same folder and renames it over
the target, so a reader never sees half a record, even if the writer is killed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import platform
import socket
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any, Iterable, Iterator

__all__ = [
    "atomic_write",
    "write_json_atomic",
    "read_json",
    "provenance",
    "git_state",
    "device_name",
    "display_path",
    "find_records",
    "load_records",
    "config_hash",
    "HASH_FREE",
    "find_run",
]

_REPO_ROOT = Path(__file__).resolve().parent.parent


def _jsonable(obj: Any) -> Any:
    """Turn dataclasses, paths, tensors and numpy scalars into JSON values."""
    import dataclasses

    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return _jsonable(dataclasses.asdict(obj))
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)  # JSON has no NaN/inf; keep them visible as strings
    if hasattr(obj, "item") and callable(obj.item) and getattr(obj, "ndim", 1) == 0:
        return _jsonable(obj.item())
    return obj


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w") -> Iterator[IO]:
    """Open a temp file beside ``path`` for writing; on success it is synced and renamed over
    ``path``, on any exception (KeyboardInterrupt included) removed, leaving ``path`` as it was.

    Used for run records and checkpoints alike, so a reader never sees half a file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give it the mode of any new file
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as JSON to ``path`` atomically (temp file in the same folder + rename)."""
    with atomic_write(path) as f:
        json.dump(_jsonable(obj), f, indent=2, sort_keys=False)
        f.write("\n")
    return Path(path)


def read_json(path: str | os.PathLike) -> Any:
    with open(path) as f:
        return json.load(f)


def git_state(repo: Path = _REPO_ROOT) -> dict[str, Any]:
    """The git commit of the working tree and whether it has uncommitted changes."""

    def _git(*args: str) -> str | None:
        try:
            out = subprocess.run(
                ["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=10
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {"git_commit": commit, "git_dirty": None if status is None else bool(status)}


def device_name(device: Any = None) -> str:
    """A human name for the device a run used, e.g. 'cpu (2 threads)' or 'NVIDIA H100 80GB HBM3'."""
    import torch

    dev = torch.device(device) if device is not None else torch.device("cpu")
    if dev.type == "cuda" and torch.cuda.is_available():
        return torch.cuda.get_device_name(dev)
    n = torch.get_num_threads()
    return f"cpu ({n} thread{'s' if n != 1 else ''}, {platform.processor() or platform.machine()})"


def display_path(path: str | os.PathLike) -> str:
    """``path`` as printed output shows it: relative to the repository when it lies inside
    (``runs/cpu/02_classification/.../record.json``), else as given. Progress lines and
    summaries use it, so a built book shows nothing of the machine it was built on."""
    try:
        return str(Path(path).resolve().relative_to(_REPO_ROOT.resolve()))
    except (ValueError, OSError):
        return str(path)


def provenance(**fields: Any) -> dict[str, Any]:
    """Provenance common to every record; ``fields`` (profile, seed, model, ...) are merged in."""
    import timm
    import torch
    import torchvision

    prov = {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "host": socket.gethostname(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "timm": timm.__version__,
        "platform": platform.platform(),
        "argv": sys.argv,
        **git_state(),
    }
    if "device" in fields and "device_name" not in fields:
        prov["device_name"] = device_name(fields["device"])
    prov.update(fields)
    return _jsonable(prov)


def find_records(root: str | os.PathLike, name: str = "record.json") -> list[Path]:
    """All record files under ``root`` (sorted, so tables come out in a stable order)."""
    root = Path(root)
    if root.is_file():
        return [root]
    return sorted(root.rglob(name)) if root.exists() else []


def load_records(roots: str | os.PathLike | Iterable[str | os.PathLike], name: str = "record.json"):
    """Records under one or more folders as a pandas DataFrame, metrics and provenance flattened
    into ``metrics.*`` / ``provenance.*`` columns, plus a ``path`` column."""
    import pandas as pd

    if isinstance(roots, (str, os.PathLike)):
        roots = [roots]
    rows = []
    for root in roots:
        for path in find_records(root, name):
            rec = read_json(path)
            row = pd.json_normalize(rec, sep=".").iloc[0].to_dict()
            row["path"] = str(path)
            rows.append(row)
    return pd.DataFrame(rows)


#: Config fields that may differ between two runs without changing their result (where the
#: run lies, how it is shown, how it is executed): left out of :func:`config_hash`.
HASH_FREE = frozenset({"out", "root", "quiet", "resume", "stop_after_epochs", "device", "device_type",
                       "num_workers", "compile", "allow_change"})


def config_hash(config: dict[str, Any], free: Iterable[str] = HASH_FREE) -> str:
    """A short hash (16 hex digits of SHA-256) of a run's resolved config, without the
    fields in ``free``: two runs with the same hash were asked for exactly the same thing.

    The config is written as canonical JSON (sorted keys, tuples as lists), so the hash does
    not depend on the order fields were given in, nor on the Python session."""
    free = set(free)
    kept = {k: v for k, v in config.items() if k not in free}
    text = json.dumps(_jsonable(kept), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def find_run(roots: str | os.PathLike | Iterable[str | os.PathLike], digest: str,
             name: str = "record.json") -> Path | None:
    """The first finished run record under ``roots`` whose ``config_hash`` is ``digest``
    (None when there is none). Interrupted runs have no record and are never found."""
    if isinstance(roots, (str, os.PathLike)):
        roots = [roots]
    for root in roots:
        for path in find_records(root, name):
            try:
                rec = read_json(path)
            except (OSError, ValueError):
                continue
            if isinstance(rec, dict) and rec.get("config_hash") == digest:
                return path
    return None
