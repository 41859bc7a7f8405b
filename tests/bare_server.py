"""A privsynth server whose gRPC port is open but whose models never load.

Health answers NOT_SERVING and model-backed calls UNAVAILABLE, which is all that tests of
admission, limits and connections need; it starts in a fraction of a second.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def bare_server(data_dir: Path, *, ready: bool = False, **settings: Any) -> Iterator[Any]:
    """A started :class:`~privsynth.server.app.PrivsynthServer` on a free port, stopped after.

    Args:
        data_dir: Its data directory.
        ready: Mark the runtime ready (uploads are accepted; the scrubber loads in-process on
            first use) without loading any model.
        **settings: Other :class:`~privsynth.server.config.Settings` fields.
    """
    from privsynth.server.app import PrivsynthServer
    from privsynth.server.config import Settings

    srv = PrivsynthServer(
        Settings(
            data_dir=data_dir,
            host="127.0.0.1",
            grpc_port=0,
            metrics_port=-1,
            scrub_workers=0,
            **settings,
        )
    )
    srv.grpc.start()
    srv.idle.start()
    if ready:
        srv.runtime.ready.set()
    try:
        yield srv
    finally:
        srv.idle.stop()
        srv.grpc.stop(0).wait()
        srv.runtime.close()
