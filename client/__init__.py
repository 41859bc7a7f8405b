"""privsynth client: the Python client library and the ``privsynth`` CLI.

Needs only grpcio and protobuf (plus gRPC's status and health helpers); it never imports the
server or the models, so teams can install it without torch or Presidio.
"""

from privsynth.client.client import PrivsynthClient, RecordIn, TlsConfig
from privsynth.client.errors import BudgetExhausted, Overloaded, PrivsynthClientError

__all__ = [
    "BudgetExhausted",
    "Overloaded",
    "PrivsynthClient",
    "PrivsynthClientError",
    "RecordIn",
    "TlsConfig",
]
