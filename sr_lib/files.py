"""Writing files so that a crash, a full disk or Ctrl-C never leaves half a file behind."""
import os
from pathlib import Path


def atomic_write(path: str | Path, write) -> Path:
    """Call write(tmp) on a temporary path beside `path`, then rename it over `path`.

    Readers see the old file or the new one, never a mix. The temporary file is opened normally, so the
    result gets the user's usual permissions (umask), readable in a shared course folder.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def writable_folder(path: str | Path, option: str = "--out") -> Path:
    """`path` as a folder that exists or can be created and written to: checked before long work starts,
    so that a run does not end, after all its work, on a path that is a file or a read-only folder."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{option} {path} is a file, not a folder")
    existing = next(p for p in [path, *path.parents] if p.exists())
    if not existing.is_dir():
        raise ValueError(f"{option} {path}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"{option} {path}: cannot write to {existing} (permission denied)")
    return path
