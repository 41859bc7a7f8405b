"""`privsynth upload FILE.mbox` end to end: one record per message, stored as its scrubbed
Subject and body, with the message's own header names replaced in them (issue 13).

The messages are hand-written; the people are invented and the domains reserved.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from privsynth.client.cli import main

MBOX = b"""From hq@mail.example.net Thu Aug 22 12:00:00 2002
From: =?iso-8859-1?Q?Horatio_Quimb=FF?= <hq@mail.example.net>
To: Renee Zylberstein <rz@example.org>
Received: from quimby-pc.example.net ([198.51.100.23]) by relay.example.org (Postfix)
Message-ID: <20020822.hq@mail.example.net>
Subject: relay for Renee
Content-Type: text/plain; charset=us-ascii
Content-Transfer-Encoding: quoted-printable

Renee> does it work?
It does. Postfix speaks SMTP, ask Quimb=FF.

From rz@example.org Thu Aug 22 12:00:02 2002
From: Renee Zylberstein <rz@example.org>
To: "Quimby, Horatio" <hq@mail.example.net>
Subject: =?utf-8?q?Re:_relay?=
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="b"

--b
Content-Type: text/plain

Thanks, Horatio.
--b
Content-Type: application/pdf
Content-Transfer-Encoding: base64

JVBERi0xLjQK
--b--
"""


def test_upload_of_an_mbox_stores_scrubbed_subject_and_body(
    server: object, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "list.mbox"
    src.write_bytes(MBOX)
    target = f"127.0.0.1:{server.port}"  # type: ignore[attr-defined]
    assert main(["--target", target, "--json", "upload", str(src), "--epsilon-cap", "5"]) == 0
    ds = json.loads(capsys.readouterr().out)
    assert int(ds["record_count"]) == 2
    row_id = ds["name"].split("/")[-1]
    runtime = server.runtime  # type: ignore[attr-defined]
    with runtime.db.session() as s:
        from privsynth.server.db import DatasetRow

        row = s.get(DatasetRow, row_id)
        shard = runtime.store.get(row.shard_path, sha256=row.content_sha256).decode()
    texts = [json.loads(line)["text"] for line in shard.splitlines()]
    assert texts[0].startswith("relay for <PERSON>\n\n<PERSON>> does it work?")
    assert "Postfix speaks SMTP" in texts[0]
    assert texts[1] == "Re: relay\n\nThanks, <PERSON>."
    stored = "\n".join(texts)
    for secret in ("Horatio", "Quimb", "Renee", "Zylberstein", "example", "198.51", "From:"):
        assert secret not in stored
