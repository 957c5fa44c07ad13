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
