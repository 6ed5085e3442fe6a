#!/usr/bin/env bash
# Generate Python code for protos/*.proto into serving/pb (or $1).
# Uses grpcio-tools' bundled protoc, pinned in pyproject.toml to match the protobuf runtime.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:-$here/serving/pb}"
python="${PYTHON:-$here/.venv/bin/python}"
mkdir -p "$out"
"$python" -m grpc_tools.protoc -I "$here/protos" --python_out="$out" --pyi_out="$out" "$here"/protos/*.proto
# protoc writes top-level imports ("import model_descriptor_pb2"); make them package-relative.
sed -i -E 's/^import ([a-z_]+_pb2) as /from . import \1 as /' "$out"/*_pb2.py
[ -f "$out/__init__.py" ] || printf '"""Generated protobuf code: run `make proto`, never edit."""\n' > "$out/__init__.py"
