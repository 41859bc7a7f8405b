"""SIGTERM during a long upload: the server exits within its grace plus a few seconds (issue 12).

Before, the upload's scrubbing ran to its end (5 min 28 s against a 10 s grace).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
from corpus import long_text
from privsynth.client.client import PrivsynthClient
from privsynth.client.pb import datasets_pb2

GRACE_S = 2.0


def _requests() -> Iterator[datasets_pb2.UploadDatasetRequest]:
    yield datasets_pb2.UploadDatasetRequest(
        metadata=datasets_pb2.DatasetMetadata(display_name="interrupted")
    )
    for i in range(60):
        rec = datasets_pb2.Record(text=long_text(i).encode("utf-8"))
        yield datasets_pb2.UploadDatasetRequest(records=datasets_pb2.RecordBatch(records=[rec]))


def test_sigterm_during_an_upload_exits_within_grace(tmp_path: Path) -> None:
    env = dict(os.environ)
    env.update(
        {
            "PRIVSYNTH_DATA_DIR": str(tmp_path / "data"),
            "PRIVSYNTH_METRICS_PORT": "-1",
            "PRIVSYNTH_SHUTDOWN_GRACE_SECONDS": str(GRACE_S),
            "PRIVSYNTH_SCRUB_WORKERS": "1",
            "PRIVSYNTH_TRAINING_WORKERS": "0",
        }
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "privsynth.client.cli", "serve", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    outcome: list[BaseException | None] = []
    try:
        assert proc.stdout is not None
        match = re.search(r"serving gRPC on 127\.0\.0\.1:(\d+)", proc.stdout.readline())
        assert match
        with PrivsynthClient(f"127.0.0.1:{match.group(1)}") as client:
            client.wait_until_serving(timeout=180)

            def upload() -> None:
                try:
                    client.datasets.UploadDataset(_requests(), timeout=600)
                    outcome.append(None)
                except grpc.RpcError as exc:
                    outcome.append(exc)

            t = threading.Thread(target=upload, daemon=True)
            t.start()
            time.sleep(5)  # the upload is scrubbing
            assert not outcome
            started = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=120)
            took = time.monotonic() - started
            print(f"\nexited {took:.1f} s after SIGTERM (grace {GRACE_S:.0f} s), code {code}")
            assert code == 0
            assert took < GRACE_S + 8
            t.join(10)
            assert outcome and outcome[0] is not None  # the upload did not complete
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
