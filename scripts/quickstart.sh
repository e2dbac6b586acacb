#!/usr/bin/env bash
# The main job on embedded defaults: set up, then `sing-ray quickstart`.
# Extra arguments go to `sing-ray quickstart` (see `--help`).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
exec .venv/bin/sing-ray quickstart "$@"
