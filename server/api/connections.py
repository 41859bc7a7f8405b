"""Bounds on the server's connections, so idle sockets cannot use up its file descriptors.

Admission (:mod:`.admission`) and the idle limit (:mod:`.idle`) bound *calls*. A connection
that carries no call is below them: 20,000 sockets that sent the HTTP/2 preface and nothing
else, no token needed, used every file descriptor of the process. New clients then timed out,
and so would the database, the artifact store and the scrub workers' pipes. grpc core has
the three knobs this module sets:

* ``grpc.max_allowed_incoming_connections``: connections open at once; one more is closed
  as soon as it is accepted. Default: half the process's open-file limit, so the other half
  stays for files, pipes and the database.
* ``grpc.max_connection_idle_ms``: a connection with no call for this long is sent GOAWAY and
  closed. Clients reconnect transparently on their next call.
* ``grpc.server_handshake_timeout_ms``: a connection that has not completed its HTTP/2 (and
  TLS) handshake within this time is closed (grpc's default is 120 s).

A crowd of sockets can still fill the connection bound, which then refuses new clients until
the idle limit closes them: per-address limits belong in front of the server (a load
balancer or proxy), which is where Kubernetes deployments have one.
"""

from __future__ import annotations

import resource

__all__ = [
    "DEFAULT_CONNECTION_IDLE_SECONDS",
    "HANDSHAKE_TIMEOUT_S",
    "HEALTH_PORT_CONNECTIONS",
    "connection_options",
    "default_max_connections",
]

DEFAULT_CONNECTION_IDLE_SECONDS = 300.0
"""How long a connection with no call stays open (a client reconnects on its next call)."""
HANDSHAKE_TIMEOUT_S = 20.0
"""How long a new connection may take to complete its handshakes (TLS included)."""
HEALTH_PORT_CONNECTIONS = 64
"""Connections to the plaintext health port: probes open one each, briefly."""
_CONNECTION_CAP = 10_000


def default_max_connections() -> int:
    """Half the process's open-file limit (soft), between 64 and 10,000."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return _CONNECTION_CAP
    return max(64, min(_CONNECTION_CAP, soft // 2))


def connection_options(*, max_connections: int, idle_s: float) -> list[tuple[str, int]]:
    """Grpc server options bounding connections (``idle_s`` 0: idle connections stay)."""
    options = [
        ("grpc.max_allowed_incoming_connections", max_connections),
        ("grpc.server_handshake_timeout_ms", round(HANDSHAKE_TIMEOUT_S * 1000)),
    ]
    if idle_s > 0:
        options.append(("grpc.max_connection_idle_ms", max(1, round(idle_s * 1000))))
    return options
