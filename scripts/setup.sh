#!/usr/bin/env bash
# Creates .venv with styleshift and its development tools. Idempotent.
#
# On a machine without an NVIDIA GPU the CPU build of PyTorch is installed first: a plain
# `torch` requirement would pull several GB of CUDA libraries that cannot be used there.
# Where your pip is set up with a CPU wheel index or a local CPU wheel, `torch==X+cpu`
# resolves to it; otherwise the default build is installed.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
TORCH_VERSION=${TORCH_VERSION:-2.13.0}

if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
pip() { .venv/bin/python -m pip --disable-pip-version-check -q "$@"; }

if ! .venv/bin/python -c "import torch" 2>/dev/null; then
    if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
        pip install "torch==${TORCH_VERSION}"
    else
        pip install "torch==${TORCH_VERSION}+cpu" 2>/dev/null || pip install "torch>=2.1"
    fi
fi
pip install -e ".[dev]"
