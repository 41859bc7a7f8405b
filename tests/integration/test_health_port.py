"""With mutual TLS on gRPC, a plaintext port answers grpc.health.v1 and nothing else.

Kubernetes' native gRPC probes cannot speak TLS; the chart points them at this port
(``PRIVSYNTH_HEALTH_PORT``) when ``tls.enabled``. The port must report the same status as the
TLS port and serve no other service: no data, no reflection, no way around the client
certificate.
"""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from privsynth.client.pb import datasets_pb2, datasets_pb2_grpc
from tls_certs import make_pki


def test_health_port_is_plaintext_health_only(tmp_path: Path) -> None:
    from privsynth.server.app import PrivsynthServer
    from privsynth.server.config import Settings

    pki = make_pki(tmp_path / "pki")
    srv = PrivsynthServer(
        Settings(
            data_dir=tmp_path / "data",
            host="127.0.0.1",
            grpc_port=0,
            metrics_port=-1,
            health_port=0,
            training_workers=0,
            torch_threads=1,
            tls_cert_file=pki.server_cert,
            tls_key_file=pki.server_key,
            tls_client_ca_file=pki.ca,
        )
    )
    assert srv.health_port > 0 and srv.health_port != srv.port
    srv.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{srv.health_port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            assert srv.wait_ready(timeout=300), f"server failed to load: {srv.load_error}"
            status = health.Check(health_pb2.HealthCheckRequest(), timeout=10).status
            assert status == health_pb2.HealthCheckResponse.SERVING
            # No other service on this port: the data stays behind mutual TLS.
            with pytest.raises(grpc.RpcError) as info:
                datasets_pb2_grpc.DatasetsStub(channel).ListDatasets(
                    datasets_pb2.ListDatasetsRequest(), timeout=10
                )
            assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED
        # The main port stays TLS-only: a plaintext health check there fails.
        with (
            grpc.insecure_channel(f"127.0.0.1:{srv.port}") as channel,
            pytest.raises(grpc.RpcError) as info,
        ):
            health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        srv.stop(grace=1)
    # Shutdown stops the health port too.
    with (
        grpc.insecure_channel(f"127.0.0.1:{srv.health_port}") as channel,
        pytest.raises(grpc.RpcError),
    ):
        health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=2)
