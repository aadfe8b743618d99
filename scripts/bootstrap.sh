#!/usr/bin/env bash
# Create .venv with Python 3.11 and install the pinned dependencies (again only when they changed).
set -euo pipefail
cd "$(dirname "$0")/.."

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
wanted=$(sha256sum requirements.txt | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$wanted" ]; then
  echo "installing pinned dependencies into .venv"
  .venv/bin/python -m pip install --quiet --disable-pip-version-check 'setuptools<81' 2>&1 | grep -v "^WARNING: Location" || true
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt 2>&1 | grep -v "^WARNING: Location" || true
  .venv/bin/python -c "import nameko, sqlalchemy, marshmallow, psycopg2, alembic" \
    || { echo "dependency installation failed (see pip output above)" >&2; exit 1; }
  echo "$wanted" > "$stamp"
fi
