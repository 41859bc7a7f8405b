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
from privsynth.client.report import collect, render_html


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


def _series_tops(page: str) -> dict[str, float]:
    """The highest point (smallest SVG y) of each series of the page's first chart."""
    chart = page[page.index("<svg") : page.index("</svg>")]
    lines = re.findall(
        r'<polyline fill="none" stroke="[^"]+" stroke-width="2" points="([^"]*)"', chart
    )
    labels = re.findall(
        r'stroke-width="2"/><text x="[^"]+" y="[^"]+" font-size="11">([^<]*)</text>', chart
    )
    assert len(lines) == len(labels) > 0
    return {
        label: min(float(xy.split(",")[1]) for xy in points.split())
        for label, points in zip(labels, lines, strict=True)
    }


def test_budget_chart_crosses_the_cap_only_if_the_ledger_did(
    server: object, client: PrivsynthClient
) -> None:
    """A job that reserves 8 of a cap of 10 and is charged 8 never showed above the cap in the
    ledger, but the chart summed plain spent and plain reserved at the commit instant (16)."""
    from privsynth.server.privacy import ledger

    db = server.runtime.db  # type: ignore[attr-defined]
    ds = client.upload_dataset(fortunes(60), display_name="charted", epsilon_cap=10)
    dataset_id = ds.name.split("/")[1]
    delta = client.get_budget(ds.name).delta / 10  # a job's default share of the δ cap
    idle = client.get_budget(ds.name)
    for job, eps in (("chart-j1", 8.0), ("chart-j2", 1.5)):
        with db.session() as s:
            ledger.reserve(s, dataset_id, job_id=job, epsilon=eps, delta=delta, actor="t")
        # GetBudget while the job holds its reservation: it counts against the remaining ε.
        running = client.get_budget(ds.name)
        assert running.epsilon_reserved > 0
        assert running.epsilon_remaining == pytest.approx(
            running.epsilon_cap - running.epsilon_spent - running.epsilon_reserved
        )
        assert running.epsilon_remaining < idle.epsilon_remaining
        with db.session() as s:
            ledger.commit(
                s,
                dataset_id,
                job_id=job,
                epsilon_spent=eps,
                delta=delta,
                reserved_epsilon=eps,
                reserved_delta=delta,
                note="done",
            )
        idle = client.get_budget(ds.name)
        assert idle.epsilon_reserved == 0 and idle.epsilon_spent <= 10
    data = collect(client, ds.name)
    page = render_html(data)
    tops = _series_tops(page)
    cap_y = tops.pop("cap")
    assert tops and all(y >= cap_y - 0.05 for y in tops.values()), (tops, cap_y)
    # The plotted figures are the ledger's own, one point per reservation and per charge.
    composed = data["composed_over_time"]
    assert [p["action"] for p in composed] == ["budget.reserved", "budget.committed"] * 2
    assert all(p["epsilon_total"] <= p["epsilon_cap"] == 10 for p in composed)
    spent = [p["epsilon_spent"] for p in composed]
    assert spent == sorted(spent) and spent[-1] == pytest.approx(idle.epsilon_spent)
    # In the ledger's plain sums too, a charge and its release are one instant.
    points = data["spend_over_time"]
    assert len({p["time"] for p in points}) == len(points)
    assert [p["kind"] for p in points].count("commit+release") == 2
