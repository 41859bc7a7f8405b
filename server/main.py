"""``privsynth serve``: settings from the environment, CLI flags on top."""

from __future__ import annotations

import argparse
from typing import Any

from privsynth.server.app import serve
from privsynth.server.config import Settings

__all__ = ["serve_from_cli", "settings_from_cli"]


def settings_from_cli(args: argparse.Namespace) -> Settings:
    """``PRIVSYNTH_*`` settings, overridden by the flags that were given."""
    overrides: dict[str, Any] = {}
    for flag, key in (
        ("host", "host"),
        ("port", "grpc_port"),
        ("metrics_port", "metrics_port"),
        ("data_dir", "data_dir"),
    ):
        value = getattr(args, flag, None)
        if value is not None:
            overrides[key] = value
    return Settings(**overrides)


def serve_from_cli(args: argparse.Namespace) -> int:
    """Run the server with the CLI's settings."""
    return serve(settings_from_cli(args))
