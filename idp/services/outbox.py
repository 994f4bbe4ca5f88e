"""The development outbox: SMS and e-mail written to a JSON-lines file instead of sent.

One JSON object per line and per message, with ``channel`` (``"sms"`` or
``"email"``), ``to``, ``created_at`` (ISO 8601, UTC) and the content. Appends
take an exclusive ``fcntl`` lock so that several worker processes can share one
file; reads take a shared lock and therefore never see half a line. The
development login pages and the tests read codes and links back from it. It
holds live codes, so the file is created readable by its owner only.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from connectors.config import ConfigTable

CHANNELS = ("sms", "email")
T = TypeVar("T")


def read_backend_tables(
    t: ConfigTable, backend: str | None, real: str, read_real: Callable[[ConfigTable], T]
) -> tuple[Path | None, T | None]:
    """The ``outbox`` path and the ``real`` backend's table (``[sms.http]``, ``[mail.smtp]``) of a
    delivery service's settings ``t``; each is required when ``backend`` names it."""
    outbox = t.path_value("outbox", None, must_exist=False)
    if backend == "outbox" and outbox is None:
        t.error("outbox", "is required when backend = outbox")
    settings = None
    if t.has(real):
        settings = read_real(t.table(real))
    elif backend == real:
        t.error(real, f"is required when backend = {real}")
    return outbox, settings


def utc_now() -> datetime:
    return datetime.now(UTC)


class Outbox:
    def __init__(self, path: str | os.PathLike[str], *, now: Callable[[], datetime] = utc_now) -> None:
        self.path = Path(path)
        self._now = now

    def append(self, record: dict[str, Any]) -> None:
        """Add one message; ``created_at`` is filled in unless given."""
        if record.get("channel") not in CHANNELS:
            raise ValueError(f"outbox record channel must be one of {', '.join(CHANNELS)}")
        if not record.get("to"):
            raise ValueError("outbox record needs a recipient 'to'")
        entry = {"created_at": self._now().isoformat(), **record}
        line = (json.dumps(entry, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            # One write of the whole line; the lock keeps long lines from interleaving.
            view = memoryview(line)
            while view:
                written = os.write(fd, view)
                view = view[written:]
        finally:
            os.close(fd)  # closing releases the lock

    def read(self) -> list[dict[str, Any]]:
        """Every message so far, oldest first; an absent file is an empty outbox."""
        try:
            f = self.path.open("rb")
        except FileNotFoundError:
            return []
        with f:
            fcntl.flock(f.fileno(), fcntl.LOCK_SH)
            data = f.read()
        return [json.loads(line) for line in data.decode("utf-8").splitlines() if line.strip()]
