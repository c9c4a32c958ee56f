#!/usr/bin/env bash
# Installs what Tiefsee needs on a fresh Debian machine with the Swift toolchain, and fetches
# the default model and the default embedding model. Safe to re-run: it only installs or downloads what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v swift >/dev/null || { echo "Swift 6 toolchain not found on PATH" >&2; exit 1; }
# Debian packages the build and tests use (system-library targets, tools; chromium and its
# driver for the chat page's browser test, BrowserTests).
apt_packages=(libmicrohttpd-dev libsqlite3-dev poppler-utils unzip pkg-config chromium chromium-driver tesseract-ocr tesseract-ocr-deu)
missing=()
for pkg in ${apt_packages[@]+"${apt_packages[@]}"}; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  sudo_cmd=""; [ "$(id -u)" = 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}"
fi
command -v python3 >/dev/null || { echo "python3 with pip is needed to fetch the model" >&2; exit 1; }
scripts/fetch-model.sh
# The server tests drive `tiefsee serve` with the official OpenAI and Anthropic Python clients,
# the browser test drives Chromium with Selenium (told the driver's path: it fetches nothing).
for pkg in openai anthropic selenium; do
  if ! python3 -c "import $pkg" >/dev/null 2>&1; then
    python3 -m pip install --quiet "$pkg" 2>/dev/null \
      || python3 -m pip install --quiet --break-system-packages "$pkg" \
      || echo "warning: could not install the $pkg Python package; its server test will be skipped" >&2
  fi
done
scripts/fetch-embedding-model.sh
