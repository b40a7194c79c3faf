#!/usr/bin/env bash
# Makes (once) the Python environment the tests use — .redress/venv with
# tests/python/requirements.txt — and prints its python. Safe to call from parallel tests:
# a lock serialises the install, and an up-to-date environment is not touched.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
venv="$root/.redress/venv"
req="$root/tests/python/requirements.txt"
mkdir -p "$root/.redress"
command -v python3 >/dev/null || { echo "the tests need python3 (Debian: apt install python3 python3-venv)" >&2; exit 1; }
exec 9>"$root/.redress/venv.lock"
flock 9
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv" >&2 || { echo "python3 -m venv failed (Debian: apt install python3-venv)" >&2; exit 1; }
fi
stamp="$venv/.requirements.sha256"
want=$(sha256sum "$req" | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  "$venv/bin/pip" install -q -r "$req" >&2
  echo "$want" >"$stamp"
fi
echo "$venv/bin/python"
