# Sourced by the scripts: create .venv and install the project (with test extras) when
# pyproject.toml changed since the last install. `ensure_oldest_venv` does the same for
# .venv-oldest: Python 3.9 and every dependency at the bottom of its supported range.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.durable-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
  .venv/bin/python -m pip install -q -e ".[test]"
  touch "$stamp"
fi

# The oldest supported Python: $PYTHON_OLDEST, else python3.9 on the PATH or in pyenv.
oldest_python() {
  local candidate
  for candidate in "${PYTHON_OLDEST:-}" python3.9 "${PYENV_ROOT:-${HOME:-}/.pyenv}"/versions/3.9*/bin/python3.9; do
    if [ -n "$candidate" ] && "$candidate" -c 'import sys; assert sys.version_info[:2] == (3, 9)' 2>/dev/null; then
      echo "$candidate"
      return
    fi
  done
  echo "no Python 3.9 found for the oldest supported set: install it or set PYTHON_OLDEST" >&2
  return 1
}

ensure_oldest_venv() {
  local constraints=scripts/oldest-constraints.txt stamp=.venv-oldest/.durable-installed
  if [ ! -x .venv-oldest/bin/python ]; then
    "$(oldest_python)" -m venv .venv-oldest
  fi
  if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ "$constraints" -nt "$stamp" ]; then
    .venv-oldest/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
    .venv-oldest/bin/python -m pip install -q -c "$constraints" -e ".[test,psycopg2-binary]"
    touch "$stamp"
  fi
}
