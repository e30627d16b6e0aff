#!/usr/bin/env bash
# fresh_debian.sh [DIR] - try the README's two commands on a brand-new Debian 12:
# debootstrap a minimal bookworm into DIR (default /tmp/slope-deb12), copy this
# checkout into it, and run `./run.sh demo` and `./run.sh test` inside a chroot,
# as root, exactly as a newcomer would. Needs root, debootstrap and network
# access to the Debian mirror; not run by CI (it takes a few minutes).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
root=${1:-/tmp/slope-deb12}
command -v debootstrap >/dev/null || apt-get install -y -qq debootstrap
[ -x "$root/bin/bash" ] || debootstrap --variant=minbase bookworm "$root" http://deb.debian.org/debian
cp /etc/resolv.conf "$root/etc/resolv.conf"
for m in proc dev sys; do mountpoint -q "$root/$m" || mount --bind "/$m" "$root/$m"; done
trap 'for m in proc dev sys; do umount "$root/$m" 2>/dev/null || true; done' EXIT
rm -rf "$root/root/slope"
mkdir -p "$root/root/slope"
(cd "$here" && git ls-files -z | xargs -0 tar cf - ) | tar xf - -C "$root/root/slope"
chroot "$root" /bin/bash -c 'cd /root/slope && ./run.sh demo && ./run.sh test'
echo "fresh_debian: both README commands passed on a fresh Debian 12"
