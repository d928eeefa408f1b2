"""The applied feature definitions and materialization watermarks, in one JSON file.

Every adapter keeps dataplane's record of what is applied here (``<features dir>/state.json``);
``plan`` diffs against it and every request is checked against it. Writes replace the file
atomically (temporary file, fsync, rename), so a reader — in this process or another —
sees the old state or the new one, never a torn file. Readers notice a change by the
file's modification time and reload; they look at most every ``recheck_s`` (one second),
so an apply in another process is seen within a second, one in this process at once.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .definitions import Definitions

__all__ = ["FeatureState"]


class FeatureState:
    """``definitions`` applied, and per view the end of its latest materialization."""

    recheck_s = 1.0

    def __init__(self, path: Path):
        self.path = path
        self._checked = -1e9
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._definitions = Definitions()
        self._watermarks: dict[str, str] = {}

    @property
    def definitions(self) -> Definitions:
        if time.monotonic() - self._checked >= self.recheck_s:
            self._refresh()
        return self._definitions

    def watermark(self, view: str) -> datetime | None:
        """End of the view's latest materialization, or ``None`` if never materialized."""
        self._refresh()
        value = self._watermarks.get(view)
        return datetime.fromisoformat(value) if value else None

    def save(self, definitions: Definitions, reset: list[str]) -> None:
        """Record ``definitions``; the watermarks of ``reset`` views (and of views no
        longer defined) are forgotten."""
        with self._lock:
            self._refresh_locked()
            keep = {v.name for v in definitions.views} - set(reset)
            marks = {k: v for k, v in self._watermarks.items() if k in keep}
            self._write({"definitions": definitions.to_dict(), "watermarks": marks})

    def set_watermark(self, view: str, end: datetime) -> None:
        with self._lock:
            self._refresh_locked()
            marks = {**self._watermarks, view: end.astimezone(UTC).isoformat()}
            self._write({"definitions": self._definitions.to_dict(), "watermarks": marks})

    def _refresh(self) -> None:
        with self._lock:
            self._refresh_locked()

    def _refresh_locked(self) -> None:
        self._checked = time.monotonic()
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp != self._stamp:
            raw = json.loads(self.path.read_text())
            self._definitions = Definitions.from_mapping(raw["definitions"])
            self._watermarks = dict(raw.get("watermarks", {}))
            self._stamp = stamp

    def _write(self, raw: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".state-")
        try:
            with os.fdopen(fd, "w") as file:
                json.dump(raw, file, indent=1)
                file.flush()
                os.fsync(file.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self._stamp = None
        self._refresh_locked()
