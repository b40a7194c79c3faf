#!/usr/bin/env bash
# The tools the tests drive besides NATS and Postgres: Chromium and ChromeDriver (analytics'
# reports are opened in a real browser and printed to PDF), CJK fonts (the reports are
# Chinese), pdftotext (the printed PDF is read back), and python3 with venv (the Python
# clients, aiosmtpd, the Standard Webhooks reference library). Installed where the system allows it (Debian/Ubuntu as root), else the
# exact command is printed and the tests stop here rather than fail one by one.
set -euo pipefail

say() { printf 'test tools: %s\n' "$*" >&2; }

missing=()
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
fc-list :lang=zh 2>/dev/null | grep -q . || missing+=(fonts-noto-cjk)
command -v pdftotext >/dev/null || missing+=(poppler-utils)
python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
  say "installing ${missing[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  exit 0
fi
say "missing: ${missing[*]}. Install them with:"
if command -v apt-get >/dev/null; then say "  sudo apt-get install -y ${missing[*]}"
elif command -v dnf >/dev/null; then say "  sudo dnf install -y chromium chromedriver google-noto-sans-cjk-fonts poppler-utils python3"
else say "  Chromium with its ChromeDriver, a CJK font (Noto Sans CJK) and python3 with venv"; fi
exit 1
