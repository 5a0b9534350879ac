#!/usr/bin/env bash
# The two commands of the README, and the benchmarks:
#   ./dev.sh run [flywheel run options]   set up .venv, then run the default flywheel
#   ./dev.sh test                         set up .venv, then ruff, mypy and pytest
#   ./dev.sh bench [benchmark options]    set up .venv, then the benchmarks (table + JSON)
set -euo pipefail
cd "$(dirname "$0")"

python_311() {
  for candidate in "${PYTHON:-}" python3.11 python3; do
    if [ -n "$candidate" ] && command -v "$candidate" >/dev/null &&
      "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
      echo "$candidate"; return
    fi
  done
  echo "error: Python 3.11 is required (set PYTHON=/path/to/python3.11)" >&2; exit 2
}

setup() {
  [ -x .venv/bin/python ] || "$(python_311)" -m venv .venv
  # Reinstall only when the pinned set or the project metadata changed.
  stamp=".venv/.installed-$(cat requirements.lock pyproject.toml | sha256sum | cut -c1-16)"
  if [ ! -f "$stamp" ]; then
    echo "setting up .venv from requirements.lock (a few minutes the first time)..."
    .venv/bin/python -m pip install -q --disable-pip-version-check -r requirements.lock
    .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps -e .
    rm -f .venv/.installed-*; touch "$stamp"
  fi
  export PATH="$PWD/.venv/bin:$PATH"  # dvc.yaml's commands call `flywheel`
  export DVC_NO_ANALYTICS=1 GX_ANALYTICS_ENABLED=false PREFECT_SERVER_ANALYTICS_ENABLED=false
}

system_packages() {
  # Debian packages the tests need: headless Chromium opens the HTML report (tests/test_report.py);
  # PostgreSQL serves the Prefect server of infra/compose.yaml (tests/test_infra.py).
  missing=""
  command -v chromium >/dev/null || missing="$missing chromium"
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null ||
    missing="$missing postgresql"
  [ -z "$missing" ] && return
  echo "installing Debian's$missing for the tests (a minute or two the first time)..."
  sudo_=""; [ "$(id -u)" = 0 ] || sudo_="sudo"
  $sudo_ apt-get update -qq && $sudo_ apt-get install -y -qq --no-install-recommends $missing >/dev/null
}

case "${1:-}" in
  run)
    shift; setup
    [ -d .git ] || git init -q
    [ -d .dvc ] || dvc init -q
    flywheel run "$@"
    ;;
  test)
    shift; setup; system_packages
    ruff check .
    ruff format --check .
    mypy
    pytest -q "$@"
    ;;
  bench)
    shift; setup
    python benchmarks/run.py "$@"
    ;;
  *)
    sed -n '2,5p' "$0"; exit 2
    ;;
esac
