#!/usr/bin/env bash
# One command: python -m bench with the repo's venv; creates LiteLLM's own venv if missing.
# Usage: bench/run.sh [--quick] [--targets upstream,router,litellm] [--concurrency 1,8,32,128]
#                     [--stream|--no-stream] ...   (see: bench/run.sh --help)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
lvenv="$here/.litellm-venv"
if [[ ! -x "$lvenv/bin/litellm" ]]; then
  echo "creating $lvenv (LiteLLM proxy in its own virtualenv)" >&2
  python3 -m venv "$lvenv"
  "$lvenv/bin/pip" install -q --upgrade pip
  "$lvenv/bin/pip" install -q -r "$here/litellm-requirements.txt"
fi
cd "$repo"
exec "$repo/.venv/bin/python" -m bench "$@"
