"""Bad input gets a clear status, echoes no corpus text, and leaves the server serving."""

from __future__ import annotations

import time

import grpc
import pytest
from corpus import SECRET_NAME, fortunes, tickets
from grpc_health.v1 import health_pb2, health_pb2_grpc
from privsynth.client.client import PrivsynthClient, RecordIn
from privsynth.client.errors import BudgetExhausted, PrivsynthClientError
from privsynth.client.pb import datasets_pb2, training_pb2


def _code(exc: pytest.ExceptionInfo[PrivsynthClientError]) -> grpc.StatusCode:
    return exc.value.code


@pytest.fixture(scope="module")
def dataset(server: object) -> str:
    with PrivsynthClient(f"127.0.0.1:{server.port}") as c:  # type: ignore[attr-defined]
        return c.upload_dataset(fortunes(40), display_name="bad-input", epsilon_cap=5).name


def test_empty_corpus_is_invalid(client: PrivsynthClient) -> None:
    with pytest.raises(PrivsynthClientError) as exc:
        client.upload_dataset([], display_name="empty")
    assert _code(exc) == grpc.StatusCode.INVALID_ARGUMENT
    assert "empty" in exc.value.message


def test_non_utf8_record_is_invalid_and_named_by_position(client: PrivsynthClient) -> None:
    bad = f"{SECRET_NAME} \xff\xfe".encode("latin-1")
    records = [RecordIn(text="fine text"), RecordIn(text=bad)]
    with pytest.raises(PrivsynthClientError) as exc:
        client.upload_dataset(records, display_name="bad bytes")
    assert _code(exc) == grpc.StatusCode.INVALID_ARGUMENT
    assert "record 1" in exc.value.message and "UTF-8" in exc.value.message
    assert SECRET_NAME not in str(exc.value)
    assert exc.value.field_violations == {"records[1].text": exc.value.message}


def test_blank_record_and_missing_metadata_are_invalid(client: PrivsynthClient) -> None:
    with pytest.raises(PrivsynthClientError) as exc:
        client.upload_dataset([RecordIn(text="   ")])
    assert _code(exc) == grpc.StatusCode.INVALID_ARGUMENT
    req = datasets_pb2.UploadDatasetRequest(
        records=datasets_pb2.RecordBatch(records=[datasets_pb2.Record(text=b"x")])
    )
    with pytest.raises(grpc.RpcError) as raw:
        client.datasets.UploadDataset(iter([req]), timeout=10)
    assert raw.value.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]


def test_bad_epsilon_cap_is_invalid(client: PrivsynthClient) -> None:
    with pytest.raises(PrivsynthClientError) as exc:
        client.upload_dataset(fortunes(3), epsilon_cap=-1)
    assert exc.value.field_violations.keys() == {"epsilon_cap"}


@pytest.mark.parametrize(
    ("records", "kwargs", "field"),
    [
        (1, {"epsilon_cap": 1e308}, "epsilon_cap"),
        (1, {"epsilon_cap": 1000.5}, "epsilon_cap"),
        (1, {"delta": 1.0}, "delta"),
        (3, {"delta": 0.5}, "delta"),  # 1/n = 1/3: UpdateBudgetCap refuses it too
        (3, {"delta": 1 / 3}, "delta"),
    ],
)
def test_upload_caps_are_bounded_like_cap_changes(
    client: PrivsynthClient, records: int, kwargs: dict[str, float], field: str
) -> None:
    with pytest.raises(PrivsynthClientError) as exc:
        client.upload_dataset(fortunes(records), display_name="caps", **kwargs)  # type: ignore[arg-type]
    assert _code(exc) == grpc.StatusCode.INVALID_ARGUMENT
    assert exc.value.field_violations.keys() == {field}
    names = [d.display_name for d in client.list_datasets()]
    assert "caps" not in names  # refused before anything was stored


def test_upload_caps_at_the_bounds_are_accepted(client: PrivsynthClient) -> None:
    ds = client.upload_dataset(fortunes(3), display_name="caps ok", epsilon_cap=1000, delta=0.3)
    assert ds.epsilon_cap == 1000 and ds.delta == pytest.approx(0.3)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"target_epsilon": 0.0}, "target_epsilon"),
        ({"target_epsilon": -2.0}, "target_epsilon"),
        ({"target_epsilon": float("nan")}, "target_epsilon"),
        ({"target_epsilon": 1.0, "delta": 0.0}, "delta"),
        ({"target_epsilon": 1.0, "delta": 1.0}, "delta"),
        ({"target_epsilon": 1.0, "delta": 0.5}, "target_delta"),
        ({"target_epsilon": 1.0, "epochs": 0}, "epochs"),
        ({"target_epsilon": 1.0, "preset": "gpt-9"}, "preset"),
    ],
)
def test_bad_training_parameters_are_invalid(
    client: PrivsynthClient, dataset: str, kwargs: dict[str, object], field: str
) -> None:
    with pytest.raises(PrivsynthClientError) as exc:
        client.create_training_job(dataset, **kwargs)  # type: ignore[arg-type]
    assert _code(exc) == grpc.StatusCode.INVALID_ARGUMENT
    assert field in exc.value.field_violations


def test_unknown_and_malformed_names(client: PrivsynthClient) -> None:
    cases = [
        (lambda: client.get_dataset("datasets/0123456789abcdef"), grpc.StatusCode.NOT_FOUND),
        (lambda: client.get_dataset("nonsense"), grpc.StatusCode.INVALID_ARGUMENT),
        (
            lambda: client.create_training_job("datasets/00000000000000aa", target_epsilon=1),
            grpc.StatusCode.NOT_FOUND,
        ),
        (lambda: client.get_model("models/00000000000000bb"), grpc.StatusCode.NOT_FOUND),
        (
            lambda: list(client.generate("models/00000000000000bb", count=1)),
            grpc.StatusCode.NOT_FOUND,
        ),
        (lambda: client.get_training_job("jobs/../../etc"), grpc.StatusCode.INVALID_ARGUMENT),
        (lambda: client.get_budget("datasets/00000000000000cc"), grpc.StatusCode.NOT_FOUND),
    ]
    for call, code in cases:
        with pytest.raises(PrivsynthClientError) as exc:
            call()
        assert _code(exc) == code


def test_tiny_dataset_fails_precondition(client: PrivsynthClient) -> None:
    ds = client.upload_dataset(fortunes(5), display_name="too small")
    with pytest.raises(PrivsynthClientError) as exc:
        client.create_training_job(ds.name, target_epsilon=1.0)
    assert _code(exc) == grpc.StatusCode.FAILED_PRECONDITION
    assert client.get_budget(ds.name).epsilon_reserved == 0


def test_generate_on_training_model_fails_precondition_and_cancel_charges_spend(
    client: PrivsynthClient,
) -> None:
    ds = client.upload_dataset(tickets(40) + fortunes(200), display_name="long", epsilon_cap=9)
    job = client.create_training_job(ds.name, target_epsilon=3.0, epochs=200, preset="tiny")
    with pytest.raises(PrivsynthClientError) as exc:
        list(client.generate(job.model, count=1))
    assert _code(exc) == grpc.StatusCode.FAILED_PRECONDITION
    assert "training" in exc.value.message
    # Let it take a few noisy steps, then cancel: it is charged what it consumed.
    deadline = time.monotonic() + 60
    while client.get_training_job(job.name).progress.step < 3:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    client.cancel_training_job(job.name)
    final = list(client.watch_training_job(job.name))[-1]
    assert final.state == training_pb2.JOB_STATE_CANCELLED
    budget = client.get_budget(ds.name)
    assert 0 < budget.epsilon_spent < 3.0
    # The plain sum is the job's own ε; the composed (PLD) figure is never above it.
    assert budget.epsilon_spent_sum == pytest.approx(final.progress.epsilon_spent)
    assert budget.epsilon_spent <= budget.epsilon_spent_sum
    assert budget.epsilon_reserved == 0
    with pytest.raises(PrivsynthClientError) as exc:
        list(client.generate(job.model, count=1))
    assert _code(exc) == grpc.StatusCode.FAILED_PRECONDITION


def test_over_budget_is_resource_exhausted_and_costs_nothing(client: PrivsynthClient) -> None:
    ds = client.upload_dataset(fortunes(40), display_name="budget", epsilon_cap=2)
    with pytest.raises(BudgetExhausted) as exc:
        client.create_training_job(ds.name, target_epsilon=3.0, preset="tiny")
    assert _code(exc) == grpc.StatusCode.RESOURCE_EXHAUSTED  # type: ignore[arg-type]
    assert exc.value.epsilon_remaining == pytest.approx(2.0)
    budget = client.get_budget(ds.name)
    assert budget.epsilon_spent == 0 and budget.epsilon_reserved == 0
    assert list(client.list_ledger_entries(ds.name)) == []


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"count": 0}, "count"),
        ({"count": 1, "temperature": 0.0}, "temperature"),
        ({"count": 1, "top_p": 1.5}, "top_p"),
        ({"count": 1, "max_tokens": 0}, "max_tokens"),
    ],
)
def test_bad_generation_parameters(
    client: PrivsynthClient, kwargs: dict[str, object], field: str
) -> None:
    with pytest.raises(PrivsynthClientError) as exc:
        list(client.generate("models/00000000000000dd", **kwargs))  # type: ignore[arg-type]
    assert _code(exc) == grpc.StatusCode.INVALID_ARGUMENT
    assert field in exc.value.field_violations


def test_server_still_serving_after_bad_input(client: PrivsynthClient) -> None:
    health = health_pb2_grpc.HealthStub(client.channel)
    resp = health.Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert resp.status == health_pb2.HealthCheckResponse.SERVING


def test_failure_after_training_fails_the_job_and_charges_the_reservation(
    server: object, client: PrivsynthClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = server.runtime.store  # type: ignore[attr-defined]
    real_put = store.put

    def broken_put(kind: str, data: bytes, *, suffix: str) -> tuple[str, str]:
        if kind == "models":
            raise OSError("disk full")
        return real_put(kind, data, suffix=suffix)  # type: ignore[no-any-return]

    monkeypatch.setattr(store, "put", broken_put)
    ds = client.upload_dataset(fortunes(40), display_name="store fails", epsilon_cap=5)
    job = client.create_training_job(ds.name, target_epsilon=1.0, epochs=1, preset="tiny")
    final = list(client.watch_training_job(job.name))[-1]
    assert final.state == training_pb2.JOB_STATE_FAILED
    assert "OSError" in final.error_message
    assert "disk full" not in final.error_message
    budget = client.get_budget(ds.name)
    assert budget.epsilon_reserved == 0
    assert budget.epsilon_spent_sum == pytest.approx(1.0)


@pytest.mark.parametrize(
    "label",
    ["jane.doe@example.com", "+1 415 555 0199", "4111 1111 1111 1111", "192.168.10.7"],
    ids=["email", "phone", "card", "ip"],
)
def test_a_label_holding_an_identifier_is_refused_without_echoing_it(
    client: PrivsynthClient, label: str
) -> None:
    # Labels are released as category names (the card's label mix, sampled records) and are
    # not scrubbed, so one that is an e-mail address or a number must not be stored.
    records = [RecordIn(text="fine text", label="support"), RecordIn(text="more", label=label)]
    with pytest.raises(PrivsynthClientError) as exc:
        client.upload_dataset(records, display_name="identifying label")
    assert _code(exc) == grpc.StatusCode.INVALID_ARGUMENT
    assert exc.value.field_violations.keys() == {"records[1].label"}
    assert "personal data" in exc.value.message
    assert label not in str(exc.value)
    assert not any(d.display_name == "identifying label" for d in client.list_datasets())


@pytest.mark.parametrize("label", ["a\x00b", "tab\tbed", "\x1b[2J", "  ", "abc\u202edcba"])
def test_labels_with_control_characters_or_only_blanks_are_refused(
    client: PrivsynthClient, label: str
) -> None:
    with pytest.raises(PrivsynthClientError) as exc:
        client.upload_dataset([RecordIn(text="fine text", label=label)], display_name="ctl")
    assert _code(exc) == grpc.StatusCode.INVALID_ARGUMENT
    assert exc.value.field_violations.keys() == {"records[0].label"}


def test_category_labels_that_name_places_or_codes_are_kept(client: PrivsynthClient) -> None:
    labels = ["Paris", "politics", "12345", "positive", "4155550199", "4111111111111111"]
    ds = client.upload_dataset(
        [RecordIn(text=f"text {i}", label=lab) for i, lab in enumerate(labels)],
        display_name="plain labels",
    )
    assert ds.labelled_count == 6  # digits alone are codes, however phone- or card-like


def test_a_display_name_with_control_characters_is_refused(client: PrivsynthClient) -> None:
    with pytest.raises(PrivsynthClientError) as exc:
        client.upload_dataset(fortunes(2), display_name="tickets\x1b[2J\nforged row")
    assert _code(exc) == grpc.StatusCode.INVALID_ARGUMENT
    assert exc.value.field_violations.keys() == {"display_name"}
