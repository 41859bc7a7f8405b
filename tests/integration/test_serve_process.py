"""`privsynth serve` as a real process: configured by env + flags, stops cleanly on SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from privsynth.client.client import PrivsynthClient


def test_serve_honours_env_and_stops_on_sigterm(tmp_path: Path) -> None:
    env = dict(os.environ)
    env.update(
        {
            "PRIVSYNTH_DATA_DIR": str(tmp_path / "from-env"),
            "PRIVSYNTH_METRICS_PORT": "-1",
            "PRIVSYNTH_SHUTDOWN_GRACE_SECONDS": "2",
        }
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "privsynth.client.cli", "serve", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.search(r"serving gRPC on 127\.0\.0\.1:(\d+)", line)
        assert match, line
        with PrivsynthClient(f"127.0.0.1:{match.group(1)}") as client:
            client.wait_until_serving(timeout=120)
            assert list(client.list_datasets()) == []
        assert (tmp_path / "from-env" / "privsynth.db").exists()
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
        assert code == 0
        assert time.monotonic() - started < 30
        assert "shutting down" in (proc.stderr.read() if proc.stderr else "")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
