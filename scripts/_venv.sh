# Shared by scripts/demo and scripts/test: make ./.venv with Python >= 3.11 and install
# the package with the extras given as $1 (e.g. "dev"). Re-running skips the install when
# pyproject.toml has not changed since the last one.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
extras="${1:-}"

pick_python() {
  for candidate in "${PYTHON:-}" python3.11 python3.12 python3.13 python3; do
    [ -n "$candidate" ] || continue
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      echo "$candidate"; return 0
    fi
  done
  echo "error: dataplane needs Python 3.11 or newer on PATH (or set PYTHON=...)" >&2
  return 1
}

if [ ! -x .venv/bin/python ]; then
  "$(pick_python)" -m venv .venv
fi
stamp=".venv/.installed-${extras:-core}-$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "installing dataplane${extras:+[$extras]} into .venv (first run takes a minute)..."
  target="."; [ -n "$extras" ] && target=".[${extras}]"
  log=$(mktemp)
  if ! { .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip &&
         .venv/bin/python -m pip install --quiet --disable-pip-version-check -e "$target"; } \
       >"$log" 2>&1; then
    grep -v '^WARNING: Location' "$log" >&2; rm -f "$log"
    echo "error: installing dataplane${extras:+[$extras]} failed (see above)" >&2
    exit 1
  fi
  rm -f "$log"
  .venv/bin/python -c 'import dataplane, dataplane_adapters' # fail loudly if the install did
  touch "$stamp"
fi
