"""A pytest plugin that prints the machine's and this process' state every N seconds.

CI runs have taken ten to fifty times as long as the same tests on a quiet machine, but only for
work inside the pytest process: tests whose work runs in subprocesses took about as long as
here. A per-file time cannot say why. With ``PRIVSYNTH_TEST_WATCHDOG_S`` set (``.ci/run`` sets
it and follows the file), a daemon thread writes one line per period: the running test, load,
CPU pressure, steal time, this process' resident memory and page faults, its busiest threads
and the machine's busiest processes over the period (a thread or process spinning beside the
tests shows by name). Counts and names only, never test data.

It found the cause the first time it ran beside a slow run: a fuzzed CreateTrainingJob with a
holdout fraction of 1e-300 left a gRPC worker thread counting up to 10/fraction, and that
thread's share of the GIL slowed every later test in the process (fixed in
``privacy.holdout.minimum_units``).
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

_current = ["(collecting)"]


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def _cpu_ticks() -> tuple[int, int]:
    """(all, steal) jiffies of the machine since boot."""
    fields = _read("/proc/stat").split("\n", 1)[0].split()[1:]
    values = [int(v) for v in fields]
    return sum(values), values[7] if len(values) > 7 else 0


def _self_stat() -> tuple[int, int]:
    """(minor, major) page faults of this process."""
    stat = _read("/proc/self/stat")
    fields = stat.rsplit(")", 1)[-1].split()
    return int(fields[7]), int(fields[9])


def _cpu_by_entry(directory: Path) -> dict[str, tuple[str, int]]:
    """id -> (name, user+system jiffies) for each numbered entry of ``directory``.

    ``/proc/self/task`` gives this process' threads, ``/proc`` every process on the machine.
    """
    out: dict[str, tuple[str, int]] = {}
    for entry in directory.iterdir():
        stat = _read(f"{entry}/stat") if entry.name.isdigit() else ""
        if stat:
            name = stat[stat.index("(") + 1 : stat.rindex(")")]
            fields = stat.rsplit(")", 1)[-1].split()
            out[entry.name] = (name, int(fields[11]) + int(fields[12]))
    return out


def _threads() -> dict[str, tuple[str, int]]:
    """tid -> (name, user+system jiffies) for this process' threads."""
    return _cpu_by_entry(Path("/proc/self/task"))


def _processes() -> dict[str, tuple[str, int]]:
    """pid -> (name, user+system jiffies) for every process on the machine."""
    return _cpu_by_entry(Path("/proc"))


def _busiest(now: dict[str, tuple[str, int]], before: dict[str, tuple[str, int]]) -> str:
    used = sorted(
        ((jiffies - before.get(key, (name, 0))[1], name) for key, (name, jiffies) in now.items()),
        reverse=True,
    )[:4]
    return ", ".join(f"{name}={n}" for n, name in used)


def _status(key: str) -> str:
    for line in _read("/proc/self/status").splitlines():
        if line.startswith(key + ":"):
            return line.split(":", 1)[1].strip()
    return "?"


def _loop(period: float, write: Any, stop: threading.Event) -> None:
    started = time.monotonic()
    ticks, faults, threads, procs = _cpu_ticks(), _self_stat(), _threads(), _processes()
    while not stop.wait(period):
        now_ticks, now_faults = _cpu_ticks(), _self_stat()
        now_threads, now_procs = _threads(), _processes()
        total = max(1, now_ticks[0] - ticks[0])
        steal = 100.0 * (now_ticks[1] - ticks[1]) / total
        pressure = _read("/proc/pressure/cpu").split("\n", 1)[0].replace("some ", "")
        write(
            f"[watchdog {time.monotonic() - started:.0f}s] test {_current[0]}; "
            f"load {' '.join(_read('/proc/loadavg').split()[:3])}; cpu pressure {pressure}; "
            f"steal {steal:.1f}%; rss {_status('VmRSS')}; threads {len(now_threads)}; "
            f"faults +{now_faults[0] - faults[0]} minor +{now_faults[1] - faults[1]} major; "
            f"busiest threads (jiffies): {_busiest(now_threads, threads)}; "
            f"busiest processes: {_busiest(now_procs, procs)}"
        )
        ticks, faults, threads, procs = now_ticks, now_faults, now_threads, now_procs


_stop = threading.Event()


def pytest_configure(config: pytest.Config) -> None:
    """Start the watchdog thread when ``PRIVSYNTH_TEST_WATCHDOG_S`` asks for it.

    Lines go to the file ``PRIVSYNTH_TEST_WATCHDOG_LOG`` (default ``build/test-watchdog.log``):
    pytest captures this process' stdout and stderr during tests, so ``.ci/run`` follows the
    file instead.
    """
    period = float(os.environ.get("PRIVSYNTH_TEST_WATCHDOG_S", "0") or 0)
    if period <= 0 or not Path("/proc/self/task").is_dir():
        return
    path = Path(os.environ.get("PRIVSYNTH_TEST_WATCHDOG_LOG") or "build/test-watchdog.log")
    path.parent.mkdir(parents=True, exist_ok=True)

    def write(line: str) -> None:
        with path.open("a", encoding="utf-8") as out:
            out.write(line + "\n")

    thread = threading.Thread(
        target=_loop, args=(period, write, _stop), name="test-watchdog", daemon=True
    )
    thread.start()


def pytest_unconfigure(config: pytest.Config) -> None:
    """Stop the watchdog thread."""
    _stop.set()


def pytest_runtest_logstart(nodeid: str, location: tuple[str, int | None, str]) -> None:
    """Remember the running test for the next line."""
    _current[0] = nodeid
