#!/usr/bin/env bash
# Benchmarks oomwatch against node_exporter, process-exporter and a raw /proc floor with
# 0, 1,000 and 10,000 extra processes, and regenerates docs/performance.md. Installs the
# peers (Debian packages) when missing. Not part of the tests: it loads the host.
set -euo pipefail
cd "$(dirname "$0")/.."
missing=()
[ -x /usr/bin/prometheus-node-exporter ] || missing+=(prometheus-node-exporter)
[ -x /usr/bin/prometheus-process-exporter ] || missing+=(prometheus-process-exporter)
if [ "${#missing[@]}" -gt 0 ]; then
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
  # The packages start their services; the benchmark runs its own instances.
  for unit in prometheus-node-exporter prometheus-process-exporter; do
    "${sudo_cmd[@]}" systemctl disable --now "$unit" 2>/dev/null || true
  done
fi
exec cargo bench --bench peers "$@"
