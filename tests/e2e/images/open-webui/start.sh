#!/usr/bin/env bash
# Entry point of the Open WebUI stand-in, equivalent to upstream's backend/start.sh for
# what the stack uses: HOST/PORT defaults, and a secret key persisted in the working
# directory when WEBUI_SECRET_KEY is not given. Unlike upstream (which pipes the server
# through tee), the server replaces this shell, so it is PID 1 and receives signals
# sent to the container directly.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

PORT="${PORT:-8080}"
HOST="${HOST:-0.0.0.0}"
KEY_FILE=.webui_secret_key
if [ -z "${WEBUI_SECRET_KEY:-}" ] && [ -z "${WEBUI_JWT_SECRET_KEY:-}" ]; then
  echo "Loading WEBUI_SECRET_KEY from file, not provided as an environment variable."
  if [ ! -e "$KEY_FILE" ]; then
    echo "Generating WEBUI_SECRET_KEY"
    head -c 12 /dev/random | base64 > "$KEY_FILE"
  fi
  WEBUI_SECRET_KEY="$(cat "$KEY_FILE")"
fi
export WEBUI_SECRET_KEY
exec open-webui serve --host "$HOST" --port "$PORT"
