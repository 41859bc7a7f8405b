"""Every CLI command has --help; the client installs and runs without server packages."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from privsynth.client.cli import (
    EXIT_DATAERR,
    EXIT_NOINPUT,
    CorpusFileError,
    build_parser,
    main,
    read_records,
)

COMMANDS = [
    "upload",
    "train",
    "watch",
    "sample",
    "budget",
    "set-cap",
    "audit",
    "serve",
    "scrub",
    "pretrain",
    "demo",
]


@pytest.mark.parametrize(
    "command",
    [None, *COMMANDS, "audit export", "audit verify", "audit report", "audit privacy"],
)
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


def test_upload_refuses_an_unknown_format_and_an_empty_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    odd = tmp_path / "corpus.xlsx"
    odd.write_text("x\n")
    assert main([*_NOWHERE, "upload", str(odd)]) == EXIT_DATAERR
    assert "cannot tell the format" in capsys.readouterr().err
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    assert main([*_NOWHERE, "upload", str(empty)]) == EXIT_DATAERR
    assert "no records" in capsys.readouterr().err


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
