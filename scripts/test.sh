#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs what the tests need (Debian packages;
# idempotent, quick when already installed), then lints, docs and every test.
# Usage: scripts/test.sh            (as root, or with sudo available)
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the tests drive for real: promtool (prometheus), the OpenMetrics parser
# (python3-prometheus-client).
packages=(prometheus python3-prometheus-client)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
command -v cargo >/dev/null || { echo "cargo is missing: install Rust (rustup) first" >&2; exit 1; }

echo "== fmt";    cargo fmt --all -- --check
echo "== clippy"; cargo clippy --all-targets --locked -- -D warnings
echo "== doc";    RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --locked --quiet
echo "== tests";  cargo test --locked --lib --bins --tests   # benches are run by hand, never here
