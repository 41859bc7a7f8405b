"""Upload -> scrub -> DP training -> generation -> budget, through the real client and server."""

from __future__ import annotations

import urllib.request

import grpc
import pytest
from corpus import SECRET_EMAIL, SECRET_NAME, SECRET_PHONE, fortunes, tickets
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from privsynth.client.client import PrivsynthClient
from privsynth.client.pb import models_pb2, training_pb2
from privsynth.server.privacy.accounting import JobCharge, compose_epsilon


@pytest.fixture(scope="module")
def trained(server: object) -> dict[str, object]:
    """One dataset and one finished tiny model shared by this module's tests."""
    with PrivsynthClient(f"127.0.0.1:{server.port}", stream_timeout=300) as c:  # type: ignore[attr-defined]
        ds = c.upload_dataset(tickets(12) + fortunes(48), display_name="e2e", epsilon_cap=10)
        job = c.create_training_job(ds.name, target_epsilon=4.0, epochs=2, preset="tiny")
        events = list(c.watch_training_job(job.name))
        return {"dataset": ds, "job": job, "events": events}


def test_upload_scrubs_pii_and_reports_counts_only(trained: dict[str, object]) -> None:
    ds = trained["dataset"]
    rep = ds.scrub_report  # type: ignore[attr-defined]
    assert ds.record_count == 60  # type: ignore[attr-defined]
    assert rep.entity_counts["EMAIL_ADDRESS"] >= 3
    assert rep.entity_counts["PERSON"] >= 3
    assert rep.records_with_pii >= 9
    assert "presidio" in rep.analyzer
    assert rep.strategy_counts["placeholder"] == sum(rep.entity_counts.values())
    assert rep.residual_count == 0
    assert SECRET_NAME not in str(ds) and SECRET_EMAIL not in str(ds)


def test_raw_text_is_never_written_to_disk(server: object, trained: dict[str, object]) -> None:
    data_dir = server.settings.data_dir  # type: ignore[attr-defined]
    for path in data_dir.rglob("*"):
        if path.is_file():
            blob = path.read_bytes()
            for secret in (SECRET_NAME, SECRET_EMAIL, SECRET_PHONE):
                assert secret.encode() not in blob, f"{secret!r} found in {path.name}"


def test_training_job_succeeds_with_progress_and_card(
    client: PrivsynthClient, trained: dict[str, object]
) -> None:
    events = trained["events"]
    final = events[-1]  # type: ignore[index]
    assert final.state == training_pb2.JOB_STATE_SUCCEEDED
    assert any(e.state == training_pb2.JOB_STATE_RUNNING for e in events)  # type: ignore[attr-defined]
    assert 0 < final.progress.epsilon_spent <= 4.0 + 1e-6
    model = client.get_model(final.model)
    assert model.state == models_pb2.MODEL_STATE_READY
    card = model.card
    assert card.accountant == "prv"
    assert 3.0 < card.epsilon <= 4.0 + 1e-6
    assert card.noise_multiplier > 0.3
    assert 0 < card.sample_rate < 1
    assert card.max_grad_norm == 1.0
    assert card.steps == final.progress.step > 0
    assert card.privacy_unit == "record"
    assert card.dataset == trained["dataset"].name  # type: ignore[attr-defined]
    assert card.tokenizer_provenance["private_data_used"] == "False"
    assert "Austen" in card.tokenizer_provenance["trained_on"]


def test_generate_streams_records_with_provenance(
    client: PrivsynthClient, trained: dict[str, object]
) -> None:
    model = trained["events"][-1].model  # type: ignore[index]
    recs = list(client.generate(model, count=5, seed=7, max_tokens=16))
    assert len(recs) == 5
    assert [r.index for r in recs] == list(range(5))
    for r in recs:
        assert r.provenance.synthetic is True
        assert r.provenance.model == model
        assert 0 < r.provenance.epsilon <= 4.0 + 1e-6
        assert 0 < r.provenance.delta < 1e-5
    again = list(client.generate(model, count=5, seed=7, max_tokens=16))
    assert [r.text for r in again] == [r.text for r in recs]
    other = list(client.generate(model, count=5, seed=8, max_tokens=16))
    assert [r.text for r in other] != [r.text for r in recs]
    labelled = list(client.generate(model, count=2, seed=1, label="support", max_tokens=8))
    assert all(r.label == "support" for r in labelled)


def test_budget_and_ledger_record_the_spend(
    client: PrivsynthClient, trained: dict[str, object]
) -> None:
    ds = trained["dataset"]
    final = trained["events"][-1]  # type: ignore[index]
    budget = client.get_budget(ds.name)  # type: ignore[attr-defined]
    assert budget.epsilon_cap == 10
    # One job: the plain sum is its own ε (at its own δ, a tenth of the cap). The composed spend
    # is that job's event restated at the dataset's accounting δ, the cap: less.
    assert budget.epsilon_spent_sum == pytest.approx(final.progress.epsilon_spent)
    card = client.get_model(final.model).card  # type: ignore[attr-defined]
    job = JobCharge(
        final.progress.epsilon_spent,
        card.delta,
        card.noise_multiplier,
        card.sample_rate,
        card.steps,
        label_noise_multiplier=card.label_noise_multiplier or None,
    )
    assert budget.epsilon_spent == pytest.approx(compose_epsilon([job], delta=budget.delta)[0])
    assert 0.5 * budget.epsilon_spent_sum < budget.epsilon_spent < budget.epsilon_spent_sum
    assert budget.epsilon_reserved == 0
    assert budget.epsilon_remaining == pytest.approx(10 - budget.epsilon_spent)
    assert "PLD composition" in budget.composition
    entries = list(client.list_ledger_entries(ds.name))
    assert [e.kind for e in entries] == ["reserve", "commit", "release"]
    # The DP-SGD event reserved before training is the one that ran (σ, q), and the commit
    # records the steps actually taken.
    reserve, commit = entries[0], entries[1]
    card = client.get_model(final.model).card
    assert reserve.noise_multiplier == card.noise_multiplier > 0
    assert reserve.sample_rate == commit.sample_rate == card.sample_rate
    assert commit.noise_multiplier == card.noise_multiplier
    assert reserve.steps == commit.steps == card.steps


def test_lists_find_the_resources(client: PrivsynthClient, trained: dict[str, object]) -> None:
    ds = trained["dataset"]
    assert ds.name in [d.name for d in client.list_datasets()]
    jobs = list(client.list_training_jobs(dataset=ds.name))
    assert trained["job"].name in [j.name for j in jobs]  # type: ignore[attr-defined]
    models = list(client.list_models(dataset=ds.name))
    assert len(models) == 1


def test_health_reflection_and_metrics(server: object, client: PrivsynthClient) -> None:
    health = health_pb2_grpc.HealthStub(client.channel)
    for service in ("", "privsynth.v1.Generation"):
        resp = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        assert resp.status == health_pb2.HealthCheckResponse.SERVING
    refl = reflection_pb2_grpc.ServerReflectionStub(client.channel)
    responses = refl.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5
    )
    names = {s.name for r in responses for s in r.list_services_response.service}
    assert {"privsynth.v1.Datasets", "privsynth.v1.Training", "grpc.health.v1.Health"} <= names
    url = f"http://127.0.0.1:{server.metrics_port}/metrics"  # type: ignore[attr-defined]
    body = urllib.request.urlopen(url, timeout=5).read().decode()
    assert "grpc_server_handled_total{" in body
    assert 'grpc_method="UploadDataset"' in body
    assert "grpc_server_handling_seconds_bucket" in body
    assert "privsynth_records_scrubbed_total" in body
    assert 'privsynth_pii_entities_replaced_total{entity_type="EMAIL_ADDRESS"}' in body
    assert SECRET_EMAIL not in body


def test_delete_dataset_removes_text_but_keeps_name_unusable(client: PrivsynthClient) -> None:
    ds = client.upload_dataset(fortunes(5), display_name="to delete", epsilon_cap=3)
    ledger_before = [e.id for e in client.list_ledger_entries(ds.name)]
    client.delete_dataset(ds.name)
    with pytest.raises(Exception) as err:
        client.get_dataset(ds.name)
    assert err.value.code == grpc.StatusCode.NOT_FOUND  # type: ignore[attr-defined]
    with pytest.raises(Exception) as err:
        client.create_training_job(ds.name, target_epsilon=1.0, epochs=1, preset="tiny")
    assert err.value.code == grpc.StatusCode.NOT_FOUND  # type: ignore[attr-defined]
    # Its accounting stays readable: an auditor reads a deleted dataset's budget and ledger.
    assert client.get_budget(ds.name).epsilon_cap == 3
    assert [e.id for e in client.list_ledger_entries(ds.name)] == ledger_before


def test_delete_model_keeps_card_ledger_and_audit(server: object, client: PrivsynthClient) -> None:
    from privsynth.server.privacy import audit

    ds = client.upload_dataset(fortunes(40), display_name="model to delete", epsilon_cap=5)
    job = client.create_training_job(ds.name, target_epsilon=1.0, epochs=1, preset="tiny")
    list(client.watch_training_job(job.name))
    spent = client.get_budget(ds.name).epsilon_spent
    client.delete_model(job.model)
    model = client.get_model(job.model)
    assert model.state == models_pb2.MODEL_STATE_DELETED
    assert model.card.epsilon > 0
    with pytest.raises(Exception) as err:
        list(client.generate(job.model, count=1))
    assert err.value.code == grpc.StatusCode.NOT_FOUND  # type: ignore[attr-defined]
    with pytest.raises(Exception) as err:
        client.delete_model(job.model)
    assert err.value.code == grpc.StatusCode.NOT_FOUND  # type: ignore[attr-defined]
    assert client.get_budget(ds.name).epsilon_spent == spent
    actions = [e.action for e in audit.entries(server.runtime.db)]  # type: ignore[attr-defined]
    assert "model.deleted" in actions
