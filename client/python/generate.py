"""Generates ``warden_client._pb`` from the repository's ``proto/``.

Runs grpcio-tools' bundled protoc (no system protoc), then makes the
generated imports relative so the stubs live inside the ``warden_client``
package rather than as a top-level ``warden`` package. The output directory
is git-ignored and rebuilt on every run, so it always matches ``proto/``.

    .venv/bin/python generate.py
"""

from __future__ import annotations

import re
import shutil
import sys
import tempfile
from pathlib import Path

import grpc_tools
from grpc_tools import protoc

HERE = Path(__file__).resolve().parent
PROTO_DIR = HERE.parent.parent / "proto"
OUT_DIR = HERE / "src" / "warden_client" / "_pb"
PROTOS = ["warden/v1/decision.proto", "warden/v1/approval.proto"]

# `from warden.v1 import decision_pb2 as ...` -> `from . import decision_pb2 as ...`
ABSOLUTE_IMPORT = re.compile(r"^from warden\.v1 import ", re.MULTILINE)


def main() -> int:
    well_known = Path(grpc_tools.__file__).parent / "_proto"
    with tempfile.TemporaryDirectory() as tmp:
        status = protoc.main(
            [
                "grpc_tools.protoc",
                f"--proto_path={PROTO_DIR}",
                f"--proto_path={well_known}",
                f"--python_out={tmp}",
                f"--pyi_out={tmp}",
                f"--grpc_python_out={tmp}",
                *PROTOS,
            ]
        )
        if status != 0:
            print(f"protoc failed with status {status}", file=sys.stderr)
            return 1
        staging = OUT_DIR.with_name("_pb.new")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        (staging / "__init__.py").write_text(
            '"""Generated from proto/ by generate.py; do not edit."""\n'
        )
        for source in sorted((Path(tmp) / "warden" / "v1").iterdir()):
            text = ABSOLUTE_IMPORT.sub("from . import ", source.read_text())
            if re.search(r"^(from|import) warden\b", text, re.MULTILINE):
                print(f"{source.name}: an import was left absolute", file=sys.stderr)
                return 1
            (staging / source.name).write_text(text)
        shutil.rmtree(OUT_DIR, ignore_errors=True)
        staging.rename(OUT_DIR)
    return 0


if __name__ == "__main__":
    sys.exit(main())
