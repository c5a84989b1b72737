"""Progress of long jobs: a terminal bar, or JSON-lines events for other programs.

Every long-running ``rsuper`` command (extraction, training, inference)
reports through :class:`Progress`. In ``jsonl`` mode each event is one JSON
object per line on stdout, flushed at once, so the Slicer module (or any
other reader) can follow the job line by line::

    {"event": "start", "total": 120, "done": 0, "time": 1733330000.0}
    {"event": "progress", "done": 5, "total": 120, "rate": 812.3, "eta_s": 0.1, ...}
    {"event": "error", "case_id": "c7", "reason": "empty report text"}
    {"event": "end", "done": 120, "total": 120, ...}

Extra keyword fields given to :meth:`Progress.update` are copied into the
``progress`` event.
"""

from __future__ import annotations

import json
import sys
import time
from typing import IO, Any

MODES = ("auto", "bar", "jsonl", "none")


class Progress:
    """Report progress of ``total`` units of work.

    Args:
        total: number of units (``None`` if unknown).
        mode: ``bar`` (tqdm on stderr), ``jsonl`` (events on ``stream``),
            ``none``, or ``auto`` (a bar when stderr is a terminal).
        desc: label of the bar.
        initial: units already done (a resumed job).
        stream: where JSON events go (default stdout).
    """

    def __init__(
        self,
        total: int | None,
        mode: str = "auto",
        desc: str = "",
        initial: int = 0,
        stream: IO[str] | None = None,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"progress mode {mode!r} not one of {MODES}")
        if mode == "auto":
            mode = "bar" if sys.stderr.isatty() else "none"
        self.mode = mode
        self.total = total
        self.done = initial
        self._initial = initial
        self._t0 = time.monotonic()
        self._stream = stream or sys.stdout
        self._bar = None
        if mode == "bar":
            from tqdm import tqdm

            self._bar = tqdm(total=total, initial=initial, desc=desc, unit="it", dynamic_ncols=True, file=sys.stderr)
        self.event("start", total=total, done=initial)

    def rate(self) -> float:
        """Units per second since the start (this run only)."""
        elapsed = time.monotonic() - self._t0
        return (self.done - self._initial) / elapsed if elapsed > 0 else 0.0

    def eta_s(self) -> float | None:
        """Estimated seconds left, or ``None`` when unknown."""
        r = self.rate()
        if self.total is None or r <= 0:
            return None
        return max(self.total - self.done, 0) / r

    def update(self, n: int = 1, **fields: Any) -> None:
        """Count ``n`` more units done; ``fields`` go into the JSON event / bar postfix."""
        self.done += n
        if self._bar is not None:
            self._bar.update(n)
            if fields:
                self._bar.set_postfix({k: v for k, v in fields.items() if not isinstance(v, (dict, list))},
                                      refresh=False)
        elif self.mode == "jsonl":
            eta = self.eta_s()
            self.event(
                "progress",
                done=self.done,
                total=self.total,
                rate=round(self.rate(), 3),
                eta_s=None if eta is None else round(eta, 1),
                **fields,
            )

    def event(self, name: str, **fields: Any) -> None:
        """Emit a named event (only in ``jsonl`` mode; a bar shows errors as lines)."""
        if self.mode == "jsonl":
            record = {"event": name, "time": round(time.time(), 3), **fields}
            self._stream.write(json.dumps(record, ensure_ascii=False) + "\n")
            self._stream.flush()
        elif self._bar is not None and name == "error":
            self._bar.write(f"error: {fields.get('case_id', '')}: {fields.get('reason', '')}", file=sys.stderr)

    def close(self, **summary: Any) -> None:
        """Finish: close the bar, emit the ``end`` event with ``summary``."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        fields = {"done": self.done, "total": self.total, "elapsed_s": round(time.monotonic() - self._t0, 3)}
        fields.update(summary)
        self.event("end", **fields)
