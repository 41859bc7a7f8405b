"""Scrub workers (and the resource tracker) die with a server killed by SIGKILL (issue 12)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc")

SCRIPT = textwrap.dedent(
    """
    import os, sys, time
    from privsynth.server.scrubbing.pipeline import ParallelScrubber

    scrubber = ParallelScrubber(workers=1)
    scrubber.load()
    print("ready", flush=True)
    time.sleep(600)
    """
)


def _children(pid: int) -> set[int]:
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.add(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_workers_exit_when_the_server_is_killed() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    children: set[int] = set()
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        children |= _children(proc.pid)
        assert children  # the worker (and a resource tracker, if one started)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        deadline = time.monotonic() + 10
        while any(_alive(pid) for pid in children):
            assert time.monotonic() < deadline, "scrub workers outlived the killed server"
            time.sleep(0.2)
    finally:
        if proc.poll() is None:
            proc.kill()
        for pid in children:  # orphans, should the test fail
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
