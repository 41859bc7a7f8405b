"""How clients connect: TLS settings, channel options and the retry policy, for sync and asyncio.

Both :class:`~privsynth.client.client.PrivsynthClient` and
:class:`~privsynth.client.aio.AsyncPrivsynthClient` open their channels here, so that they retry,
size messages and verify certificates the same way.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import grpc
import grpc.aio

__all__ = ["SERVICE_CONFIG", "TlsConfig", "open_aio_channel", "open_channel"]


@dataclass(frozen=True)
class TlsConfig:
    """TLS settings of a client.

    ``root_certificates`` are the PEM bytes of the CA that signed the server's certificate
    (None: the system's roots); ``certificate_chain`` and ``private_key`` are the client's, for
    mutual TLS; ``server_name`` overrides the host name checked against the certificate.
    """

    root_certificates: bytes | None = None
    certificate_chain: bytes | None = None
    private_key: bytes | None = None
    server_name: str = ""

    @classmethod
    def from_files(
        cls,
        *,
        ca: str | None = None,
        cert: str | None = None,
        key: str | None = None,
        server_name: str = "",
    ) -> TlsConfig:
        """Read the PEM files (each optional)."""

        def read(path: str | None) -> bytes | None:
            if not path:
                return None
            with open(path, "rb") as fh:
                return fh.read()

        return cls(read(ca), read(cert), read(key), server_name)


_RETRY_POLICY = {
    "maxAttempts": 5,
    "initialBackoff": "0.2s",
    "maxBackoff": "5s",
    "backoffMultiplier": 2,
    "retryableStatusCodes": ["UNAVAILABLE"],
}
SERVICE_CONFIG = json.dumps(
    {
        "methodConfig": [
            {
                "name": [
                    {"service": f"privsynth.v1.{name}"}
                    for name in (
                        "Datasets",
                        "Training",
                        "Models",
                        "Generation",
                        "Privacy",
                        "Scrubbing",
                    )
                ]
                + [{"service": "grpc.health.v1.Health"}],
                "retryPolicy": _RETRY_POLICY,
            }
        ]
    }
)
"""gRPC's own retries: UNAVAILABLE (server restarting, connection reset) is retried up to 5
times with exponential backoff. Safe for every method: reads are idempotent, and the calls that
create or spend (UploadDataset, CreateTrainingJob) carry a request_id the server deduplicates."""


def _options(tls: TlsConfig | None) -> list[tuple[str, Any]]:
    options: list[tuple[str, Any]] = [
        ("grpc.max_send_message_length", 32 * 1024 * 1024),
        ("grpc.enable_retries", 1),
        ("grpc.service_config", SERVICE_CONFIG),
    ]
    if tls is not None and tls.server_name:
        options.append(("grpc.ssl_target_name_override", tls.server_name))
    return options


def _credentials(tls: TlsConfig) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(
        root_certificates=tls.root_certificates,
        private_key=tls.private_key,
        certificate_chain=tls.certificate_chain,
    )


def open_channel(target: str, tls: TlsConfig | None) -> grpc.Channel:
    """A blocking channel to ``target``, plaintext when ``tls`` is None."""
    if tls is None:
        return grpc.insecure_channel(target, options=_options(tls))
    return grpc.secure_channel(target, _credentials(tls), options=_options(tls))


def open_aio_channel(target: str, tls: TlsConfig | None) -> grpc.aio.Channel:
    """An asyncio channel to ``target`` with the same options as :func:`open_channel`."""
    if tls is None:
        return grpc.aio.insecure_channel(target, options=_options(tls))
    return grpc.aio.secure_channel(target, _credentials(tls), options=_options(tls))
