#!/usr/bin/env bash
# Builds one guest image of the VM test bench from Debian's packages: a root tree made by
# mmdebstrap (packages-<release>), configured here for a headless test guest, turned into
# an ext4 disk by mkfs.ext4 -d (no loop mount), with the kernel and initrd beside it for
# QEMU's direct boot. Everything in this directory is the recipe: scripts/vm.sh keys the
# image cache by a hash of it, so a change here makes a new image.
# Usage: build.sh RELEASE OUT_DIR SSH_PUBLIC_KEY   (as root; OUT_DIR is created)
set -euo pipefail
release=$1 out=$2 key=$3
recipe=$(cd "$(dirname "$0")" && pwd)
packages=$(grep -v '^#' "$recipe/packages-$release" | xargs | tr ' ' ',')

mkdir -p "$out"
root="$out/root"
rm -rf "$root"
# The default mirror of the release (with its updates and security suites for a stable
# release); nothing else is fetched, in the image or later in the guest.
mmdebstrap --variant=minbase --components=main --include="$packages" \
  --aptopt='Acquire::Retries "3"' \
  "$release" "$root" </dev/null

# Who the guest is: a hostname given on the kernel command line (systemd.hostname=), a
# root file system on the first virtio disk, DHCP from QEMU's user network.
echo oomwatch-vm >"$root/etc/hostname"
printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost\n' >"$root/etc/hosts"
echo '/dev/vda / ext4 rw,errors=remount-ro 0 1' >"$root/etc/fstab"
mkdir -p "$root/etc/systemd/network"
printf '[Match]\nType=ether\n\n[Network]\nDHCP=ipv4\n' >"$root/etc/systemd/network/20-wired.network"
systemctl --root="$root" enable systemd-networkd.service >/dev/null 2>&1

# The way in: root over SSH with the key made for this image cache (host keys are the
# image's own, the same in every guest; clients do not record them).
install -d -m 0700 "$root/root/.ssh"
install -m 0600 "$key" "$root/root/.ssh/authorized_keys"

# The journal kept across reboots, for a person reading a failed run's guest.
mkdir -p "$root/var/log/journal"
# pstore in reserved guest memory: the kernel command line (scripts/vm.sh) reserves the
# region and gives ramoops its address; the module is loaded at boot, and a panic's log
# written there survives QEMU's reset into the next boot.
echo ramoops >"$root/etc/modules-load.d/ramoops.conf"
# Nothing runs on a timer behind the tests' back.
for timer in apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer; do
  systemctl --root="$root" mask "$timer" >/dev/null 2>&1
done

cp "$root"/boot/vmlinuz-* "$out/vmlinuz"
cp "$root"/boot/initrd.img-* "$out/initrd.img"
# The disk: the tree plus room for the package, logs and the tests' files. Sparse.
size_mib=$(($(du -sm "$root" | cut -f1) + 1536))
rm -f "$out/root.img"
truncate -s "${size_mib}M" "$out/root.img"
mkfs.ext4 -q -F -L root -d "$root" "$out/root.img"
rm -rf "$root"
