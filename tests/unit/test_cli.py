"""Every CLI command has --help and the global options; exit codes are one documented table;
the client installs and runs without server packages."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from privsynth.client import errors
from privsynth.client.cli import (
    EXIT_DATAERR,
    EXIT_NOINPUT,
    CorpusFileError,
    build_parser,
    main,
    read_records,
)
from privsynth.client.exit_codes import MEANING, ExitCode, for_error

COMMANDS = [
    "upload",
    "train",
    "watch",
    "sample",
    "budget",
    "set-cap",
    "audit",
    "datasets",
    "jobs",
    "models",
    "serve",
    "scrub",
    "pretrain",
    "demo",
    "evaluate",
]


NESTED = [
    "audit export",
    "audit verify",
    "audit report",
    "audit privacy",
    "datasets list",
    "datasets get",
    "datasets delete",
    "jobs list",
    "jobs get",
    "jobs cancel",
    "models list",
    "models get",
    "models delete",
]
LOCAL = {"serve", "scrub", "pretrain", "demo"}


def _leaves(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield path, parser
    for action in subs:
        for name, sub in action.choices.items():
            yield from _leaves(sub, (*path, name))


@pytest.mark.parametrize("command", [None, *COMMANDS, *NESTED])
def test_help(command: str | None, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--help"] if command is None else [*command.split(), "--help"]
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "usage: privsynth" in out


def test_parser_knows_every_command() -> None:
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert set(sub.choices) == set(COMMANDS)  # type: ignore[arg-type]
    leaves = {" ".join(path) for path, _ in _leaves(build_parser())}
    assert {c for c in leaves if " " in c} == set(NESTED)


GLOBAL = ["--target", "--timeout", "--json", "--token", "--auth-token-file", "--tls", "--tls-ca"]


def test_every_client_command_takes_the_global_options_after_it() -> None:
    for path, leaf in _leaves(build_parser()):
        if path[0] in LOCAL:
            continue
        for flag in GLOBAL:
            action = leaf._option_string_actions.get(flag)
            assert action is not None, (path, flag)
            # SUPPRESS: a value given before the command is not reset by the command's default
            assert action.default is argparse.SUPPRESS, (path, flag)


@pytest.mark.parametrize(
    "command",
    [["datasets", "list"], ["train", "datasets/ab", "--epsilon", "1"], ["audit", "verify"]],
)
def test_global_options_parse_before_and_after_the_command(command: list[str]) -> None:
    parser = build_parser()
    given = ["--target", "h:1", "--timeout", "7", "--json", "--token", "t", "--tls"]
    for argv in ([*given, *command], [*command, *given]):
        args = parser.parse_args(argv)
        assert (args.target, args.timeout, args.token, args.tls) == ("h:1", 7.0, "t", True)
        assert args.json == "-"
    args = parser.parse_args(["--timeout", "9", *command])
    assert args.timeout == 9.0 and args.json is None and args.target == "127.0.0.1:50051"


def test_version_and_exit_codes_are_in_the_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.startswith("privsynth ")
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for code, meaning in MEANING.items():
        assert f"{code.value:>3}  {meaning}" in out


def test_exit_codes_tell_the_failures_apart() -> None:
    def code(status: grpc.StatusCode, *, reason: str = "") -> ExitCode:
        return for_error(errors.from_status(status, reason=reason))

    distinct = {
        code(grpc.StatusCode.INVALID_ARGUMENT): ExitCode.USAGE,
        code(grpc.StatusCode.NOT_FOUND): ExitCode.NOT_FOUND,
        code(grpc.StatusCode.PERMISSION_DENIED): ExitCode.PERMISSION,
        code(grpc.StatusCode.UNAUTHENTICATED): ExitCode.UNAUTHENTICATED,
        code(grpc.StatusCode.RESOURCE_EXHAUSTED, reason="BUDGET_EXCEEDED"): ExitCode.BUDGET,
        code(grpc.StatusCode.RESOURCE_EXHAUSTED, reason="TOO_MANY_CONCURRENT_CALLS"): (
            ExitCode.BUSY
        ),
        code(grpc.StatusCode.FAILED_PRECONDITION, reason="EPSILON_UNREACHABLE"): (
            ExitCode.CONFLICT
        ),
        code(grpc.StatusCode.RESOURCE_EXHAUSTED, reason="STORAGE_QUOTA_EXCEEDED"): (ExitCode.QUOTA),
        code(grpc.StatusCode.INTERNAL): ExitCode.SERVER_ERROR,
        code(grpc.StatusCode.UNAVAILABLE): ExitCode.UNAVAILABLE,
    }
    assert all(got == want for got, want in distinct.items())
    assert len(set(distinct)) == len(distinct)
    # grpcio's own refusal past PRIVSYNTH_MAX_CONCURRENT_RPCS carries no details: still busy.
    full = errors.from_status(grpc.StatusCode.RESOURCE_EXHAUSTED, "Concurrent RPC limit exceeded!")
    assert isinstance(full, errors.Overloaded) and for_error(full) is ExitCode.BUSY


def test_a_server_that_is_not_there_is_unavailable_not_usage(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["datasets", "list", *_NOWHERE]) == ExitCode.UNAVAILABLE
    err = capsys.readouterr().err
    assert ("UNAVAILABLE" in err or "DEADLINE_EXCEEDED" in err) and "Traceback" not in err


def test_half_a_client_certificate_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["jobs", "get", "x", "--tls-cert", "c.pem"]) == ExitCode.USAGE
    assert "--tls-key" in capsys.readouterr().err


def test_read_records_reports_bad_lines_by_number(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "c.jsonl"
    path.write_text('{"text": "ok", "label": "a"}\n{broken secret text\n')
    it = read_records(path, text_field="text", label_field="label", user_field="user_id")
    assert next(it).label == "a"
    with pytest.raises(CorpusFileError) as exc:
        next(it)
    assert "c.jsonl:2" in str(exc.value) and "secret" not in str(exc.value)


# Nothing listens on port 1: a command that got as far as connecting fails with UNAVAILABLE.
_NOWHERE = ["--target", "127.0.0.1:1", "--timeout", "2"]


def test_upload_checks_the_whole_file_before_connecting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "c.jsonl"
    lines = ['{"text": "fine"}'] * 5 + ["{broken secret text", '{"txt": "secret too"}']
    path.write_text("\n".join(lines) + "\n")
    assert main([*_NOWHERE, "upload", str(path)]) == EXIT_DATAERR
    err = capsys.readouterr().err
    assert "c.jsonl:6: not valid JSON" in err
    assert "c.jsonl:7: no string field 'text'" in err
    assert "secret" not in err and "UNAVAILABLE" not in err


def test_upload_of_a_missing_file_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*_NOWHERE, "upload", str(tmp_path / "nope.jsonl")]) == EXIT_NOINPUT
    err = capsys.readouterr().err
    assert "nope.jsonl" in err and "No such file" in err
    assert "Exception iterating requests" not in err


def _refused_upload(path: Path, body: str, capsys: pytest.CaptureFixture[str]) -> str:
    """Write ``body`` to ``path``, upload it: a data error (65) before connecting; its stderr."""
    path.write_text(body)
    assert main([*_NOWHERE, "upload", str(path)]) == EXIT_DATAERR
    return capsys.readouterr().err


def test_upload_refuses_an_unknown_format_and_an_empty_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert "cannot tell the format" in _refused_upload(tmp_path / "corpus.xlsx", "x\n", capsys)
    assert "no records" in _refused_upload(tmp_path / "empty.txt", "\n\n", capsys)


def test_integer_user_ids_and_labels_keep_zero(tmp_path: Path) -> None:
    # User 0 is a user: dropping it as falsy made its records anonymous, each its own privacy
    # unit, on a dataset that claims user-level privacy.
    path = tmp_path / "c.jsonl"
    rows = [{"text": f"t{i}", "label": i % 2, "user_id": i % 3} for i in range(6)]
    rows.append({"text": "no label", "label": None, "user_id": 0})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    recs = list(read_records(path, text_field="text", label_field="label", user_field="user_id"))
    assert [(r.label, r.user_id) for r in recs] == [
        ("0", "0"),
        ("1", "1"),
        ("0", "2"),
        ("1", "0"),
        ("0", "1"),
        ("1", "2"),
        ("", "0"),
    ]


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (
            '{"text": "t", "label": true}',
            "field 'label' must be a string or an integer, not a boolean",
        ),
        (
            '{"text": "t", "label": 1.5}',
            "field 'label' must be a string or an integer, not a number",
        ),
        (
            '{"text": "t", "user_id": ["a"]}',
            "field 'user_id' must be a string or an integer, not an array",
        ),
        (
            '{"text": "t", "label": {"x": 1}}',
            "field 'label' must be a string or an integer, not an object",
        ),
        ('{"text": "t \\ud800"}', "field 'text' holds an unpaired surrogate escape"),
        ('{"text": "t", "label": "\\udfff"}', "field 'label' holds an unpaired surrogate escape"),
        ("[" * 100_000, "not valid JSON"),  # deeper than the parser's recursion limit
    ],
    ids=["bool", "float", "array", "object", "surrogate-text", "surrogate-label", "nested"],
)
def test_values_without_one_spelling_are_refused_by_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], line: str, reason: str
) -> None:
    err = _refused_upload(
        tmp_path / "c.jsonl", '{"text": "fine", "label": "a"}\n' + line + "\n", capsys
    )
    assert f"c.jsonl:2: {reason}" in err
    assert "Traceback" not in err


def test_a_byte_order_mark_is_not_a_json_error(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"text": "first"}\n{"text": "second"}\n')
    recs = list(read_records(path, text_field="text", label_field="label", user_field="user_id"))
    assert [r.text for r in recs] == ["first", "second"]


def test_a_damaged_parquet_file_is_a_data_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "c.parquet"
    path.write_bytes(b"PAR1 this is not a parquet file PAR1")
    assert main([*_NOWHERE, "upload", str(path)]) == EXIT_DATAERR
    err = capsys.readouterr().err
    assert "not a readable Parquet file" in err and "Traceback" not in err


def test_upload_reads_csv_with_its_header_and_gzip(tmp_path: Path) -> None:
    import gzip

    body = 'text,label,user_id\n"Hello, world",greet,u1\nsecond,,u2\n'
    plain = tmp_path / "c.csv"
    plain.write_text(body)
    zipped = tmp_path / "c.csv.gz"
    zipped.write_bytes(gzip.compress(body.encode()))
    for path in (plain, zipped):
        recs = list(
            read_records(path, text_field="text", label_field="label", user_field="user_id")
        )
        assert [(r.text, r.label, r.user_id) for r in recs] == [
            ("Hello, world", "greet", "u1"),
            ("second", "", "u2"),
        ]
    text = tmp_path / "notes"
    text.write_text("one\ntwo\n")
    recs = list(read_records(text, text_field="text", label_field="l", user_field="u", fmt="text"))
    assert [r.text for r in recs] == ["one", "two"]


BLOCKER = textwrap.dedent(
    """
    import sys
    BLOCKED = ("torch", "opacus", "presidio_analyzer", "presidio_anonymizer", "spacy",
               "sqlalchemy", "tokenizers", "privsynth.server", "privsynth.models")

    class Block:
        def find_spec(self, name, path=None, target=None):
            if any(name == b or name.startswith(b + ".") for b in BLOCKED):
                raise ImportError(f"blocked {name}", name=name)
            return None

    sys.meta_path.insert(0, Block())
    """
)


def test_client_imports_without_server_packages() -> None:
    code = BLOCKER + textwrap.dedent(
        """
        import privsynth.client.client, privsynth.client.cli, privsynth.client.errors
        from privsynth.client.cli import main
        try:
            main(["upload", "--help"])
        except SystemExit as e:
            assert e.code == 0
        try:
            main(["serve"])
        except SystemExit as e:
            assert "privsynth[server]" in str(e), e
        print("CLIENT-ONLY-OK")
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert "CLIENT-ONLY-OK" in proc.stdout


@pytest.mark.parametrize(
    "argv",
    [
        ["sample", "models/0123456789abcdef", "-n", "99999999999"],
        ["sample", "models/0123456789abcdef", "--max-tokens", "99999999999"],
        ["sample", "models/0123456789abcdef", "--seed", "99999999999999999999999"],
        ["train", "datasets/0123456789abcdef", "--epsilon", "1", "--epochs", "99999999999"],
        ["audit", "privacy", "--epsilon", "1", "--canaries", "99999999999"],
        ["evaluate", "models/0123456789abcdef", "--samples", "99999999999"],
        ["datasets", "list", "--page-size", "99999999999"],
        ["--timeout", "0", "datasets", "list"],
        ["--timeout", "nan", "datasets", "list"],
        ["--timeout", "inf", "datasets", "list"],
    ],
    ids=[
        "count",
        "max-tokens",
        "seed",
        "epochs",
        "canaries",
        "samples",
        "page",
        "t0",
        "tnan",
        "tinf",
    ],
)
def test_numbers_the_wire_cannot_carry_are_usage_errors(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main([*_NOWHERE[:2], *argv])
    assert exc.value.code == ExitCode.USAGE
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert any(why in err for why in ("out of range", "seconds > 0", "must not be empty"))


@pytest.mark.parametrize("token", ["a\nb", "sécret", "two words"])
def test_a_token_no_header_can_carry_is_a_usage_error_that_does_not_echo_it(
    token: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*_NOWHERE, "--token", token, "datasets", "list"]) == ExitCode.USAGE
    err = capsys.readouterr().err
    assert "request header" in err and token not in err and "E1" not in err


def test_files_the_cli_cannot_read_or_write_are_named_with_exit_66(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "missing"
    assert main(["audit", "verify", "--file", str(missing)]) == ExitCode.NOINPUT
    assert main(["audit", "verify", "--file", str(tmp_path)]) == ExitCode.NOINPUT
    assert main([*_NOWHERE, "--auth-token-file", str(missing), "jobs", "list"]) == 66
    assert main([*_NOWHERE, "--tls-ca", str(missing), "jobs", "list"]) == ExitCode.NOINPUT
    err = capsys.readouterr().err
    assert "Traceback" not in err and str(missing) in err
    latin = tmp_path / "export.jsonl"
    latin.write_bytes(b'{"seq": 1}\n\xff\xfe\n')
    assert main(["audit", "verify", "--file", str(latin)]) == ExitCode.DATAERR
    assert "not UTF-8" in capsys.readouterr().err


def test_an_empty_audit_export_is_not_reported_intact(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "export.jsonl"
    empty.write_text("\n")
    assert main(["audit", "verify", "--file", str(empty)]) == ExitCode.NEGATIVE
    err = capsys.readouterr().err
    assert "holds no audit entries" in err and "intact" not in err


def test_tables_print_control_characters_as_question_marks() -> None:
    from privsynth.client.cli_support import table

    out = table(["name", "labels"], [["a\x1b[2Jb", "x\ny"]])
    assert "\x1b" not in out and out.splitlines()[1].split() == ["a?[2Jb", "x?y"]


def test_a_csv_quote_left_open_or_a_column_named_twice_is_a_data_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Non-strict csv swallowed the rest of the file into the open quote's cell: two rows
    # became one record holding the next row's text.
    err = _refused_upload(tmp_path / "open.csv", 'text,label\n"a,x\n"b",y\n', capsys)
    assert "not valid CSV" in err
    err = _refused_upload(tmp_path / "twice.csv", "text,label,text\na,x,b\n", capsys)
    assert "names column 'text' more than once" in err


def test_parquet_integer_columns_with_gaps_keep_their_integers(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    # pandas writes an integer column with a gap as float64: 3.0 and NaN.
    table = pa.table(
        {"text": ["a", "b", "c"], "label": [3.0, float("nan"), 0.0], "user_id": [1.0, 2.0, None]}
    )
    path = tmp_path / "c.parquet"
    pq.write_table(table, path)
    recs = list(read_records(path, text_field="text", label_field="label", user_field="user_id"))
    assert [(r.label, r.user_id) for r in recs] == [("3", "1"), ("", "2"), ("0", "")]


def test_audit_report_without_a_dataset_is_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main([*_NOWHERE, "audit", "report", "--dataset", ""]) == ExitCode.USAGE
    assert "--dataset" in capsys.readouterr().err


def test_a_closed_pipe_ends_the_command_quietly(monkeypatch: pytest.MonkeyPatch) -> None:
    # `privsynth sample ... | head`: the reader left; that is no error of a file of the caller's.
    from privsynth.client import cli

    def closed(args: argparse.Namespace) -> int:
        raise BrokenPipeError(32, "Broken pipe")

    class Parser:
        def parse_args(self, argv: object) -> argparse.Namespace:
            return argparse.Namespace(func=closed)

    monkeypatch.setattr(cli, "build_parser", Parser)
    monkeypatch.setattr(sys, "stdout", sys.stdout)  # main points stdout at /dev/null
    assert main([]) == ExitCode.OK
