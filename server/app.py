"""Assemble and run the gRPC server: servicers, health, reflection, metrics, shutdown.

Start-up order matters for probes: the port opens first with health NOT_SERVING, the scrubber
(Presidio + spaCy) and the model code load in the background, and only then does health turn
SERVING. On SIGTERM health goes NOT_SERVING first, so load balancers stop sending work, then
``stop(grace)`` lets in-flight RPCs finish, then training workers stop (charging what they
consumed).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from concurrent import futures
from types import FrameType
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from privsynth.client.pb import (
    datasets_pb2,
    datasets_pb2_grpc,
    evaluation_pb2,
    evaluation_pb2_grpc,
    generation_pb2,
    generation_pb2_grpc,
    models_pb2,
    models_pb2_grpc,
    privacy_pb2,
    privacy_pb2_grpc,
    scrubbing_pb2,
    scrubbing_pb2_grpc,
    training_pb2,
    training_pb2_grpc,
)
from privsynth.server.api.admission import Admission, default_max_streams
from privsynth.server.api.auth import Authenticator
from privsynth.server.api.connections import (
    HEALTH_PORT_CONNECTIONS,
    connection_options,
    default_max_connections,
)
from privsynth.server.api.idle import IdleLimit
from privsynth.server.api.interceptors import ServerInterceptor
from privsynth.server.api.reflection import enable_reflection
from privsynth.server.api.services.datasets import DatasetsServicer
from privsynth.server.api.services.evaluation import EvaluationsServicer
from privsynth.server.api.services.generation import GenerationServicer
from privsynth.server.api.services.models import ModelsServicer
from privsynth.server.api.services.privacy import PrivacyServicer
from privsynth.server.api.services.scrubbing import ScrubbingServicer
from privsynth.server.api.services.training import TrainingServicer
from privsynth.server.config import Settings
from privsynth.server.evaluation.runner import EvaluationRunner
from privsynth.server.jobs.runner import JobRunner
from privsynth.server.logs import configure_logging, quiet_alembic
from privsynth.server.privacy.empirical_audit import PrivacyAuditor
from privsynth.server.runtime import Runtime
from privsynth.server.telemetry import RpcTelemetry, from_environment

__all__ = ["PrivsynthServer", "serve", "server_credentials"]

log = logging.getLogger(__name__)

SERVICE_NAMES = (
    datasets_pb2.DESCRIPTOR.services_by_name["Datasets"].full_name,
    training_pb2.DESCRIPTOR.services_by_name["Training"].full_name,
    models_pb2.DESCRIPTOR.services_by_name["Models"].full_name,
    generation_pb2.DESCRIPTOR.services_by_name["Generation"].full_name,
    privacy_pb2.DESCRIPTOR.services_by_name["Privacy"].full_name,
    scrubbing_pb2.DESCRIPTOR.services_by_name["Scrubbing"].full_name,
    evaluation_pb2.DESCRIPTOR.services_by_name["Evaluations"].full_name,
)


def server_credentials(settings: Settings) -> grpc.ServerCredentials | None:
    """TLS credentials from the configured PEM files (mutual TLS with a client CA), or None."""
    if settings.tls_cert_file is None or settings.tls_key_file is None:
        return None
    ca = settings.tls_client_ca_file.read_bytes() if settings.tls_client_ca_file else None
    return grpc.ssl_server_credentials(
        [(settings.tls_key_file.read_bytes(), settings.tls_cert_file.read_bytes())],
        root_certificates=ca,
        require_client_auth=ca is not None,
    )


def _warm_up_models() -> None:
    """Import torch and Opacus and run one forward pass, so the first job does not pay it."""
    import opacus  # noqa: F401  (import cost belongs to start-up)
    import torch
    from privsynth.models.tokenizer import load_tokenizer
    from privsynth.models.transformer import TinyTransformerLM, get_preset

    tok = load_tokenizer()
    model = TinyTransformerLM(get_preset("tiny", vocab_size=tok.vocab_size))
    with torch.inference_mode():
        model(torch.tensor([[tok.bos_id]]))


class HealthServicer(health.HealthServicer):  # type: ignore[misc]
    """grpcio's health servicer plus ``List`` (a snapshot of every service's status)."""

    def List(  # noqa: N802  (gRPC method name)
        self, request: health_pb2.HealthListRequest, context: grpc.ServicerContext
    ) -> health_pb2.HealthListResponse:
        """Every registered service's status, the overall one under ``""``."""
        with self._lock:
            statuses = dict(self._server_status)
        return health_pb2.HealthListResponse(
            statuses={
                name: health_pb2.HealthCheckResponse(status=status)
                for name, status in statuses.items()
            }
        )


class PrivsynthServer:
    """One server process: gRPC, health, metrics and training workers."""

    def __init__(self, settings: Settings, telemetry: RpcTelemetry | None = None) -> None:
        """Build the server; ``telemetry`` defaults to OpenTelemetry as the environment says."""
        quiet_alembic()  # (before the schema check or migration below)
        self.settings = settings
        self.telemetry = telemetry if telemetry is not None else from_environment()
        self.runtime = Runtime.create(settings)
        self.runner = JobRunner(self.runtime)
        # One auditor for the Privacy service's AuditPrivacy and the quality reports' canary
        # audits: each trains a model, so they run one at a time.
        self.auditor = PrivacyAuditor(
            torch_threads=settings.torch_threads, max_seconds=settings.max_audit_seconds
        )
        self.evaluations = EvaluationRunner(self.runtime, auditor=self.auditor)
        self.auth = Authenticator.from_settings(settings)
        self.admission = Admission(
            max_streams=settings.max_streams or default_max_streams(settings.max_workers),
            max_watch_streams=settings.max_watch_streams,
            max_generate_calls=settings.max_generate_calls,
            max_scrub_calls=settings.max_scrub_calls,
            max_streams_per_caller=settings.max_streams_per_caller or None,
            max_unary_per_caller=settings.max_unary_calls_per_caller
            or max(1, settings.max_workers // 2),
        )
        self.idle = IdleLimit(limit_s=settings.stream_idle_seconds)
        self.interceptor = ServerInterceptor(
            self.runtime.metrics, self.auth, self.admission, self.telemetry, self.idle
        )
        self.health = HealthServicer()
        self.grpc = grpc.server(
            futures.ThreadPoolExecutor(max_workers=settings.max_workers, thread_name_prefix="grpc"),
            interceptors=[self.interceptor],
            maximum_concurrent_rpcs=settings.max_concurrent_rpcs or None,
            options=[
                ("grpc.max_receive_message_length", 32 * 1024 * 1024),
                ("grpc.so_reuseport", 0),
                *connection_options(
                    max_connections=settings.max_connections or default_max_connections(),
                    idle_s=settings.connection_idle_seconds,
                ),
            ],
        )
        rt = self.runtime
        datasets_pb2_grpc.add_DatasetsServicer_to_server(DatasetsServicer(rt), self.grpc)
        training_pb2_grpc.add_TrainingServicer_to_server(
            TrainingServicer(rt, self.runner), self.grpc
        )
        models_pb2_grpc.add_ModelsServicer_to_server(ModelsServicer(rt), self.grpc)
        generation_pb2_grpc.add_GenerationServicer_to_server(GenerationServicer(rt), self.grpc)
        privacy_pb2_grpc.add_PrivacyServicer_to_server(PrivacyServicer(rt, self.auditor), self.grpc)
        scrubbing_pb2_grpc.add_ScrubbingServicer_to_server(ScrubbingServicer(rt), self.grpc)
        evaluation_pb2_grpc.add_EvaluationsServicer_to_server(
            EvaluationsServicer(rt, self.evaluations), self.grpc
        )
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.grpc)
        enable_reflection((*SERVICE_NAMES, health.SERVICE_NAME), self.grpc)
        address = f"{settings.host}:{settings.grpc_port}"
        credentials = server_credentials(settings)
        if credentials is None:
            self.port = self.grpc.add_insecure_port(address)
        else:
            self.port = self.grpc.add_secure_port(address, credentials)
        if self.auth.open_mode:
            log.warning(
                "open mode: no PRIVSYNTH_AUTH_TOKENS_FILE, so every caller without a token is "
                "a member of tenant 'default'; configure tokens before exposing this server"
            )
        if self.port == 0:
            raise RuntimeError(f"could not bind {settings.host}:{settings.grpc_port}")
        self.health_port, self._health_grpc = self._health_only_server(settings)
        self.metrics_port = -1
        self._metrics_http: Any = None
        self._loader: threading.Thread | None = None
        self.load_error: BaseException | None = None
        self._set_health(serving=False)

    def _health_only_server(self, settings: Settings) -> tuple[int, grpc.Server | None]:
        """A plaintext port serving ``grpc.health.v1`` alone (no data), for TLS-blind probes.

        Kubernetes' native gRPC probes cannot speak TLS; with TLS on the main port they check
        this one instead. It shares the health servicer, so both ports report the same status.
        """
        if settings.health_port < 0:
            return -1, None
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="health"),
            options=[
                ("grpc.so_reuseport", 0),
                *connection_options(max_connections=HEALTH_PORT_CONNECTIONS, idle_s=60.0),
            ],
        )
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        port = server.add_insecure_port(f"{settings.host}:{settings.health_port}")
        if port == 0:
            raise RuntimeError(f"could not bind {settings.host}:{settings.health_port}")
        return port, server

    def _set_health(self, *, serving: bool) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in ("", *SERVICE_NAMES):
            self.health.set(name, status)

    def _load(self) -> None:
        try:
            self.runtime.scrubber.load()
            _warm_up_models()
        except BaseException as exc:
            self.load_error = exc
            log.error("start-up failed, stopping: %s", exc)
            self.grpc.stop(0)
            if self._health_grpc is not None:
                self._health_grpc.stop(0)
            return
        self.runtime.ready.set()
        self.runtime.metrics.ready.set(1)
        self._set_health(serving=True)
        self.runner.recover()
        log.info("privsynth ready on port %d", self.port)

    def start(self) -> None:
        """Open the ports; models load in the background and health turns SERVING after."""
        if self.settings.metrics_port >= 0:
            self._metrics_http, self.metrics_port = self.runtime.metrics.serve_http(
                self.settings.host, self.settings.metrics_port
            )
        self.grpc.start()
        self.idle.start()
        if self._health_grpc is not None:
            self._health_grpc.start()
        log.info("privsynth listening on %s:%d (loading models)", self.settings.host, self.port)
        self._loader = threading.Thread(target=self._load, name="loader", daemon=True)
        self._loader.start()

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Block until loading finished; True when the server is SERVING."""
        if self._loader is not None:
            self._loader.join(timeout)
        return self.runtime.ready.is_set()

    def stop(self, grace: float | None = None) -> None:
        """Graceful shutdown: NOT_SERVING, drain RPCs, stop workers, close the database."""
        grace = self.settings.shutdown_grace_seconds if grace is None else grace
        self.health.enter_graceful_shutdown()
        self.grpc.stop(grace).wait()
        if self._health_grpc is not None:
            self._health_grpc.stop(0).wait()
        self.idle.stop()
        self.admission.shutdown()
        self.runner.shutdown()
        self.evaluations.shutdown()
        if self._metrics_http is not None:
            self._metrics_http.shutdown()
            self._metrics_http.server_close()
        if self.telemetry is not None:
            self.telemetry.shutdown()
        self.runtime.close()

    def wait(self) -> None:
        """Block until the gRPC server terminates."""
        self.grpc.wait_for_termination()


def serve(settings: Settings) -> int:
    """Run until SIGTERM or SIGINT; returns a process exit code.

    The process umask becomes 077 first: every file the server writes (database, artifacts,
    training checkpoints) is readable by its own user only.
    """
    os.umask(0o077)
    configure_logging(settings.log_level, settings.log_format)
    server = PrivsynthServer(settings)
    stopping = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        if stopping.is_set():
            return
        stopping.set()
        log.info("signal %d: shutting down (grace %.0fs)", signum, settings.shutdown_grace_seconds)
        threading.Thread(target=server.stop, name="shutdown").start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server.start()
    print(f"privsynth serving gRPC on {settings.host}:{server.port}", flush=True)
    if server.metrics_port >= 0:
        print(f"metrics on http://{settings.host}:{server.metrics_port}/metrics", flush=True)
    server.wait()
    return 1 if server.load_error is not None else 0
