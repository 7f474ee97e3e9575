#!/usr/bin/env bash
# Builds oomwatch's container image with podman (or buildah) from a built binary, without
# pulling anything: the image is FROM scratch and holds the binary, stripped, and the
# shared libraries ldd says it loads, copied from this (Debian) host with their paths.
# Usage: deploy/container/build.sh [BINARY] [TAG]
#   BINARY defaults to target/release/oomwatch (cargo build --release), TAG to
#   localhost/oomwatch:<version>. Push the tag to the registry your nodes pull from.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
binary="${1:-$here/../../target/release/oomwatch}"
[ -x "$binary" ] || { echo "no binary at $binary: cargo build --release first" >&2; exit 2; }
version="$("$binary" --version | awk '{print $2}')"
tag="${2:-localhost/oomwatch:$version}"

context="$(mktemp -d)"
trap 'rm -rf "$context"' EXIT
mkdir -p "$context/rootfs/usr/bin" "$context/rootfs/var/lib/oomwatch" "$context/rootfs/tmp"
install -m 0755 -s "$binary" "$context/rootfs/usr/bin/oomwatch"
# Every library the loader resolves, and the loader itself, at the path it was found.
for library in $(ldd "$binary" | grep -o '/[^ ]*'); do
  mkdir -p "$context/rootfs$(dirname "$library")"
  cp -L "$library" "$context/rootfs$library"
done
cp "$here/Containerfile" "$context/Containerfile"

if command -v podman >/dev/null; then
  podman build --quiet --tag "$tag" --file "$context/Containerfile" "$context" >/dev/null
elif command -v buildah >/dev/null; then
  buildah bud --quiet --tag "$tag" --file "$context/Containerfile" "$context" >/dev/null
else
  echo "neither podman nor buildah is installed (apt-get install podman)" >&2
  exit 2
fi
echo "$tag"
