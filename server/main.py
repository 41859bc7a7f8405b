"""``privsynth serve``: settings from the environment, CLI flags on top."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from privsynth.server.app import serve
from privsynth.server.config import Settings, SettingsError, describe_settings_error
from pydantic import ValidationError

__all__ = ["EXIT_CONFIG", "serve_from_cli", "settings_from_cli"]

EXIT_CONFIG = 78
"""Exit status of a server that cannot start with its settings (sysexits' EX_CONFIG)."""


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
    """Run the server with the CLI's settings.

    A setting it cannot run with (malformed, or e.g. ``PRIVSYNTH_DEVICE=cuda`` without a GPU)
    ends it with one line saying which and what to do, and :data:`EXIT_CONFIG`: an operator
    reading a pod's log needs the setting's name, not a traceback.
    """
    try:
        return serve(settings_from_cli(args))
    except (SettingsError, ValidationError) as exc:
        print(f"error: configuration: {describe_settings_error(exc)}", file=sys.stderr)
        return EXIT_CONFIG
