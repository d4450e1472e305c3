"""Safe file writing: unique temporary files, atomic renames, one writer per folder.

Every writer in facexpr goes through these helpers, so that:

- a temporary file has a unique name, created exclusively (``O_EXCL``): two runs never share one,
  and a symlink planted at a predictable name is never followed (its target is never written);
- a temporary name stays short whatever the final name is (a 250-byte file name plus a suffix
  would pass the 255-byte limit of most file systems);
- the final file appears complete or not at all (``os.replace`` in the same folder), with the mode
  a plain ``open`` would give it;
- one run at a time writes into a folder (:class:`FolderLock`, an ``flock`` released by the kernel
  when the process ends, even by SIGKILL, so a resumed run is never locked out by a dead one).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from facexpr.core.errors import InputError

LOCK_NAME = ".facexpr.lock"


def make_public(path: str | Path) -> None:
    """Gives a temp file (``mkstemp`` creates them 0600) the mode a plain ``open`` would: 0666
    less the process umask, so atomically written outputs are readable like any other."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def _short_prefix(name: str) -> str:
    # Keep the start of the final name for people looking at the folder, bounded in bytes.
    head = name.encode("utf-8", "surrogateescape")[:40].decode("utf-8", "ignore")
    return f".{head}." if head else ".facexpr."


def unique_temp(path: str | Path, suffix: str = ".tmp") -> Path:
    """Creates an empty, new temporary file beside ``path`` and returns its path.

    The name is unique (``mkstemp``: ``O_CREAT | O_EXCL``, so never an existing file or link) and
    at most about 60 bytes long. The caller renames it onto ``path`` (:func:`commit_temp`) or
    removes it.
    """
    p = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=_short_prefix(p.name), suffix=suffix, dir=p.parent)
    os.close(fd)
    return Path(tmp)


def commit_temp(tmp: str | Path, path: str | Path) -> None:
    """Moves a finished temporary file onto ``path`` atomically, with the usual file mode.

    ``os.replace`` renames the link itself when ``path`` is a symlink, so a planted link's target
    is never overwritten.
    """
    make_public(tmp)
    os.replace(tmp, path)


@contextlib.contextmanager
def atomic_write(
    path: str | Path, mode: str = "wb", encoding: str | None = None, newline: str | None = None
) -> Iterator[IO[Any]]:
    """Opens a unique temporary file beside ``path`` for writing; on a clean exit it is flushed,
    fsynced and renamed onto ``path``; on an exception it is removed and ``path`` is left as it
    was."""
    if "w" not in mode:
        raise ValueError(f"atomic_write needs a write mode, got {mode!r}")
    tmp = unique_temp(path)
    try:
        with open(tmp, mode, encoding=encoding, newline=newline) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        commit_temp(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    """Writes ``data`` to ``path`` atomically (see :func:`atomic_write`)."""
    with atomic_write(path, "wb") as fh:
        fh.write(data)


def write_text_atomic(path: str | Path, text: str) -> None:
    """Writes UTF-8 ``text`` to ``path`` atomically (see :func:`atomic_write`)."""
    with atomic_write(path, "w", encoding="utf-8", newline="") as fh:
        fh.write(text)


class FolderLock:
    """Holds an exclusive lock on a folder for one writing run.

    ``with FolderLock(out_dir, "facexpr analyze"):`` creates ``out_dir/.facexpr.lock`` (never
    through a symlink) and takes an ``flock`` on it. A second run into the same folder gets an
    :class:`InputError` naming the folder and the pid of the run that holds it. The kernel drops
    the lock when the holder exits, however it exits, so an interrupted run can be resumed at once.
    """

    def __init__(self, folder: str | Path, what: str = "facexpr") -> None:
        self.folder = Path(folder)
        self.what = what
        self._fd: int | None = None

    def acquire(self) -> FolderLock:
        self.folder.mkdir(parents=True, exist_ok=True)
        lock = self.folder / LOCK_NAME
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(lock, flags, 0o644)
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise InputError(lock, "is a symbolic link; remove it (never followed)") from None
            raise InputError(self.folder, f"cannot create a lock file there ({e.strerror})") from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = ""
            with contextlib.suppress(OSError, ValueError):
                holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            os.close(fd)
            who = f" (pid {holder})" if holder.isdigit() else ""
            raise InputError(
                self.folder,
                f"another run{who} is writing into this folder; wait for it to finish or choose "
                "another output folder",
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        # The file stays (removing it would race with a run that just opened it); the lock goes.
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, 0)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
