"""A dependency-free progress bar for the CLI (the client installs without tqdm or rich).

On a terminal it redraws one line; otherwise (CI logs, pipes) it prints a line at most every
few seconds so that logs stay readable.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["ProgressBar"]


class ProgressBar:
    """``[#####.....] 50/100 label`` on stderr."""

    def __init__(
        self, label: str, total: int | None = None, *, stream: TextIO | None = None
    ) -> None:
        self.label = label
        self.total = total
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self._last = 0.0
        self._started = time.monotonic()
        self._width = 30

    def update(self, done: int, *, total: int | None = None, suffix: str = "") -> None:
        """Show ``done`` out of ``total`` (total may change, e.g. once a job knows its steps)."""
        if total is not None:
            self.total = total
        now = time.monotonic()
        interval = 0.1 if self.tty else 5.0
        final = self.total is not None and done >= self.total
        if now - self._last < interval and not final:
            return
        self._last = now
        elapsed = now - self._started
        if self.total:
            frac = min(1.0, done / self.total)
            filled = int(frac * self._width)
            bar = "#" * filled + "." * (self._width - filled)
            line = f"{self.label} [{bar}] {done}/{self.total} {elapsed:5.0f}s {suffix}"
        else:
            line = f"{self.label} {done} {elapsed:5.0f}s {suffix}"
        if self.tty:
            self.stream.write("\r" + line.ljust(100)[:120])
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        """End the bar's line."""
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
