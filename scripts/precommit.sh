#!/usr/bin/env bash
# Quick checks before a commit: what CI would reject first (fmt, clippy, rustdoc).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --all -- --check
cargo clippy --all-targets -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --quiet
