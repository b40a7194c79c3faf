#!/usr/bin/env bash
# Makes (once) a Python environment with DuckDB under the test's target directory ($1) and
# prints its python. DuckDB is this test's alone (a 25 MB wheel), so it is not in the shared
# tests/python/requirements.txt. A lock serialises parallel callers.
set -euo pipefail
dir="$1/duckdb-venv"
mkdir -p "$1"
command -v python3 >/dev/null || { echo "the test needs python3 (Debian: apt install python3 python3-venv)" >&2; exit 1; }
exec 9>"$1/duckdb-venv.lock"
flock 9
if [ ! -x "$dir/bin/python" ]; then
  python3 -m venv "$dir" >&2 || { echo "python3 -m venv failed (Debian: apt install python3-venv)" >&2; exit 1; }
fi
if ! "$dir/bin/python" -c "import duckdb" 2>/dev/null; then
  "$dir/bin/pip" install -q 'duckdb>=1.1,<3' >&2 || { echo "pip install duckdb failed (needs PyPI or a local mirror)" >&2; exit 1; }
fi
echo "$dir/bin/python"
