"""Upload messages too large in records are refused when they arrive, before any scrubbing."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from bare_server import bare_server
from privsynth.client.errors import from_rpc_error
from privsynth.client.pb import datasets_pb2, datasets_pb2_grpc


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    # Ready without loading models up front (the scrubber loads on first use).
    with bare_server(tmp_path_factory.mktemp("limits"), ready=True, max_records=4000) as srv:
        yield srv


@pytest.fixture
def stub(server: object) -> Iterator[datasets_pb2_grpc.DatasetsStub]:
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as ch:  # type: ignore[attr-defined]
        yield datasets_pb2_grpc.DatasetsStub(ch)


def _scrubbed(server: object) -> float:
    metrics = server.runtime.metrics  # type: ignore[attr-defined]
    return float(metrics.registry.get_sample_value("privsynth_records_scrubbed_total") or 0)


def _upload(stub: datasets_pb2_grpc.DatasetsStub, *sizes: int) -> grpc.RpcError:
    def messages() -> Iterator[datasets_pb2.UploadDatasetRequest]:
        yield datasets_pb2.UploadDatasetRequest(
            metadata=datasets_pb2.DatasetMetadata(display_name="limits")
        )
        for size in sizes:
            batch = [datasets_pb2.Record(text=b"a")] * size
            yield datasets_pb2.UploadDatasetRequest(records=datasets_pb2.RecordBatch(records=batch))

    with pytest.raises(grpc.RpcError) as exc:
        stub.UploadDataset(messages(), timeout=30)
    return exc.value


def test_a_message_of_too_many_records_is_refused(
    server: object, stub: datasets_pb2_grpc.DatasetsStub
) -> None:
    before = _scrubbed(server)
    err = from_rpc_error(_upload(stub, 4097))
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "at most 4096 records" in err.message
    assert _scrubbed(server) == before


def test_an_empty_message_is_refused(server: object, stub: datasets_pb2_grpc.DatasetsStub) -> None:
    # Empty record batches, one every few seconds, held an upload open past the idle limit.
    err = from_rpc_error(_upload(stub, 1, 0))
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "at least one record" in err.message


def test_an_upload_past_max_records_is_refused_before_it_is_scrubbed(
    server: object, stub: datasets_pb2_grpc.DatasetsStub
) -> None:
    # Scrubbing 1,000,000 records before refusing the next one took eleven minutes; the
    # batch that passes the bound is refused as it arrives, none of it scrubbed.
    before = _scrubbed(server)
    err = from_rpc_error(_upload(stub, 3000, 1001))
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT
    assert err.reason == "DATASET_TOO_LARGE"
    assert _scrubbed(server) - before <= 3000  # the old code scrubbed 3,968 before refusing
