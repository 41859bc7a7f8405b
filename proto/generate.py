"""Regenerate the Python gRPC code in ``client/pb`` from ``proto/privsynth/v1/*.proto``.

Run ``python proto/generate.py`` (or ``make proto``). protoc writes absolute imports that follow
the proto package (``from privsynth.v1 import common_pb2``); they are rewritten to the generated
subpackage ``privsynth.client.pb`` so that the client needs nothing but grpcio and protobuf.
CI regenerates and fails on any difference.
"""

from __future__ import annotations

import re
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"
OUT = ROOT / "client" / "pb"
_IMPORT = re.compile(r"^from privsynth\.v1 import ", re.MULTILINE)


def main() -> int:
    """Run protoc with the python, grpc and mypy plugins and install the rewritten output."""
    import grpc_tools
    from grpc_tools import protoc

    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in PROTO_ROOT.glob("privsynth/v1/*.proto"))
    bindir = Path(sys.executable).parent
    well_known = str(Path(grpc_tools.__file__).parent / "_proto")
    with tempfile.TemporaryDirectory() as tmp:
        args = [
            "protoc",
            f"-I{PROTO_ROOT}",
            f"-I{well_known}",
            f"--plugin=protoc-gen-mypy={bindir / 'protoc-gen-mypy'}",
            f"--plugin=protoc-gen-mypy_grpc={bindir / 'protoc-gen-mypy_grpc'}",
            f"--python_out={tmp}",
            f"--grpc_python_out={tmp}",
            f"--mypy_out={tmp}",
            f"--mypy_grpc_out={tmp}",
            *protos,
        ]
        if protoc.main(args) != 0:
            print("protoc failed", file=sys.stderr)
            return 1
        for old in OUT.glob("*_pb2*.py*"):
            old.unlink()
        for src in sorted((Path(tmp) / "privsynth" / "v1").iterdir()):
            if src.suffix not in {".py", ".pyi"}:
                continue
            text = _IMPORT.sub("from privsynth.client.pb import ", src.read_text())
            (OUT / src.name).write_text(text)
        init = OUT / "__init__.py"
        init.write_text(
            '"""Generated gRPC code for privsynth.v1 (do not edit; see proto/generate.py)."""\n'
        )
        shutil.rmtree(Path(tmp) / "privsynth", ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
