#!/usr/bin/env bash
# Create .venv (if missing) and install centrifuge into it.
# torch: an already importable torch is kept; with an NVIDIA GPU the default (CUDA) build is
# installed; without one, the CPU build (a few hundred MB instead of several GB).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
VPY=.venv/bin/python
$VPY -m pip install -q --upgrade pip >/dev/null 2>&1 || true
if ! $VPY -c "import torch" >/dev/null 2>&1; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    $VPY -m pip install -q "torch>=2.4"
  else
    $VPY -m pip install -q --timeout 20 --retries 1 \
      --index-url https://download.pytorch.org/whl/cpu "torch==2.13.0" \
      || $VPY -m pip install -q "torch==2.13.0"
  fi
fi
$VPY -m pip install -q -e ".[dev,web]"  # web: `centrifuge serve` (Starlette + uvicorn, small)
