"""The client library against a real server: pagers, per-call deadlines, typed errors with
reasons, the caller's own exception out of a records iterator, and the asyncio client."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator

import grpc
import pytest
from corpus import fortunes
from privsynth.client import (
    AsyncPrivsynthClient,
    BudgetExhausted,
    DeadlineExceeded,
    InvalidArgument,
    NotFound,
    PrivsynthClient,
    RecordIn,
)
from privsynth.client.pb import training_pb2

MISSING = "0000000000000abc"


class CorpusBroke(Exception):
    """The caller's own error, raised half-way through its records."""


def _breaking(n: int) -> Iterator[RecordIn]:
    yield from fortunes(n)
    raise CorpusBroke("row 301 is unreadable")


def test_list_calls_page_for_the_caller(client: PrivsynthClient) -> None:
    tag = uuid.uuid4().hex[:8]
    made = [client.upload_dataset(fortunes(3), display_name=f"{tag}-{i}").name for i in range(3)]
    pager = client.list_datasets(page_size=1)
    assert sum(1 for _ in pager.pages()) >= 3  # one request per dataset at page_size 1
    names = [d.name for d in pager]
    assert len(names) == len(set(names))  # no item twice across page boundaries
    assert [n for n in names if n in made] == made[::-1]  # newest first
    ledger = list(client.list_ledger_entries(made[0], page_size=1))
    assert ledger == list(client.list_ledger_entries(made[0]))


def test_a_per_call_timeout_overrides_the_clients(server: object) -> None:
    addr = f"127.0.0.1:{server.port}"  # type: ignore[attr-defined]
    slow = "Call Zebulon Quagmire at (415) 555-0134. " * 1500  # ~60 kB through spaCy: > 1 ms
    with PrivsynthClient(addr, timeout=0.001) as impatient:
        with pytest.raises(DeadlineExceeded) as exc:
            impatient.analyze_text(slow)
        assert exc.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
        assert impatient.analyze_text(slow, timeout=60).spans
    with PrivsynthClient(addr, timeout=60) as patient:
        with pytest.raises(DeadlineExceeded):
            patient.analyze_text(slow, timeout=0.001)
        with pytest.raises(ValueError, match="timeout"):
            patient.get_budget(f"datasets/{MISSING}", timeout=0)


def test_errors_are_typed_and_name_their_cause(client: PrivsynthClient) -> None:
    with pytest.raises(NotFound) as missing:
        client.get_dataset(f"datasets/{MISSING}")
    assert missing.value.reason == "DATASET_NOT_FOUND"
    with pytest.raises(NotFound) as job:
        client.cancel_training_job(f"jobs/{MISSING}")
    assert job.value.reason == "JOB_NOT_FOUND"
    with pytest.raises(NotFound) as model:
        list(client.generate(f"models/{MISSING}", count=1))
    assert model.value.reason == "MODEL_NOT_FOUND"
    with pytest.raises(InvalidArgument) as bad:
        list(client.generate(f"models/{MISSING}", count=0))
    assert bad.value.reason == "INVALID_FIELD" and "count" in bad.value.field_violations
    ds = client.upload_dataset(fortunes(40), display_name="typed-errors", epsilon_cap=1)
    with pytest.raises(BudgetExhausted) as budget:
        client.create_training_job(ds.name, target_epsilon=5, epochs=1, preset="tiny")
    assert budget.value.reason == "BUDGET_EXCEEDED"
    assert budget.value.epsilon_remaining == pytest.approx(1.0)


def test_the_callers_exception_in_a_records_iterator_comes_back_as_it_was(
    client: PrivsynthClient,
) -> None:
    name = f"broken-{uuid.uuid4().hex[:8]}"
    with pytest.raises(CorpusBroke, match="row 301"):
        client.upload_dataset(_breaking(300), display_name=name)
    assert name not in {d.display_name for d in client.list_datasets()}  # nothing stored


async def _records(n: int) -> AsyncIterator[RecordIn]:
    for record in fortunes(n):
        await asyncio.sleep(0)
        yield record


async def _breaking_async(n: int) -> AsyncIterator[RecordIn]:
    async for record in _records(n):
        yield record
    raise CorpusBroke("row 301 is unreadable")


def test_the_asyncio_client_uploads_trains_watches_samples_and_lists(server: object) -> None:
    addr = f"127.0.0.1:{server.port}"  # type: ignore[attr-defined]

    async def scenario() -> None:
        async with AsyncPrivsynthClient(addr, timeout=30, stream_timeout=300) as client:
            sent: list[int] = []
            ds = await client.upload_dataset(
                _records(300), display_name="async", epsilon_cap=4, on_sent=sent.append
            )
            assert ds.record_count == 300 and sent == [256, 300]
            assert (await client.get_dataset(ds.name)).name == ds.name
            assert ds.name in [d.name async for d in client.list_datasets(page_size=2)]
            job = await client.create_training_job(
                ds.name, target_epsilon=1.0, epochs=1, preset="tiny"
            )
            with pytest.raises(DeadlineExceeded):  # a per-call deadline ends a long watch
                _ = [j async for j in client.watch_training_job(job.name, timeout=0.2)]
            states = [j.state async for j in client.watch_training_job(job.name)]
            assert states[-1] == training_pb2.JOB_STATE_SUCCEEDED
            assert [j.name for j in await client.list_training_jobs(dataset=ds.name).all()] == [
                job.name
            ]
            records = [r async for r in client.generate(job.model, count=2, max_tokens=8, seed=1)]
            assert len(records) == 2 and all(r.provenance.synthetic for r in records)
            model = await client.get_model(job.model)
            assert model.card.epsilon > 0
            assert [m.name async for m in client.list_models(dataset=ds.name)] == [model.name]
            budget = await client.get_budget(ds.name)
            assert budget.epsilon_spent > 0
            kinds = [e.kind async for e in client.list_ledger_entries(ds.name)]
            assert "commit" in kinds
            with pytest.raises(NotFound) as missing:
                await client.get_model(f"models/{MISSING}")
            assert missing.value.reason == "MODEL_NOT_FOUND"
            with pytest.raises(CorpusBroke):
                await client.upload_dataset(_breaking_async(300), display_name="async-broken")
            names = {d.display_name async for d in client.list_datasets()}
            assert "async-broken" not in names
            await client.cancel_training_job(job.name)  # a finished job stays as it ended
            await client.delete_model(job.model)
            await client.delete_dataset(ds.name)
            with pytest.raises(NotFound):
                await client.get_dataset(ds.name)

    asyncio.run(scenario())
