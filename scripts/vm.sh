#!/usr/bin/env bash
# The VM test bench: real Debian guests (systemd as PID 1, cgroup v2, the project's .deb)
# booted by QEMU. The one implementation: the tests (tests/common/vm.rs) call this script,
# and a person can use it by hand.
#
#   scripts/vm.sh build RELEASE          build the image unless cached; print its directory
#   scripts/vm.sh boot DIR [RELEASE] [--memory MIB] [--exporter ADDR:PORT] [--ssh-port PORT]
#                     [--hostname NAME] [--no-wait]
#                                        boot a guest kept in DIR: the first time (RELEASE
#                                        needed) a qcow2 overlay over the cached image is
#                                        made there; later boots (after a power cut) boot
#                                        the same disk with the same settings
#   scripts/vm.sh wait DIR [SECONDS]     wait until the guest answers over SSH
#   scripts/vm.sh ssh DIR [COMMAND...]   a shell in the guest, or run COMMAND there as root
#   scripts/vm.sh stop DIR               power off cleanly (the guest shuts down), else kill
#   scripts/vm.sh kill DIR               power cut: QEMU killed by its PID
#
# RELEASE is a Debian code name with a package list in tests/vm/recipe (bookworm, trixie).
# Images are cached in $OOMWATCH_VM_CACHE (default ~/.cache/oomwatch-vm) under
# RELEASE-<hash of tests/vm/recipe>, each with its own SSH key; a change to the recipe
# builds a new image (about 90 s from the package mirror) and drops the release's old one.
# In DIR: disk.qcow2, console.log (the serial console, appended across boots), qemu.pid,
# guest.env (the settings). The exporter's :9721 is forwarded to --exporter (default
# 127.0.0.1 and a free port), SSH to --ssh-port (default free) on 127.0.0.1; the guest has
# no other network. Guests run under TCG, QEMU's software emulation: on this project's
# machines KVM hangs (`-accel kvm`: no console output in 60 s) or aborts (`-cpu host`:
# "failed to set MSR 0x10a"), so it is not offered. OOMWATCH_VM_MEMORY sets the guest's
# memory in MiB (768), OOMWATCH_VM_SMP its CPUs (1).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
recipe="$repo/tests/vm/recipe"
cache=${OOMWATCH_VM_CACHE:-$HOME/.cache/oomwatch-vm}

die() { echo "vm.sh: $*" >&2; exit 2; }
say() { echo "vm.sh: $*" >&2; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# The cache key: every file of the recipe, by name and content.
recipe_key() {
  (cd "$recipe" && for f in $(LC_ALL=C ls); do echo "== $f"; cat "$f"; done) |
    sha256sum | cut -c1-16
}

image_dir() {
  local release=$1
  [ -f "$recipe/packages-$release" ] || die "no recipe for release '$release' (tests/vm/recipe/packages-$release)"
  echo "$cache/$release-$(recipe_key)"
}

cmd_build() {
  local release=${1:?usage: vm.sh build RELEASE}
  local dir
  dir=$(image_dir "$release")
  mkdir -p "$cache"
  # One build per image at a time; a second caller waits and then finds it made.
  exec 9>"$dir.lock"
  flock 9
  if [ ! -f "$dir/ready" ]; then
    [ "$(id -u)" -eq 0 ] || die "building an image needs root (mmdebstrap, mkfs.ext4 -d)"
    for tool in mmdebstrap mkfs.ext4 ssh-keygen; do
      command -v "$tool" >/dev/null || die "$tool is missing (scripts/test.sh installs it)"
    done
    local started tmp
    started=$(now)
    tmp="$dir.tmp"
    rm -rf "$tmp"
    mkdir -p "$tmp"
    ssh-keygen -q -t ed25519 -N '' -C "oomwatch-vm" -f "$tmp/id_ed25519"
    say "building image $(basename "$dir") (log: $tmp/build.log)"
    if ! "$recipe/build.sh" "$release" "$tmp" "$tmp/id_ed25519.pub" >"$tmp/build.log" 2>&1; then
      tail -n 40 "$tmp/build.log" >&2
      die "image build failed; the whole log is $tmp/build.log"
    fi
    (cd "$recipe" && for f in $(LC_ALL=C ls); do echo "== $f"; cat "$f"; done) >"$tmp/recipe.txt"
    touch "$tmp/ready"
    rm -rf "$dir"
    mv "$tmp" "$dir"
    # Older images of this release are of no use any more.
    for old in "$cache/$release"-*; do
      case $old in "$dir" | "$dir".*) ;; *) rm -rf "$old" ;; esac
    done
    say "image $(basename "$dir") built in $(since "$started") s"
  fi
  echo "$dir"
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

load_env() {
  local dir=$1
  [ -f "$dir/guest.env" ] || die "$dir holds no guest (boot it first with a RELEASE)"
  # shellcheck disable=SC1091
  . "$dir/guest.env"
}

running() {
  local dir=$1
  [ -f "$dir/qemu.pid" ] && kill -0 "$(cat "$dir/qemu.pid")" 2>/dev/null
}

ssh_args() {
  local dir=$1
  load_env "$dir"
  echo -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
    -o LogLevel=ERROR -o ConnectTimeout=5 -o ServerAliveInterval=5 -o ServerAliveCountMax=6 \
    -i "$IMAGE/id_ed25519" -p "$SSH_PORT" root@127.0.0.1
}

cmd_boot() {
  local dir=${1:?usage: vm.sh boot DIR [RELEASE] [options]}
  shift
  local release="" memory=${OOMWATCH_VM_MEMORY:-768} exporter="" ssh_port="" hostname="" wait=1
  if [ $# -gt 0 ] && [ "${1#--}" = "$1" ]; then release=$1; shift; fi
  while [ $# -gt 0 ]; do
    case $1 in
      --memory) memory=$2; shift 2 ;;
      --exporter) exporter=$2; shift 2 ;;
      --ssh-port) ssh_port=$2; shift 2 ;;
      --hostname) hostname=$2; shift 2 ;;
      --no-wait) wait=0; shift ;;
      *) die "unknown option $1" ;;
    esac
  done
  command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 is missing (scripts/test.sh installs qemu-system-x86)"
  command -v qemu-img >/dev/null || die "qemu-img is missing (scripts/test.sh installs qemu-utils)"
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  if running "$dir"; then die "the guest in $dir is running already (PID $(cat "$dir/qemu.pid"))"; fi
  if [ ! -f "$dir/guest.env" ]; then
    [ -n "$release" ] || die "a new guest needs a RELEASE (bookworm, trixie)"
    local image
    image=$(cmd_build "$release")
    qemu-img create -q -f qcow2 -b "$image/root.img" -F raw "$dir/disk.qcow2"
    [ -n "$ssh_port" ] || ssh_port=$(free_port)
    [ -n "$exporter" ] || exporter="127.0.0.1:$(free_port)"
    [ -n "$hostname" ] || hostname=$(basename "$dir")
    cat >"$dir/guest.env" <<EOF
RELEASE=$release
IMAGE=$image
MEMORY=$memory
SSH_PORT=$ssh_port
EXPORTER=$exporter
GUEST_NAME=$hostname
EOF
  elif [ -n "$release" ]; then
    die "$dir holds a guest already: boot it again without a RELEASE"
  fi
  load_env "$dir"
  # pstore: 1 MiB reserved 64 MiB below the top of the guest's memory for ramoops; QEMU's
  # reset (panic=1 reboots) keeps RAM, so a panic's log is there in the next boot.
  local ramoops
  ramoops=$(printf '0x%x' $(((MEMORY - 64) * 1024 * 1024)))
  local append="root=/dev/vda rw console=ttyS0 panic=1 systemd.hostname=$GUEST_NAME"
  append+=" memmap=1M\$$ramoops ramoops.mem_address=$ramoops ramoops.mem_size=0x100000"
  append+=" ramoops.record_size=0x20000"
  local started
  started=$(now)
  qemu-system-x86_64 -accel tcg -m "$MEMORY" -smp "${OOMWATCH_VM_SMP:-1}" \
    -nodefaults -display none -name "oomwatch-vm-$GUEST_NAME" \
    -kernel "$IMAGE/vmlinuz" -initrd "$IMAGE/initrd.img" -append "$append" \
    -drive "file=$dir/disk.qcow2,if=virtio,format=qcow2" \
    -netdev "user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:$SSH_PORT-:22,hostfwd=tcp:$EXPORTER-:9721" \
    -device virtio-net-pci,netdev=net0 -device virtio-rng-pci \
    -chardev "file,id=console,path=$dir/console.log,append=on" -serial chardev:console \
    -daemonize -pidfile "$dir/qemu.pid"
  say "guest $GUEST_NAME ($RELEASE) started: PID $(cat "$dir/qemu.pid"), ssh 127.0.0.1:$SSH_PORT, exporter $EXPORTER"
  if [ "$wait" = 1 ]; then cmd_wait "$dir" 180 "$started"; fi
}

cmd_wait() {
  local dir=${1:?usage: vm.sh wait DIR [SECONDS]} limit=${2:-180} started=${3:-$(now)}
  load_env "$dir"
  local args
  args=$(ssh_args "$dir")
  local deadline=$(($(date +%s) + limit))
  while [ "$(date +%s)" -lt "$deadline" ]; do
    # shellcheck disable=SC2086
    if ssh $args true </dev/null 2>/dev/null; then
      say "guest $GUEST_NAME answers over SSH after $(since "$started") s"
      return 0
    fi
    running "$dir" || die "QEMU is not running (console: $dir/console.log)"
    sleep 1
  done
  die "guest $GUEST_NAME did not answer over SSH within $limit s (console: $dir/console.log)"
}

cmd_ssh() {
  local dir=${1:?usage: vm.sh ssh DIR [COMMAND...]}
  shift
  local args
  args=$(ssh_args "$dir")
  if [ $# -eq 0 ]; then
    # shellcheck disable=SC2086
    exec ssh -t $args
  fi
  # shellcheck disable=SC2086
  exec ssh $args "$@"
}

# Waits for QEMU's PID to go; true when it went within $2 seconds.
gone_within() {
  local pid=$1 limit=$2 i
  for ((i = 0; i < limit * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  return 1
}

cmd_kill() {
  local dir=${1:?usage: vm.sh kill DIR}
  [ -f "$dir/qemu.pid" ] || return 0
  local pid
  pid=$(cat "$dir/qemu.pid")
  # Only our QEMU: the PID must still be a qemu-system process with this guest's disk.
  if kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "$dir/disk.qcow2"; then
    kill -KILL "$pid"
    gone_within "$pid" 10 || die "QEMU (PID $pid) did not die"
  fi
  rm -f "$dir/qemu.pid"
}

cmd_stop() {
  local dir=${1:?usage: vm.sh stop DIR}
  running "$dir" || { rm -f "$dir/qemu.pid"; return 0; }
  local pid args
  pid=$(cat "$dir/qemu.pid")
  args=$(ssh_args "$dir")
  # shellcheck disable=SC2086
  ssh $args 'systemctl poweroff' </dev/null >/dev/null 2>&1 || true
  if gone_within "$pid" 90; then
    rm -f "$dir/qemu.pid"
  else
    say "guest did not power off within 90 s; killing QEMU"
    cmd_kill "$dir"
  fi
}

case ${1:-} in
  build | boot | wait | ssh | stop | kill)
    command=$1
    shift
    "cmd_$command" "$@"
    ;;
  *)
    sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
