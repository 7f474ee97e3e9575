#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs what the tests need (Debian packages, and
# Rust through rustup when cargo is missing; idempotent, quick when already installed), then
# lints, docs and every test. The tests make real OOM kills in a scratch memory cgroup and
# read /dev/kmsg, so they run as root: started as another user, the script re-runs itself
# with sudo, keeping PATH so that the same cargo is used.
# Usage: scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  exec sudo --preserve-env=PATH,CARGO_HOME,RUSTUP_HOME,CI "$0" "$@"
fi

# Debian packages the tests drive for real: promtool and Prometheus (prometheus), amtool and
# Alertmanager (prometheus-alertmanager), the OpenMetrics parser (python3-prometheus-client).
packages=(prometheus prometheus-alertmanager python3-prometheus-client)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
command -v cargo >/dev/null || [ -x "$HOME/.cargo/bin/cargo" ] || missing+=(curl build-essential)
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if ! command -v cargo >/dev/null; then
  [ -x "$HOME/.cargo/bin/cargo" ] || curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal -c clippy,rustfmt
  export PATH="$HOME/.cargo/bin:$PATH"
fi

echo "== fmt";    cargo fmt --all -- --check
echo "== clippy"; cargo clippy --all-targets --locked -- -D warnings
echo "== doc";    RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --locked --quiet
echo "== tests";  cargo test --locked --lib --bins --tests   # benches are run by hand, never here
