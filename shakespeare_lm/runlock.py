"""A lock on a training run directory, so two trainings never write into the same one.

The lock is an OS advisory lock (`flock` on POSIX, `msvcrt.locking` on Windows) on the file
`<run dir>/.lock`. The operating system releases it when the process exits, however it exits, so
a SIGKILL never leaves a stale lock behind; the file itself may stay and means nothing alone.
"""

from __future__ import annotations

import os
from pathlib import Path

LOCK_FILE = ".lock"


class RunDirLockedError(RuntimeError):
    """Another process is training into the same run directory."""


class RunLock:
    """Hold the lock on `run_dir` while in a `with` block (or between acquire() and release())."""

    def __init__(self, run_dir: str | os.PathLike):
        self.run_dir = Path(run_dir)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> RunLock:
        if self._fd is not None:
            return self
        self.run_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            _lock(fd)
        except OSError:
            os.close(fd)
            raise RunDirLockedError(
                f"another training is writing to {self.run_dir} (it holds {self.run_dir / LOCK_FILE}); "
                "wait for it to finish or choose another --out"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())  # for a curious human; the lock is what counts
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            _unlock(self._fd)
        finally:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


if os.name == "nt":  # pragma: no cover - exercised on Windows only
    import msvcrt

    def _lock(fd: int) -> None:
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)

    def _unlock(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def _lock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)
