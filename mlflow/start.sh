#!/usr/bin/env bash
# Start the MLflow tracking server for llmflow.
#
#   bash mlflow/start.sh                 # sqlite + local artifacts in ./ (the flows' default store)
#   MLFLOW_PORT=5001 bash mlflow/start.sh
#
# Teams: point the backend at Postgres and artifacts at an object store, e.g.
#   MLFLOW_BACKEND_STORE_URI=postgresql://mlflow:PASS@db:5432/mlflow \
#   MLFLOW_ARTIFACTS_DESTINATION=s3://bucket/mlflow bash mlflow/start.sh
# and set MLFLOW_TRACKING_URI=http://HOST:PORT for every flow (see cluster/runtime_env.yaml).
# The server starts several worker processes: stop the whole process group (kill -- -PGID).
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
BIN=${MLFLOW_BIN:-$HERE/.venv/bin/mlflow}
[ -x "$BIN" ] || BIN=mlflow
exec "$BIN" server \
  --backend-store-uri "${MLFLOW_BACKEND_STORE_URI:-sqlite:///$PWD/mlflow.db}" \
  --artifacts-destination "${MLFLOW_ARTIFACTS_DESTINATION:-$PWD/mlartifacts}" \
  --host "${MLFLOW_HOST:-127.0.0.1}" \
  --port "${MLFLOW_PORT:-5000}" \
  --workers "${MLFLOW_WORKERS:-1}"
