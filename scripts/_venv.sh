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

# The dashboard's browser tests drive Debian's chromium (never a browser Playwright downloads):
# install it when it is missing, as root (or through sudo without a password), and stop the run
# with the reason when that fails. $DURABLE_TEST_CHROMIUM names another executable.
ensure_chromium() {
  local chromium=${DURABLE_TEST_CHROMIUM:-/usr/bin/chromium} as_root=() log
  if [ -x "$chromium" ]; then
    return
  fi
  if [ -n "${DURABLE_TEST_CHROMIUM:-}" ]; then
    echo "DURABLE_TEST_CHROMIUM=$chromium is not an executable: the dashboard's browser tests need Chromium" >&2
    exit 1
  fi
  if [ "$(id -u)" -ne 0 ]; then
    if sudo -n true 2>/dev/null; then
      as_root=(sudo -n)
    else
      echo "Chromium is missing ($chromium) and this user cannot install it: run" \
           "'sudo apt-get install -y chromium' (the dashboard's browser tests need it; they are never skipped)" >&2
      exit 1
    fi
  fi
  echo "== installing Chromium for the dashboard's browser tests (apt-get install chromium)"
  log=$(mktemp)
  if ! { "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >"$log" 2>&1 \
         || { "${as_root[@]}" apt-get update -qq >>"$log" 2>&1 \
              && "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >>"$log" 2>&1; }; } \
     || [ ! -x "$chromium" ]; then
    tail -n 20 "$log" >&2
    rm -f "$log"
    echo "could not install Chromium with apt-get (output above): the dashboard's browser tests need" \
         "$chromium; install Debian's chromium package, or set DURABLE_TEST_CHROMIUM" >&2
    exit 1
  fi
  rm -f "$log"
}
