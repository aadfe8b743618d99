#!/usr/bin/env bash
# Lock the requirements after a deliberate change of requirements.in / requirements-dev.in:
#   scripts/lock.sh              keep every other pin, resolve only what the .in files changed
#   scripts/lock.sh --upgrade    move everything to the newest releases the .in files allow
# Writes requirements.txt (runtime: the image) and requirements-dev.txt (runtime + tests and tools), both
# with sha256 hashes; scripts/bootstrap.sh installs them with --require-hashes. Then run `make audit`.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/pip-compile ] || scripts/bootstrap.sh
# --no-strip-extras: a pin keeps the extras its dependents ask for (cachecontrol[filecache], for pip-audit); with the
# extras stripped, --require-hashes refused the install on the day cachecontrol 0.15.0 appeared on PyPI (pip took the
# extra's requirement, ">=0.13.0", as unpinned)
compile() {  # in out [pip-compile options]
  local in=$1 out=$2 log; shift 2
  log=$(mktemp)
  if ! .venv/bin/pip-compile --quiet --generate-hashes --allow-unsafe --no-strip-extras --no-emit-find-links \
      --no-emit-index-url "$@" --output-file "$out" "$in" >"$log" 2>&1; then
    grep -v "^WARNING: Location" "$log" >&2; rm -f "$log"
    echo "pip-compile failed for $in (its output above)" >&2; exit 1
  fi
  rm -f "$log"
}
compile requirements.in requirements.txt "$@"
compile requirements-dev.in requirements-dev.txt "$@"
echo "locked requirements.txt and requirements-dev.txt; scripts/bootstrap.sh installs them"
