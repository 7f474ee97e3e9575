#!/usr/bin/env bash
# The test suite. With no argument, the whole suite as CI runs it: installs what the tests
# need (Debian packages, and Rust through rustup when cargo is missing; idempotent, quick
# when already installed), then lints, docs and every test. The tests make real OOM kills in
# a scratch memory cgroup, read /dev/kmsg, install the Debian package into a throwaway root
# and run the README's commands, so they run as root on a disposable machine or VM: started
# as another user, the script re-runs itself with sudo, keeping PATH so that the same cargo
# is used.
# With --quick, for a laptop, as any user, installing nothing: fmt, clippy, unit tests and
# the integration tests that need neither root nor the packages (QUICK_TESTS below).
# Usage: scripts/test.sh [--quick]
set -euo pipefail
cd "$(dirname "$0")/.."

case "${1:-}" in
  "") quick=false ;;
  --quick) quick=true ;;
  *) echo "usage: scripts/test.sh [--quick]" >&2; exit 2 ;;
esac

# The README's own commands, run by tests/readme_commands.rs on a clean clone; the full run
# gives them a step of their own (after everything else, one at a time, their timings shown).
readme_runs=(--skip readme_run_it --skip readme_test_it)

if $quick; then
  # Integration tests that need neither root nor the Debian packages of the full run.
  QUICK_TESTS=(architecture docs_metrics e2e_golden fuzz kmsg_fixtures kmsg_properties
    live_restarts parsers readme_commands scan_cmd web_security)
  command -v cargo >/dev/null || { echo "scripts/test.sh --quick: needs cargo (Rust 1.88 or newer) on PATH" >&2; exit 2; }
  export OOMWATCH_FUZZ_SECONDS="${OOMWATCH_FUZZ_SECONDS:-2}"   # a smoke run of each fuzz target
  echo "== fmt";    cargo fmt --all -- --check
  echo "== clippy"; cargo clippy --all-targets --locked -- -D warnings
  echo "== tests";  cargo test --locked --lib --bins "${QUICK_TESTS[@]/#/--test=}" -- "${readme_runs[@]}"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  exec sudo --preserve-env=PATH,CARGO_HOME,RUSTUP_HOME,CI,OOMWATCH_TOOLS "$0" "$@"
fi

# Debian packages the tests drive for real: promtool and Prometheus (prometheus), amtool and
# Alertmanager (prometheus-alertmanager), the OpenMetrics parser (python3-prometheus-client);
# the headless browser that renders the incident page (chromium);
# for the deploy files: systemd-analyze (systemd), setpriv (util-linux), dpkg-shlibdeps for
# cargo-deb (dpkg-dev), a venv for the Kubernetes validator (python3-venv), the container
# image (podman, runc); node and npm for the Prometheus Operator schemas, from Debian's
# nodejs and npm unless a node with its own npm is already installed; the VM bench
# (tests/vm.rs, scripts/vm.sh): mmdebstrap for the guest images, ssh into the guests, and
# QEMU (below).
packages=(prometheus prometheus-alertmanager python3-prometheus-client chromium systemd
  util-linux dpkg-dev python3-venv podman runc mmdebstrap openssh-client)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
command -v npm >/dev/null || missing+=(nodejs npm)
command -v cargo >/dev/null || [ -x "$HOME/.cargo/bin/cargo" ] || missing+=(curl build-essential)
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# QEMU and qemu-img for the VM bench. Where the machine's qemu-utils came from the
# release's backports (it does on this project's machines), QEMU must come from there too:
# apt would otherwise remove qemu-utils (it breaks qemu-system-common before 8.0). The
# backports suite is added for this one install, on the mirror the host already uses.
if ! command -v qemu-system-x86_64 >/dev/null || ! command -v qemu-img >/dev/null; then
  qemu=(qemu-system-x86 qemu-utils)
  apt_options=()
  if dpkg-query -W -f='${Version}' qemu-utils 2>/dev/null | grep -q '~bpo'; then
    codename=$(. /etc/os-release && echo "$VERSION_CODENAME")
    mirror=$(apt-cache policy | awk -v s="$codename/main" '$3 == s && $2 ~ /^https?:/ {print $2; exit}')
    parts=$(mktemp -d)
    cp -a /etc/apt/sources.list.d/. "$parts/"
    echo "deb $mirror $codename-backports main" >"$parts/oomwatch-test-backports.list"
    apt_options=(-o "Dir::Etc::sourceparts=$parts")
    qemu=("qemu-system-x86/$codename-backports" "qemu-utils/$codename-backports")
  fi
  echo "installing: ${qemu[*]}"
  apt-get "${apt_options[@]}" update -qq
  DEBIAN_FRONTEND=noninteractive apt-get "${apt_options[@]}" install -y -qq --no-install-recommends "${qemu[@]}" >/dev/null
fi
if ! command -v cargo >/dev/null; then
  [ -x "$HOME/.cargo/bin/cargo" ] || curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal -c clippy,rustfmt
  export PATH="$HOME/.cargo/bin:$PATH"
fi

# Tools from the language registries, pinned, each installed once and kept in the default
# cargo home or in $OOMWATCH_TOOLS, where the tests look for them.
cargo_deb_version=3.8.0
if [ "$(cargo deb --version 2>/dev/null)" != "cargo-deb $cargo_deb_version" ]; then
  echo "installing: cargo-deb $cargo_deb_version"
  cargo install --quiet --locked --version "$cargo_deb_version" cargo-deb
fi
export OOMWATCH_TOOLS="${OOMWATCH_TOOLS:-$HOME/.cache/oomwatch-test-tools}"
kubernetes_validate_version=1.37.0
if ! "$OOMWATCH_TOOLS/venv/bin/kubernetes-validate" --version 2>/dev/null | grep -qx "$kubernetes_validate_version"; then
  echo "installing: kubernetes-validate $kubernetes_validate_version"
  /usr/bin/python3 -m venv "$OOMWATCH_TOOLS/venv"
  "$OOMWATCH_TOOLS/venv/bin/pip" install --quiet "kubernetes-validate==$kubernetes_validate_version"
fi
operator_models=@kubernetes-models/prometheus-operator@6.0.0
if ! grep -qs '"version": "6.0.0"' "$OOMWATCH_TOOLS/npm/node_modules/@kubernetes-models/prometheus-operator/package.json"; then
  echo "installing: $operator_models"
  mkdir -p "$OOMWATCH_TOOLS/npm"
  npm install --silent --no-audit --no-fund --prefix "$OOMWATCH_TOOLS/npm" "$operator_models"
fi

echo "== fmt";    cargo fmt --all -- --check
echo "== clippy"; cargo clippy --all-targets --locked -- -D warnings
echo "== doc";    RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --locked --quiet
echo "== tests";  cargo test --locked --lib --bins --tests -- "${readme_runs[@]}"   # benches are run by hand, never here
echo "== README commands"; cargo test --locked --test readme_commands readme_ -- --test-threads=1 --nocapture
