"""Issue 5: the label mix is released with DP (charged) or declared public; unreachable or
malformed training requests fail fast and spend nothing. Through the real gRPC server."""

from __future__ import annotations

import math
from collections import Counter

import grpc
import pytest
from corpus import fortunes
from privsynth.client.client import PrivsynthClient
from privsynth.client.errors import PrivsynthClientError
from privsynth.client.pb import training_pb2

RECORDS = fortunes(200)
LABELS = Counter(r.label for r in RECORDS)


@pytest.fixture(scope="module")
def dataset(server: object) -> str:
    with PrivsynthClient(f"127.0.0.1:{server.port}") as c:  # type: ignore[attr-defined]
        return c.upload_dataset(RECORDS, display_name="labels", epsilon_cap=20).name


def _train(client: PrivsynthClient, dataset: str, **kwargs: object) -> training_pb2.TrainingJob:
    job = client.create_training_job(
        dataset,
        target_epsilon=8.0,
        epochs=1,
        preset="tiny",
        **kwargs,  # type: ignore[arg-type]
    )
    final = list(client.watch_training_job(job.name))[-1]
    assert final.state == training_pb2.JOB_STATE_SUCCEEDED, final.error_message
    return final  # type: ignore[no-any-return]


def _spend(client: PrivsynthClient, dataset: str) -> tuple[float, float, int]:
    budget = client.get_budget(dataset)
    entries = list(client.list_ledger_entries(dataset))
    return budget.epsilon_spent, budget.epsilon_reserved, len(entries)


def test_dp_label_release_is_charged_on_the_card_and_ledger_and_drives_generate(
    client: PrivsynthClient, dataset: str
) -> None:
    before, _, _ = _spend(client, dataset)
    job = _train(client, dataset, label_epsilon_share=0.5)
    assert job.label_distribution == training_pb2.LABEL_DISTRIBUTION_DP
    card = client.get_model(job.model).card
    assert card.label_distribution_source == "dp"
    assert "released with DP" in card.label_distribution_note
    # The label release is part of the job's ε: above DP-SGD alone, within the target.
    assert card.epsilon_dp_sgd < card.epsilon <= 8.0 + 1e-6
    assert card.label_noise_multiplier > 0 and card.label_threshold > 1
    dist = dict(card.label_distribution)
    assert dist and set(dist) <= set(LABELS)
    assert math.fsum(dist.values()) == pytest.approx(1.0)
    # Only labels whose noisy count passed the threshold: never the smallest ones here.
    assert "sports" not in dist
    budget = client.get_budget(dataset)
    assert budget.epsilon_spent - before > 0
    assert budget.epsilon_spent_sum == pytest.approx(
        sum(e.epsilon for e in client.list_ledger_entries(dataset) if e.kind == "commit")
    )
    commit = [e for e in client.list_ledger_entries(dataset) if e.kind == "commit"][-1]
    assert commit.epsilon == pytest.approx(card.epsilon)
    records = list(client.generate(job.model, count=24, seed=3, max_tokens=8))
    assert len(records) == 24
    assert {r.label for r in records} <= set(dist)


def test_public_label_mix_spends_nothing_on_labels_and_names_who_declared_it(
    client: PrivsynthClient, dataset: str
) -> None:
    job = _train(
        client,
        dataset,
        label_distribution="public",
        public_label_weights={"science": 1.0, "work": 0.0},
    )
    assert job.label_distribution == training_pb2.LABEL_DISTRIBUTION_PUBLIC
    card = client.get_model(job.model).card
    assert card.label_distribution_source == "public"
    assert card.label_distribution_declared_by == "anonymous"
    assert "declared public by anonymous" in card.label_distribution_note
    assert card.epsilon == pytest.approx(card.epsilon_dp_sgd)
    assert card.label_noise_multiplier == 0
    assert dict(card.label_distribution) == {"science": pytest.approx(1.0)}
    records = list(client.generate(job.model, count=6, seed=1, max_tokens=8))
    assert {r.label for r in records} == {"science"}


def test_unreachable_epsilon_fails_precondition_says_what_is_reachable_and_costs_nothing(
    client: PrivsynthClient, dataset: str
) -> None:
    before = _spend(client, dataset)
    with pytest.raises(PrivsynthClientError) as exc:
        client.create_training_job(dataset, target_epsilon=0.001, epochs=3, preset="tiny")
    assert exc.value.code == grpc.StatusCode.FAILED_PRECONDITION
    msg = exc.value.message
    assert "n=200" in msg and "epochs=3" in msg and "batch=" in msg
    assert "smallest epsilon reachable" in msg and "noise multiplier <= 50" in msg
    assert "label distribution" in msg  # the default DP label release is accounted for
    assert _spend(client, dataset) == before


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"preset": "gpt-9"}, "preset"),
        ({"label_distribution": "public", "label_epsilon_share": 0.1}, "label_epsilon_share"),
        ({"label_epsilon_share": 0.9}, "label_epsilon_share"),
        ({"label_epsilon_share": 0.0}, "label_epsilon_share"),
        ({"public_label_weights": {"science": 1.0}}, "public_label_weights"),
        (
            {"label_distribution": "public", "public_label_weights": {"science": -1.0}},
            "public_label_weights",
        ),
    ],
)
def test_malformed_requests_are_invalid_and_cost_nothing(
    client: PrivsynthClient, dataset: str, kwargs: dict[str, object], field: str
) -> None:
    before = _spend(client, dataset)
    with pytest.raises(PrivsynthClientError) as exc:
        client.create_training_job(dataset, target_epsilon=1.0, **kwargs)  # type: ignore[arg-type]
    assert exc.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert field in exc.value.field_violations
    assert _spend(client, dataset) == before


def test_unknown_label_distribution_value_is_invalid(client: PrivsynthClient, dataset: str) -> None:
    req = training_pb2.CreateTrainingJobRequest(
        dataset=dataset, target_epsilon=1.0, label_distribution=7
    )
    with pytest.raises(grpc.RpcError) as exc:
        client.training.CreateTrainingJob(req, timeout=30)
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]


def test_missing_base_model_fails_precondition_and_costs_nothing(
    client: PrivsynthClient, dataset: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from privsynth.server.jobs import requests as jobs

    monkeypatch.setattr(jobs, "base_available", lambda _name: False)
    before = _spend(client, dataset)
    with pytest.raises(PrivsynthClientError) as exc:
        client.create_training_job(dataset, target_epsilon=1.0, preset="small")
    assert exc.value.code == grpc.StatusCode.FAILED_PRECONDITION
    assert "not installed" in exc.value.message
    assert _spend(client, dataset) == before
