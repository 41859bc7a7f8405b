"""Malformed input is the caller's fault: INVALID_ARGUMENT, never INTERNAL (issue 12).

Runs against a server whose models are never loaded (start-up in well under a second), marked
ready by hand: every check here happens before a handler needs the scrubber or a model.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from privsynth.client.errors import PrivsynthClientError, from_rpc_error
from privsynth.client.pb import (
    datasets_pb2,
    datasets_pb2_grpc,
    generation_pb2,
    generation_pb2_grpc,
    models_pb2,
    models_pb2_grpc,
    training_pb2,
    training_pb2_grpc,
)


@pytest.fixture(scope="module")
def bare_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    from privsynth.server.app import PrivsynthServer
    from privsynth.server.config import Settings

    data_dir: Path = tmp_path_factory.mktemp("abuse")
    settings = Settings(
        data_dir=data_dir, host="127.0.0.1", grpc_port=0, metrics_port=-1, scrub_workers=0
    )
    srv = PrivsynthServer(settings)
    srv.grpc.start()
    srv.runtime.ready.set()  # past the loading gate; health still says NOT_SERVING
    yield srv
    srv.grpc.stop(0).wait()
    srv.admission.shutdown()
    srv.runtime.close()


@pytest.fixture
def channel(bare_server: object) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(f"127.0.0.1:{bare_server.port}") as ch:  # type: ignore[attr-defined]
        yield ch


def _no_errors_logged(caplog: pytest.LogCaptureFixture) -> None:
    bad = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not bad, [f"{r.name}: {r.getMessage()}" for r in bad]


def _handled(server: object, method: str, code: str) -> float:
    value = server.runtime.metrics.registry.get_sample_value(  # type: ignore[attr-defined]
        "grpc_server_handled_total",
        {
            "grpc_type": "unary",
            "grpc_service": method.split("/")[1],
            "grpc_method": method.split("/")[2],
            "grpc_code": code,
        },
    )
    return float(value or 0)


@pytest.mark.parametrize(
    "token",
    ["9" * 20, "\u0663\u0663", "\u00b2", "-1", "12x", "1" * 400],
    ids=["twenty-nines", "arabic-digits", "superscript", "negative", "junk", "long"],
)
def test_bad_page_tokens_are_invalid_argument(
    channel: grpc.Channel, caplog: pytest.LogCaptureFixture, token: str
) -> None:
    calls = [
        lambda: datasets_pb2_grpc.DatasetsStub(channel).ListDatasets(
            datasets_pb2.ListDatasetsRequest(page_token=token), timeout=5
        ),
        lambda: models_pb2_grpc.ModelsStub(channel).ListModels(
            models_pb2.ListModelsRequest(page_token=token), timeout=5
        ),
        lambda: training_pb2_grpc.TrainingStub(channel).ListTrainingJobs(
            training_pb2.ListTrainingJobsRequest(page_token=token), timeout=5
        ),
    ]
    for call in calls:
        with pytest.raises(grpc.RpcError) as exc:
            call()
        err = from_rpc_error(exc.value)
        assert err.code == grpc.StatusCode.INVALID_ARGUMENT, err
        assert "page_token" in err.field_violations
    _no_errors_logged(caplog)


def test_offset_tokens_are_no_longer_issued_nor_taken(channel: grpc.Channel) -> None:
    # Keyset tokens replaced offsets (an insert between two pages repeated a row); see
    # tests/unit/test_paging.py for tokens the server issues.
    stub = datasets_pb2_grpc.DatasetsStub(channel)
    with pytest.raises(grpc.RpcError) as exc:
        stub.ListDatasets(datasets_pb2.ListDatasetsRequest(page_token="50"), timeout=5)
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize("temperature", [1e-300, 1e-5, float("inf")])
def test_extreme_temperature_is_invalid_argument(
    channel: grpc.Channel, caplog: pytest.LogCaptureFixture, temperature: float
) -> None:
    stub = generation_pb2_grpc.GenerationStub(channel)
    req = generation_pb2.GenerateRequest(
        model="models/00000000000000dd", count=1, temperature=temperature
    )
    with pytest.raises(grpc.RpcError) as exc:
        list(stub.Generate(req, timeout=5))
    err = from_rpc_error(exc.value)
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "temperature" in err.field_violations
    _no_errors_logged(caplog)


# A GetDatasetRequest whose field 1 (name, a string) holds invalid UTF-8, and bytes that are no
# protobuf at all (a field key announcing a length far past the end).
_INVALID_UTF8 = b"\x0a\x02\xff\xfe"
_GARBAGE = b"\x0a\xff\xff\xff\xff\x0f" + b"x" * 8


@pytest.mark.parametrize("payload", [_INVALID_UTF8, _GARBAGE], ids=["utf8", "garbage"])
def test_malformed_request_bytes_are_invalid_argument(
    bare_server: object,
    channel: grpc.Channel,
    caplog: pytest.LogCaptureFixture,
    payload: bytes,
) -> None:
    for method in (
        "/privsynth.v1.Datasets/GetDataset",
        "/grpc.health.v1.Health/Check",
    ):
        before = _handled(bare_server, method, "INVALID_ARGUMENT")
        with pytest.raises(grpc.RpcError) as exc:
            channel.unary_unary(method)(payload, timeout=5)
        assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT, method  # type: ignore[attr-defined]
        assert _handled(bare_server, method, "INVALID_ARGUMENT") == before + 1
    # A malformed message inside a client stream too.
    with pytest.raises(grpc.RpcError) as exc:
        channel.stream_unary("/privsynth.v1.Datasets/UploadDataset")(iter([payload]), timeout=5)
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
    _no_errors_logged(caplog)
    health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert health.status == health_pb2.HealthCheckResponse.NOT_SERVING


def test_client_errors_are_typed(channel: grpc.Channel) -> None:
    with pytest.raises(grpc.RpcError) as exc:
        channel.unary_unary("/privsynth.v1.Datasets/GetDataset")(_GARBAGE, timeout=5)
    err = from_rpc_error(exc.value)
    assert isinstance(err, PrivsynthClientError)
    assert "protobuf" in err.message
