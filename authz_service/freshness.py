"""Read-your-writes between the processes of one host: a small shared table of change counters.

Every process that writes a policy change (a gunicorn worker, the CLI, ``generate``) adds one to the
counter of the changed CPAS's slot *after* its transaction commits and before it answers. Every
decision compares the counter of its CPAS's slot with the value it saw when it last built that CPAS
from the store; when they differ, it rebuilds the CPAS from the store before answering. So once a
change has been answered, no process on this host decides without it, whatever worker the next
request reaches.

The table is a file mapped into memory (``mmap``): reading a counter is one 8-byte load, no system
call and no lock. Slot 0 counts changes that touch every CPAS (a new catalog); CPAS share the other
slots by hash, so a change to one CPAS may make a neighbour rebuild needlessly, never the reverse.
Counters only grow; writers take an ``flock`` for the increment.

Where the file lives: beside a SQLite database (every process using that file is on this host), or
under the system's temporary folder in a folder private to the user, named after the database URL
(``AUTHZ_VERSION_BOARD`` names another path). Processes on other hosts are kept in step by the
notifications, the poller and the ``min_policy_version`` consistency token (see README).
"""

from __future__ import annotations

import fcntl
import hashlib
import mmap
import os
import stat
import tempfile
import threading
import zlib
from pathlib import Path

SLOTS = 4096
EVERYTHING = 0
_SIZE = SLOTS * 8


def slot_of(cpas: str) -> int:
    return 1 + zlib.crc32(cpas.encode()) % (SLOTS - 1)


def default_path(database_url: str) -> Path | None:
    """Where the board of this database lives; None for an in-memory SQLite database."""
    if database_url.startswith("sqlite"):
        path = database_url.split("///", 1)[-1]
        if not path or path == ":memory:" or "mode=memory" in path:
            return None
        return Path(path.split("?", 1)[0] + ".versions")
    folder = Path(tempfile.gettempdir()) / f"authz-{os.getuid()}"
    return folder / f"versions-{hashlib.sha256(database_url.encode()).hexdigest()[:20]}"


def _private_folder(folder: Path) -> None:
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = folder.stat()
    if info.st_uid != os.getuid() or stat.S_IMODE(info.st_mode) & 0o077:
        raise PermissionError(f"{folder} must belong to this user and be private (mode 700)")


class VersionBoard:
    """The shared counters (or, with no path, counters private to this process)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._fd: int | None = None
        self._map: mmap.mmap | None = None
        self._local_lock = threading.Lock()
        if path is None:
            buffer: bytearray | mmap.mmap = bytearray(_SIZE)
        else:
            if path.parent != Path(tempfile.gettempdir()) / f"authz-{os.getuid()}":
                path.parent.mkdir(parents=True, exist_ok=True)
            else:
                _private_folder(path.parent)
            self._fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o600)
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                if os.fstat(self._fd).st_size < _SIZE:
                    os.ftruncate(self._fd, _SIZE)  # new pages read as zeros
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            self._map = mmap.mmap(self._fd, _SIZE)
            buffer = self._map
        self._counters = memoryview(buffer).cast("Q")

    @classmethod
    def for_database(cls, database_url: str, override: str | None = None) -> VersionBoard:
        return cls(Path(override) if override else default_path(database_url))

    def after_fork(self) -> None:
        """In a forked child: its own descriptor. ``flock`` locks belong to the open file, which a fork
        shares, so with the parent's descriptor two workers would both hold the lock at once. The mapping
        stays: it is the same shared file."""
        if self.path is None or self._fd is None:
            return
        fd = os.open(self.path, os.O_RDWR | getattr(os, "O_NOFOLLOW", 0))
        os.close(self._fd)
        self._fd = fd
        self._local_lock = threading.Lock()

    def read(self, slot: int) -> int:
        return self._counters[slot]

    def snapshot(self) -> bytes:
        """Every counter at once (for a full sync)."""
        return self._counters.cast("B").tobytes()

    def changed(self, cpas: str | None) -> None:
        """After a commit: one more change of ``cpas`` (None: of every CPAS)."""
        slot = EVERYTHING if cpas is None else slot_of(cpas)
        with self._local_lock:
            if self._fd is not None:
                fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                self._counters[slot] = (self._counters[slot] + 1) & 0xFFFF_FFFF_FFFF_FFFF
            finally:
                if self._fd is not None:
                    fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        self._counters.release()
        if self._map is not None:
            self._map.close()
            self._map = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
