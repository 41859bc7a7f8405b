"""`privsynth audit report`: a self-contained HTML report and the same data as JSON."""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path

import pytest
from corpus import SECRET_EMAIL, SECRET_NAME, fortunes, tickets
from privsynth.client.cli import main
from privsynth.client.client import PrivsynthClient


def test_report_has_plots_runs_and_json(
    server: object, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = f"127.0.0.1:{server.port}"  # type: ignore[attr-defined]
    with PrivsynthClient(target, timeout=60, stream_timeout=600) as c:
        ds = c.upload_dataset(tickets(8) + fortunes(60), display_name="reported", epsilon_cap=9)
        jobs = []
        for eps in (2.0, 3.0):
            job = c.create_training_job(ds.name, target_epsilon=eps, epochs=1, preset="tiny")
            *_, last = c.watch_training_job(job.name)
            jobs.append(last)
        model = c.get_model(jobs[0].model)
    assert model.epsilon_curve_accountant == "pld"
    curve = [(p.step, p.epsilon) for p in model.epsilon_curve]
    assert curve[0][0] == 0 and curve[-1][0] == model.card.steps
    # The labels were released with DP: that release is in the curve from step 0 on, and the
    # curve ends at the card's ε (which includes it).
    assert model.card.label_noise_multiplier > 0
    assert 0 < curve[0][1] < 0.5 * model.card.epsilon
    assert all(a[1] < b[1] for a, b in itertools.pairwise(curve))  # grows with steps
    assert curve[-1][1] == pytest.approx(model.card.epsilon, rel=0.03)  # PLD vs the card's PRV

    out = tmp_path / "report.html"
    dataset_id = ds.name.split("/")[1]
    assert (
        main(["--target", target, "audit", "report", "--dataset", dataset_id, "-o", str(out)]) == 0
    )
    assert "audit chain intact" in capsys.readouterr().out
    page = out.read_text()
    data = json.loads(out.with_suffix(".json").read_text())
    assert page.count("<svg") == 2 and "http" not in page.replace(
        'xmlns="http://www.w3.org/2000/svg"', ""
    )  # self-contained: nothing to fetch
    embedded = re.search(
        r'<script type="application/json" id="report-data">(.*?)</script>', page, re.S
    )
    assert embedded is not None and json.loads(embedded.group(1).replace("<\\/", "</")) == data
    assert data["dataset"]["name"] == ds.name
    assert [m["run"]["name"] for m in data["models"]] == [j.name for j in jobs]
    assert [m["run"]["target_epsilon"] for m in data["models"]] == [2.0, 3.0]
    assert all(len(m["epsilon_curve"]) > 2 for m in data["models"])
    kinds = [e["kind"] for e in data["ledger"]]
    assert kinds.count("reserve") == 2 and kinds.count("commit") == 2
    last = data["spend_over_time"][-1]
    assert last["epsilon_spent_sum"] == pytest.approx(
        sum(m["card"]["epsilon"] for m in data["models"])
    )
    assert last["epsilon_reserved_sum"] == pytest.approx(0.0, abs=1e-9)
    assert data["audit_log"]["chain_intact"]
    assert {e["action"] for e in data["audit_log"]["entries"]} >= {
        "dataset.created",
        "budget.reserved",
        "budget.committed",
    }
    for text in (page, json.dumps(data)):
        assert SECRET_NAME not in text and SECRET_EMAIL not in text and "reported" not in text
