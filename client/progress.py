"""A dependency-free progress bar for the CLI (the client installs without tqdm or rich).

On a terminal it redraws one line; otherwise (CI logs, pipes) it prints a line at most every
few seconds so that logs stay readable.
"""

from __future__ import annotations

import sys
import threading
import time
from types import TracebackType
from typing import TextIO

__all__ = ["ProgressBar", "UploadProgress"]


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
        self._final_shown = False

    def update(self, done: int, *, total: int | None = None, suffix: str = "") -> None:
        """Show ``done`` out of ``total`` (total may change, e.g. once a job knows its steps)."""
        if total is not None:
            self.total = total
        now = time.monotonic()
        interval = 0.1 if self.tty else 5.0
        final = self.total is not None and done >= self.total and not self._final_shown
        if now - self._last < interval and not final:
            return
        self._last = now
        self._final_shown = self._final_shown or final
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


class UploadProgress:
    """An upload's bar: records sent, then the wait while the server scrubs the last of them.

    The server scrubs batches as they arrive, so while records go out the bar is also the
    scrub's progress; once all are sent, the server still scrubs what it holds and stores the
    shard. A ticker thread keeps the bar moving (elapsed time, "server scrubbing") through that
    wait, so that a long scrub does not look like a hang. ``sent`` is called from gRPC's
    sending thread, hence the lock.
    """

    def __init__(
        self, total: int, *, stream: TextIO | None = None, tick_seconds: float = 1.0
    ) -> None:
        self._bar = ProgressBar("upload", total=total, stream=stream)
        self._total = total
        self._sent = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._tick_seconds = tick_seconds
        self._ticker = threading.Thread(target=self._tick, name="upload-progress", daemon=True)

    def _suffix(self) -> str:
        if self._sent >= self._total:
            return "all sent; server scrubbing and storing"
        return "sent (scrubbed as they arrive)"

    def sent(self, count: int) -> None:
        """``count`` records have been handed to gRPC."""
        with self._lock:
            self._sent = count
            self._bar.update(count, suffix=self._suffix())

    def _tick(self) -> None:
        while not self._stop.wait(self._tick_seconds):
            with self._lock:
                self._bar.update(self._sent, suffix=self._suffix())

    def __enter__(self) -> UploadProgress:
        self._ticker.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._ticker.join()
        self._bar.close()
