#!/usr/bin/env bash
# Installs what building Keel needs on Debian, when missing: liburing-dev (io_uring), libssl-dev
# (libcrypto's HMAC-SHA256 for member authentication) and pkg-config.
# Runs apt-get as root, or through sudo. Prints what it does; does nothing when all is present.
set -euo pipefail

if ! command -v swift >/dev/null 2>&1; then
  echo "keel setup: the Swift toolchain is not on PATH; install Swift 6.1 or newer (swift.org) and retry." >&2
  exit 1
fi

missing=()
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
if ! pkg-config --exists liburing 2>/dev/null && [ ! -f /usr/include/liburing.h ]; then
  missing+=(liburing-dev)
fi
if ! pkg-config --exists libcrypto 2>/dev/null && [ ! -f /usr/include/openssl/hmac.h ]; then
  missing+=(libssl-dev)
fi
# Optional extras used by benchmarks when present: rsvg-convert turns the percentile plot SVG into PNG.
if [ "${KEEL_SETUP_EXTRAS:-0}" = 1 ] && ! command -v rsvg-convert >/dev/null 2>&1; then
  missing+=(librsvg2-bin)
fi

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
  sudo=()
elif command -v sudo >/dev/null 2>&1; then
  sudo=(sudo)
else
  echo "keel setup: need ${missing[*]} but am not root and sudo is missing; install them with apt-get as root." >&2
  exit 1
fi
echo "keel setup: installing ${missing[*]} with apt-get"
"${sudo[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
