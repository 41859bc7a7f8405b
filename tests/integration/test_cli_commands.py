"""The CLI's client commands against a real server: upload, train, watch, sample, budget."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from corpus import SECRET_EMAIL, fortunes, tickets
from privsynth.client.cli import main
from privsynth.client.client import PrivsynthClient


def test_cli_round_trip(server: object, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = ["--target", f"127.0.0.1:{server.port}"]  # type: ignore[attr-defined]
    corpus = tmp_path / "corpus.jsonl"
    with corpus.open("w") as fh:
        for r in tickets(8) + fortunes(40):
            fh.write(json.dumps({"text": r.text, "label": r.label}) + "\n")

    assert main([*target, "upload", str(corpus), "--epsilon-cap", "6"]) == 0
    out = capsys.readouterr().out
    dataset = re.search(r"dataset (datasets/[0-9a-f]+)", out)
    assert dataset, out
    assert "EMAIL_ADDRESS" in out and SECRET_EMAIL not in out

    assert (
        main(
            [
                *target,
                "train",
                dataset.group(1),
                "--epsilon",
                "2",
                "--epochs",
                "1",
                "--preset",
                "tiny",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    model = re.search(r"-> model (models/[0-9a-f]+)", out)
    job = re.search(r"job (jobs/[0-9a-f]+)", out)
    assert model and job, out
    assert "JOB_STATE_SUCCEEDED" in out

    assert main([*target, "watch", job.group(1)]) == 0
    assert "JOB_STATE_SUCCEEDED" in capsys.readouterr().out

    assert (
        main([*target, "sample", model.group(1), "-n", "3", "--seed", "5", "--max-tokens", "8"])
        == 0
    )
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert len(lines) == 3
    assert all(x["synthetic"] is True and x["model"] == model.group(1) for x in lines)
    assert all(0 < x["epsilon"] <= 2.0 for x in lines)

    assert main([*target, "budget", dataset.group(1), "--ledger"]) == 0
    out = capsys.readouterr().out
    assert "remaining" in out and "reserve" in out and "commit" in out

    # Over budget: exit code 3 and the remaining budget in the message.
    assert (
        main(
            [*target, "train", dataset.group(1), "--epsilon", "8", "--no-watch", "--preset", "tiny"]
        )
        == 3
    )
    assert "remaining epsilon" in capsys.readouterr().err


def test_job_survives_the_client_disconnecting(server: object) -> None:
    addr = f"127.0.0.1:{server.port}"  # type: ignore[attr-defined]
    with PrivsynthClient(addr) as first:
        ds = first.upload_dataset(fortunes(40), display_name="detached")
        job = first.create_training_job(ds.name, target_epsilon=1.0, epochs=1, preset="tiny")
    with PrivsynthClient(addr, stream_timeout=300) as second:
        final = list(second.watch_training_job(job.name))[-1]
        assert final.progress.step > 0
        assert second.get_model(job.model).card.epsilon > 0


def test_cli_reports_bad_input_without_traceback(
    server: object, capsys: pytest.CaptureFixture[str]
) -> None:
    target = ["--target", f"127.0.0.1:{server.port}"]  # type: ignore[attr-defined]
    assert main([*target, "train", "datasets/0000000000000abc", "--epsilon", "1"]) == 2
    err = capsys.readouterr().err
    assert "NOT_FOUND" in err and "Traceback" not in err
    assert main([*target, "sample", "models/00000000000000ab", "-n", "0"]) == 2
    assert "count" in capsys.readouterr().err
