"""Every CLI command has --help; the client installs and runs without server packages."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from privsynth.client.cli import build_parser, main, read_records

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
    with pytest.raises(SystemExit) as exc:
        next(it)
    assert "c.jsonl:2" in str(exc.value) and "secret" not in str(exc.value)


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
