"""Usage events the database could not take, kept on local disk until it can.

Each process appends to its own file in ``USAGE_SPOOL_DIR`` (one JSON event a line,
flushed and fsynced before the events leave memory), and holds an exclusive ``flock`` on
it while it is open. A replay (on the next flush, and at start-up) takes every file whose
lock it can get: this process's own after closing it, and those of processes that died.
It writes the events through the same idempotent write as the buffer (keyed by
``request_id``), then deletes the file: a replay interrupted half-way, by a crash or the
database going away again, is simply done again, with no row written twice.

A line that is not JSON (the last one of a process killed mid-write) is moved to
``rejected.jsonl`` beside the files, for a human: retrying cannot fix it.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
import uuid
from pathlib import Path

from django.conf import settings

logger = logging.getLogger(__name__)

SUFFIX = ".jsonl"
REJECTED_NAME = "rejected.jsonl"


def spool_dir() -> Path:
    return Path(settings.USAGE_SPOOL_DIR)


class _Spool:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._file = None
        self._path: Path | None = None

    def _open(self):
        if self._file is None:
            directory = spool_dir()
            directory.mkdir(parents=True, exist_ok=True)
            self._path = directory / f"usage-{os.getpid()}-{uuid.uuid4().hex[:12]}{SUFFIX}"
            handle = open(self._path, "a", encoding="utf-8")  # noqa: SIM115 - kept open
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            self._file = handle
        return self._file

    def write(self, events: list[dict]) -> None:
        """Append the events durably; raises OSError when the disk cannot take them."""
        if not events:
            return
        lines = "".join(
            json.dumps(event, separators=(",", ":"), default=str) + "\n" for event in events
        )
        with self._lock:
            handle = self._open()
            handle.write(lines)
            handle.flush()
            os.fsync(handle.fileno())
        logger.warning("spooled %s usage events to %s", len(events), self._path)

    def close(self) -> None:
        with self._lock:
            self._close_locked()

    def _close_locked(self) -> None:
        if self._file is not None:
            self._file.close()  # releases the lock: the file can be replayed
            self._file = None
            self._path = None

    def pending(self) -> bool:
        """Whether any spooled file waits (a directory listing; no file is read)."""
        directory = spool_dir()
        if not directory.is_dir():
            return False
        return any(
            entry.name.endswith(SUFFIX) and entry.name != REJECTED_NAME
            for entry in os.scandir(directory)
        )

    def replay(self, write_events, *, database_up) -> int:
        """Write every replayable file with ``write_events(events)``; the events written.

        Stops at the first failure (the database is still away), leaving that file and
        the rest for the next replay. This process's own file is closed and replayed only
        once ``database_up()`` says so: closing it on every attempt of an outage would
        leave a file per attempt behind.
        """
        directory = spool_dir()
        if not directory.is_dir():
            return 0
        replayed = 0
        # Others' files first (ours is skipped: our own lock on it is held elsewhere).
        for path in sorted(directory.glob(f"usage-*{SUFFIX}")):
            replayed += self._replay_file(path, write_events)
        with self._lock:
            own = self._path
            if own is None or not database_up():
                return replayed
            self._close_locked()
        return replayed + self._replay_file(own, write_events)

    def _replay_file(self, path: Path, write_events) -> int:
        try:
            handle = open(path, "r+", encoding="utf-8", errors="replace")  # noqa: SIM115
        except FileNotFoundError:
            return 0  # another process replayed it just now
        with handle:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return 0  # its process is alive and still writing to it
            if not path.exists():
                return 0  # replayed and deleted between our open and our lock
            events, rejected = [], []
            for line in handle:
                if not line.strip():
                    continue
                try:
                    events.append(json.loads(line))
                except ValueError:
                    rejected.append(line if line.endswith("\n") else line + "\n")
            batch = max(int(getattr(settings, "USAGE_FLUSH_BATCH", 500)), 1)
            for start in range(0, len(events), batch):
                write_events(events[start : start + batch])
            if rejected:
                logger.error(
                    "%s spooled usage lines are not JSON; kept in %s", len(rejected), REJECTED_NAME
                )
                with open(path.parent / REJECTED_NAME, "a", encoding="utf-8") as out:
                    out.writelines(rejected)
            path.unlink()
        if events:
            logger.warning("replayed %s spooled usage events from %s", len(events), path.name)
        return len(events)


usage_spool = _Spool()
