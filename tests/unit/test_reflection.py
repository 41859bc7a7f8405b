"""Reflection answers under grpc.reflection.v1 (what grpcurl asks first) and v1alpha."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from privsynth.client.pb import datasets_pb2
from privsynth.server.api.reflection import (
    V1_SERVICE_NAME,
    V1ALPHA_SERVICE_NAME,
    enable_reflection,
)

DATASETS = datasets_pb2.DESCRIPTOR.services_by_name["Datasets"].full_name


@pytest.fixture(scope="module")
def channel() -> Iterator[grpc.Channel]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    enable_reflection([DATASETS], server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        yield ch
    server.stop(0)


def _v1(name: str) -> Any:
    """A v1 message class, from the v1 descriptor (not the v1alpha classes the server uses)."""
    pool = descriptor_pool.Default()
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"grpc.reflection.v1.{name}"))


def _ask_v1(channel: grpc.Channel, **request: Any) -> Any:
    call = channel.stream_stream(
        f"/{V1_SERVICE_NAME}/ServerReflectionInfo",
        request_serializer=lambda m: m.SerializeToString(),
        response_deserializer=_v1("ServerReflectionResponse").FromString,
    )
    (response,) = list(call(iter([_v1("ServerReflectionRequest")(**request)]), timeout=10))
    return response


def _files(response: Any) -> dict[str, descriptor_pb2.FileDescriptorProto]:
    files = {}
    for raw in response.file_descriptor_response.file_descriptor_proto:
        proto = descriptor_pb2.FileDescriptorProto.FromString(raw)
        files[proto.name] = proto
    return files


def test_v1_lists_services_and_describes_them(channel: grpc.Channel) -> None:
    listed = _ask_v1(channel, list_services="")
    names = {s.name for s in listed.list_services_response.service}
    assert names == {DATASETS, V1_SERVICE_NAME, V1ALPHA_SERVICE_NAME}
    files = _files(_ask_v1(channel, file_containing_symbol=DATASETS))
    assert "privsynth/v1/datasets.proto" in files
    assert "Datasets" in {s.name for s in files["privsynth/v1/datasets.proto"].service}


def test_v1_describes_its_own_v1_service(channel: grpc.Channel) -> None:
    files = _files(_ask_v1(channel, file_containing_symbol=V1_SERVICE_NAME))
    v1 = files["grpc/reflection/v1/reflection.proto"]
    assert v1.package == "grpc.reflection.v1"
    (method,) = v1.service[0].method
    assert method.input_type == ".grpc.reflection.v1.ServerReflectionRequest"
    assert method.client_streaming and method.server_streaming
    assert "v1alpha" not in v1.SerializeToString().decode(errors="replace")


def test_v1_unknown_symbol_is_not_found(channel: grpc.Channel) -> None:
    response = _ask_v1(channel, file_containing_symbol="no.such.Service")
    assert response.error_response.error_code == grpc.StatusCode.NOT_FOUND.value[0]


def test_v1alpha_still_answers(channel: grpc.Channel) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    (response,) = list(
        stub.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10
        )
    )
    assert DATASETS in {s.name for s in response.list_services_response.service}
