#!/usr/bin/env bash
# Create .venv with Python 3.11 and install the locked dependencies (again only when the lock changed):
# requirements-dev.txt, the runtime set plus tests and tools, every file checked against its sha256
# (--require-hashes). A failed install stops here with pip's own output and a non-zero exit.
set -euo pipefail
cd "$(dirname "$0")/.."
lock=requirements-dev.txt

find_python() {
  for candidate in "${PYTHON:-}" python3.11 python3; do
    [ -n "$candidate" ] || continue
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)' 2>/dev/null; then
      command -v "$candidate"; return 0
    fi
  done
  return 1
}

if [ ! -x .venv/bin/python ]; then
  python=$(find_python) || { echo "CareLoop needs Python 3.11 (set PYTHON=/path/to/python3.11)." >&2; exit 1; }
  echo "creating .venv with $python"
  "$python" -m venv .venv
fi

stamp=.venv/.requirements.sha256
wanted=$(cat requirements.txt "$lock" | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$wanted" ]; then
  echo "installing the locked dependencies ($lock, hashes checked) into .venv"
  log=$(mktemp)
  # pip's warnings about this machine's unreachable extra index folders are noise; everything else is shown
  if ! .venv/bin/python -m pip install --disable-pip-version-check --require-hashes -r "$lock" >"$log" 2>&1; then
    grep -v "^WARNING: Location" "$log" >&2; rm -f "$log"
    echo "dependency installation failed: pip's output is above" >&2
    exit 1
  fi
  rm -f "$log"
  .venv/bin/python -W ignore -c "import nameko.cli.main, sqlalchemy, marshmallow, psycopg2, alembic, pytest" \
    || { echo "dependency installation is incomplete (the import above failed)" >&2; exit 1; }
  echo "$wanted" > "$stamp"
fi
