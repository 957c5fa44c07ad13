"""Writing files so that a crash, a full disk or Ctrl-C never leaves half a file behind, and one writer
per output."""
import fcntl
import os
import shutil
import tempfile
from pathlib import Path

from .errors import UserError


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_stale(path: Path) -> None:
    """Delete the temporary files that writers of `path` killed mid-write left behind (SIGKILL skips
    every cleanup): `.NAME.PID.tmp` whose process is gone."""
    for tmp in path.parent.glob(f".{path.name}.*.tmp"):
        pid = tmp.name[len(path.name) + 2:-len(".tmp")]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            if tmp.is_dir():
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                tmp.unlink(missing_ok=True)


def atomic_write(path: str | Path, write) -> Path:
    """Call write(tmp) on a temporary path beside `path`, then rename it over `path`.

    Readers see the old file or the new one, never a mix. The temporary file is opened normally, so the
    result gets the user's usual permissions (umask), readable in a shared course folder. A write that
    fails (a full disk, a quota) raises OSError naming `path` and the cause; the old file is untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except OSError as error:
        raise OSError(f"could not write {path}: {error.strerror or error}"
                      + ("; the previous file is unchanged" if path.exists() else "")) from error
    except RuntimeError as error:  # torch.save reports a short write as RuntimeError ("unexpected pos ...")
        if tmp.exists() and "unexpected pos" in str(error):
            raise OSError(f"could not write {path}: the disk is full or a quota is reached"
                          + ("; the previous file is unchanged" if path.exists() else "")) from error
        raise
    finally:
        tmp.unlink(missing_ok=True)
    return path


def writable_folder(path: str | Path, option: str = "--out") -> Path:
    """`path` as a folder that exists or can be created and written to: checked before long work starts,
    so that a run does not end, after all its work, on a path that is a file, a read-only folder or a
    virtual file system. A folder created for the check is removed again (nothing is left if the run then
    stops on another error)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{option} {path} is a file, not a folder")
    existing = next(p for p in [path, *path.parents] if p.exists())
    if not existing.is_dir():
        raise UserError(f"{option} {path}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"{option} {path}: cannot write to {existing} (permission denied)")
    created = [p for p in [path, *path.parents] if not p.exists()]
    try:
        for attempt in range(3):
            created += [p for p in [path, *path.parents] if not p.exists() and p not in created]
            path.mkdir(parents=True, exist_ok=True)
            try:
                with tempfile.TemporaryFile(dir=path):
                    break
            except FileNotFoundError:  # another process (a torchrun rank) checking the same path removed it
                if attempt == 2:
                    raise
    except OSError as error:
        raise UserError(f"{option} {path}: cannot create or write a file there ({error.strerror or error})") from error
    finally:
        for folder in created:  # innermost first
            try:
                folder.rmdir()
            except OSError:
                pass
    return path


class OutputLock:
    """An exclusive lock on `path` for the life of one run (`with OutputLock(path): ...`): a second run
    writing the same output is refused at once, naming the holder's PID. The lock is the kernel's
    (flock on `.NAME.lock` beside the output), so it is released when its process ends, however it ends:
    it never goes stale."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.lock = self.path.with_name(f".{self.path.name}.lock")
        self.fd = None

    def __enter__(self):
        self.lock.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.lock, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "another process"
                os.close(fd)
                raise UserError(f"{self.path} is being written by process {holder} (another run into the same "
                                 "--out); wait for it to finish or choose another --out") from None
            try:  # the file we locked may have been unlinked by a holder that just finished: lock anew
                same = os.fstat(fd).st_ino == os.stat(self.lock).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self.fd = fd
        return self

    def __exit__(self, *exc):
        self.lock.unlink(missing_ok=True)  # while still holding it: see the inode check in __enter__
        os.close(self.fd)
        self.fd = None
        return False
