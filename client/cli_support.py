"""What every client command of the CLI shares: the global options, the connection, output.

Global options (server address, deadline, token, TLS, ``--json``) are defined once here and
added to the top-level parser *and* to every client sub-command, so that ``privsynth --json
datasets list`` and ``privsynth datasets list --json`` mean the same. In sub-commands their
default is ``SUPPRESS``: a value given before the sub-command is not overwritten by the
sub-command's default.

``--json`` makes a command print one JSON document (or JSON lines, for streams) on stdout and
nothing else there; progress and notes go to stderr. Messages use the canonical proto3 JSON
mapping with the proto's field names (so 64-bit integers are strings), as the Go and Java
clients print them.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message
from privsynth.client.client import PrivsynthClient, TlsConfig
from privsynth.client.printing import printable

__all__ = [
    "UsageError",
    "add_global_options",
    "bearer_token",
    "connect",
    "globalize",
    "int32_arg",
    "int64_arg",
    "json_mode",
    "message_dict",
    "name_arg",
    "positive_int32_arg",
    "print_json",
    "resource_name",
    "table",
]


class UsageError(Exception):
    """The command line cannot work as given (exit code 2, like argparse's own errors)."""


def _bounded_int(lo: int, hi: int) -> Callable[[str], int]:
    """An argparse type for an integer the wire can carry; the server judges the value."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"{value} is out of range ({lo}..{hi})")
        return value

    parse.__name__ = "integer"  # argparse names the type in its messages
    return parse


int32_arg = _bounded_int(-(2**31), 2**31 - 1)
"""Type of an option sent as a proto ``int32`` (counts, epochs, token limits, page sizes)."""
positive_int32_arg = _bounded_int(1, 2**31 - 1)
"""An ``int32`` option whose 0 would read as "the server's default" on the wire."""
int64_arg = _bounded_int(-(2**63), 2**63 - 1)
"""Type of an option sent as a proto ``int64`` (a sampling seed)."""


def name_arg(text: str) -> str:
    """Type of an option naming something (a preset): empty would read as "the default"."""
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty (leave the option out for the default)")
    return text


def _deadline(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError("must be a number of seconds > 0")
    return value


def add_global_options(parser: argparse.ArgumentParser, *, suppress: bool = False) -> None:
    """The options every client command takes; ``suppress`` for sub-command parsers.

    Options a parser defines already (e.g. ``audit report --json FILE``) are left to it.
    """

    def default(value: Any) -> Any:
        return argparse.SUPPRESS if suppress else value

    taken = set(parser._option_string_actions)  # argparse keeps no public view of this
    group = parser.add_argument_group("global options (before or after the command)")

    def add(flag: str, **kwargs: Any) -> None:
        if flag not in taken:
            group.add_argument(flag, **kwargs)

    add(
        "--target",
        default=default(os.environ.get("PRIVSYNTH_TARGET", "127.0.0.1:50051")),
        help="server address host:port (env PRIVSYNTH_TARGET; default 127.0.0.1:50051)",
    )
    add(
        "--timeout",
        type=_deadline,
        default=default(30.0),
        help="deadline for unary calls and each page of a list, seconds (default 30)",
    )
    add(
        "--json",
        action="store_const",
        const="-",
        default=default(None),
        help="print the result as JSON on stdout (progress and notes go to stderr)",
    )
    add(
        "--token",
        default=default(os.environ.get("PRIVSYNTH_TOKEN", "")),
        help="bearer token sent on every call (env PRIVSYNTH_TOKEN; prefer the env var or "
        "--auth-token-file, since arguments show in the process list)",
    )
    add(
        "--auth-token-file",
        default=default(os.environ.get("PRIVSYNTH_TOKEN_FILE") or None),
        help="file holding the bearer token (env PRIVSYNTH_TOKEN_FILE)",
    )
    add(
        "--tls",
        action="store_true",
        default=default(False),
        help="use TLS with the system's root certificates",
    )
    add(
        "--tls-ca",
        default=default(os.environ.get("PRIVSYNTH_TLS_CA_FILE") or None),
        help="PEM CA bundle that signed the server's certificate; implies --tls "
        "(env PRIVSYNTH_TLS_CA_FILE)",
    )
    add(
        "--tls-cert",
        default=default(os.environ.get("PRIVSYNTH_TLS_CLIENT_CERT_FILE") or None),
        help="PEM client certificate for mutual TLS (env PRIVSYNTH_TLS_CLIENT_CERT_FILE)",
    )
    add(
        "--tls-key",
        default=default(os.environ.get("PRIVSYNTH_TLS_CLIENT_KEY_FILE") or None),
        help="PEM key of --tls-cert (env PRIVSYNTH_TLS_CLIENT_KEY_FILE)",
    )
    add(
        "--tls-server-name",
        default=default(""),
        help="host name to verify in the server's certificate (default: from --target)",
    )


def globalize(parser: argparse.ArgumentParser, *, skip: Iterable[str] = ()) -> None:
    """Add the global options to every sub-command below ``parser`` (except ``skip``).

    Walks nested sub-commands too (``datasets list``, ``audit verify``), so a command added
    later gets them without doing anything.
    """
    skipped = set(skip)
    for action in parser._actions:  # argparse has no public walk over sub-parsers
        if not isinstance(action, argparse._SubParsersAction):
            continue
        for name, sub in action.choices.items():
            if name in skipped:
                continue
            if any(isinstance(a, argparse._SubParsersAction) for a in sub._actions):
                globalize(sub)
            else:
                add_global_options(sub, suppress=True)


def bearer_token(args: argparse.Namespace) -> str:
    """The bearer token: --auth-token-file, else --token / PRIVSYNTH_TOKEN (never printed)."""
    path = getattr(args, "auth_token_file", None)
    if path:
        try:
            token = Path(path).read_text(encoding="utf-8").strip()
        except UnicodeDecodeError:
            raise UsageError(f"{path}: the token file is not UTF-8 text") from None
    else:
        token = str(getattr(args, "token", "") or "")
    # gRPC sends the token in a header: anything but visible ASCII fails inside the C core with
    # a log line that reads like a server fault. Say so here, without the token.
    if any(not 0x20 < ord(c) < 0x7F for c in token):
        raise UsageError(
            "the bearer token holds a space, a control or a non-ASCII character, which a "
            "request header cannot carry"
        )
    return token


def _tls(args: argparse.Namespace) -> TlsConfig | None:
    ca, cert, key = args.tls_ca, args.tls_cert, args.tls_key
    if not (args.tls or ca or cert or key):
        return None
    if bool(cert) != bool(key):
        raise UsageError("mutual TLS needs both --tls-cert and --tls-key")
    return TlsConfig.from_files(ca=ca, cert=cert, key=key, server_name=args.tls_server_name)


def connect(args: argparse.Namespace, *, token: str | None = None) -> PrivsynthClient:
    """A client for the global options in ``args`` (``token`` overrides theirs)."""
    return PrivsynthClient(
        args.target,
        timeout=args.timeout,
        token=bearer_token(args) if token is None else token,
        tls=_tls(args),
    )


def json_mode(args: argparse.Namespace) -> bool:
    """Whether the command should print JSON on stdout (``--json``, or ``--json -``)."""
    return getattr(args, "json", None) == "-"


def message_dict(message: Message) -> dict[str, Any]:
    """A protobuf message as canonical proto3 JSON, with every field (defaults too)."""
    return MessageToDict(
        message,
        preserving_proto_field_name=True,
        always_print_fields_with_no_presence=True,
    )


def print_json(data: Any) -> None:
    """One JSON document on stdout."""
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def resource_name(collection: str, value: str) -> str:
    """``datasets/<id>`` from either ``datasets/<id>`` or the bare id; empty stays empty."""
    if not value:
        return value
    return value if value.startswith(f"{collection}/") else f"{collection}/{value}"


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Rows under a header, columns padded to their widest cell; control characters as ``?``."""
    rows = [[printable(cell) for cell in row] for row in rows]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    )
