"""Two-process DP training (torchrun, gloo) is accounted like one process."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

from corpus import fortunes


def test_two_ranks_report_single_process_epsilon(tmp_path: Path) -> None:
    from opacus.accountants import PRVAccountant

    data = tmp_path / "shard.jsonl"
    with data.open("w") as fh:
        for r in fortunes(80):
            fh.write(json.dumps({"text": r.text, "label": r.label}) + "\n")
    out = tmp_path / "run"
    with socket.socket() as sock:  # torchrun's static rendezvous needs a concrete port
        sock.bind(("127.0.0.1", 0))
        port = str(sock.getsockname()[1])
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "--master_port",
            port,
            "-m",
            "privsynth.models.distributed",
            "--data",
            str(data),
            "--epsilon",
            "4",
            "--delta",
            "1e-5",
            "--epochs",
            "2",
            "--preset",
            "tiny",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    card = json.loads((out / "card.json").read_text())
    assert card["world_size"] == 2
    assert card["backend"] == "gloo"
    # The same sampling rate, noise and step count on one process give the same epsilon.
    single = PRVAccountant()
    single.history = [(card["noise_multiplier"], card["sample_rate"], card["steps"])]
    assert abs(single.get_epsilon(delta=1e-5) - card["epsilon"]) < 1e-6
    assert 0.9 * 4 < card["epsilon"] <= 4 + 1e-6
    assert (out / "weights.pt").stat().st_size > 0
