"""The CLI's client commands against a real server: upload, train, watch, sample, budget, and
finding, inspecting, cancelling and deleting datasets, jobs and models, as text and as JSON."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from corpus import SECRET_EMAIL, fortunes, tickets
from privsynth.client.cli import main
from privsynth.client.client import PrivsynthClient
from privsynth.client.exit_codes import ExitCode


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
    model = re.search(r"-> model (models/[0-9a-f]+) \(preset tiny,", out)
    job = re.search(r"job (jobs/[0-9a-f]+)", out)
    assert model and job, out  # the preset the job runs is named (a default is chosen)
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
    missing = main([*target, "train", "datasets/0000000000000abc", "--epsilon", "1"])
    assert missing == ExitCode.NOT_FOUND
    err = capsys.readouterr().err
    assert "NOT_FOUND" in err and "DATASET_NOT_FOUND" in err and "Traceback" not in err
    assert main([*target, "sample", "models/00000000000000ab", "-n", "0"]) == ExitCode.USAGE
    assert "count" in capsys.readouterr().err


def test_a_record_the_server_refuses_is_named_by_its_line_in_the_file(
    server: object, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = ["--target", f"127.0.0.1:{server.port}"]  # type: ignore[attr-defined]
    corpus = tmp_path / "c.jsonl"
    corpus.write_text(
        '{"text": "fine", "label": "billing"}\n\n'
        f'{{"text": "also fine", "label": "{SECRET_EMAIL}"}}\n'
    )
    assert main([*target, "upload", str(corpus)]) == ExitCode.USAGE
    err = capsys.readouterr().err
    assert "records[1].label" in err and f"records[1] is {corpus}:3" in err
    assert SECRET_EMAIL not in err


def _json(capsys: pytest.CaptureFixture[str]) -> Any:
    return json.loads(capsys.readouterr().out)


def test_cli_finds_inspects_cancels_and_deletes(
    server: object, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = ["--target", f"127.0.0.1:{server.port}"]  # type: ignore[attr-defined]
    corpus = tmp_path / "lost.jsonl"
    corpus.write_text("".join(json.dumps({"text": r.text}) + "\n" for r in fortunes(40)))

    # Upload as JSON: the message on stdout, the progress (through the scrub) on stderr.
    assert main(["upload", str(corpus), "--epsilon-cap", "3", "--json", *target]) == 0
    captured = capsys.readouterr()
    dataset = json.loads(captured.out)
    assert dataset["record_count"] == "40" and dataset["name"].startswith("datasets/")
    assert "all sent; server scrubbing and storing" in captured.err
    ds_id = dataset["name"].split("/", 1)[1]

    # A lost id is found again: in the table, in JSON, and by get with or without prefix.
    assert main([*target, "datasets", "list"]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert listing[0].split()[:3] == ["NAME", "DISPLAY", "NAME"]
    assert any(line.startswith(dataset["name"]) and "lost.jsonl" in line for line in listing)
    assert main([*target, "--json", "datasets", "list", "--limit", "1"]) == 0
    listed = _json(capsys)
    assert [d["name"] for d in listed] == [dataset["name"]]  # newest first
    # What the dataset counts against the tenant's storage share, in bytes (int64: a string).
    assert int(listed[0]["size_bytes"]) > 0
    assert main([*target, "datasets", "get", ds_id]) == 0
    assert f"name: {dataset['name']}" in capsys.readouterr().out

    # A queued job (the budget allows one at eps 2) is cancelled and found by dataset.
    train = ["train", ds_id, "--epsilon", "2", "--preset", "tiny", "--no-watch", "--json"]
    assert main([*target, *train]) == 0
    created = capsys.readouterr()
    job = re.search(r"job (jobs/[0-9a-f]+) -> model (models/[0-9a-f]+)", created.err)
    assert job, "no job line on stderr"
    assert json.loads(created.out)["name"] == job.group(1)  # stdout: the job, as JSON only
    assert main([*target, "jobs", "cancel", job.group(1), "--json"]) == 0
    assert _json(capsys)["state"] in ("JOB_STATE_CANCELLED", "JOB_STATE_RUNNING")
    assert main([*target, "jobs", "list", "--dataset", dataset["name"], "--json"]) == 0
    assert [j["name"] for j in _json(capsys)] == [job.group(1)]
    assert main([*target, "watch", job.group(1), "--json"]) == ExitCode.NEGATIVE  # cancelled
    assert _json(capsys)["state"] == "JOB_STATE_CANCELLED"
    assert main([*target, "jobs", "get", job.group(1)]) == 0
    assert "state: JOB_STATE_CANCELLED" in capsys.readouterr().out

    # Models: listed per dataset, shown, deleted (weights gone, the card stays).
    assert main([*target, "models", "list", "--dataset", dataset["name"], "--json"]) == 0
    assert [m["name"] for m in _json(capsys)] == [job.group(2)]
    bare = dataset["name"].removeprefix("datasets/")  # names work with or without the prefix
    assert main([*target, "models", "list", "--dataset", bare, "--json"]) == 0
    assert [m["name"] for m in _json(capsys)] == [job.group(2)]
    assert main([*target, "jobs", "list", "--dataset", bare, "--json"]) == 0
    assert [j["name"] for j in _json(capsys)] == [job.group(1)]
    assert main([*target, "models", "delete", job.group(2)]) == 0
    assert "deleted" in capsys.readouterr().out
    assert main([*target, "models", "get", job.group(2), "--json"]) == 0
    assert _json(capsys)["state"] == "MODEL_STATE_DELETED"

    # Budget as JSON; then the dataset is deleted and gets say so with their own exit code.
    assert main([*target, "budget", ds_id, "--ledger", "--json"]) == 0
    budget = _json(capsys)
    assert budget["epsilon_cap"] == 3 and {e["kind"] for e in budget["ledger"]} >= {"reserve"}
    assert main([*target, "datasets", "delete", dataset["name"], "--json"]) == 0
    assert _json(capsys) == {"name": dataset["name"], "deleted": True}
    assert main([*target, "datasets", "get", ds_id]) == ExitCode.NOT_FOUND
    assert "DATASET_NOT_FOUND" in capsys.readouterr().err
    assert main([*target, "budget", ds_id, "--ledger", "--json"]) == 0  # the accounting stays
    assert _json(capsys)["ledger"] == budget["ledger"]
    assert main([*target, "audit", "verify", "--json"]) == 0
    verified = _json(capsys)
    assert verified["ok"] is True and verified["problems"] == [] and verified["entries"] > 0
