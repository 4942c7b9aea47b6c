#!/usr/bin/env bash
# The base image, from Debian's own packages: no image registry is needed (none is reachable from our build
# machines). debootstrap a minimal bookworm with Python 3.11, then `docker import` it.
#   deploy/docker/build-base.sh [TAG]        (default iiko-pipeline-base:bookworm; needs root, debootstrap, docker)
# The build machine's extra CA certificates (EXTRA_CA_DIR, default /usr/local/share/ca-certificates: e.g. a
# proxy in front of the package index) are trusted in the image too, or pip could not install from behind it.
set -euo pipefail
tag="${1:-iiko-pipeline-base:bookworm}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
root="$(mktemp -d /tmp/iiko-rootfs.XXXXXX)"
trap 'rm -rf "$root"' EXIT
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates,tzdata \
  bookworm "$root" "$mirror"
ca_dir="${EXTRA_CA_DIR-/usr/local/share/ca-certificates}"
if [ -n "$ca_dir" ] && compgen -G "$ca_dir/*.crt" >/dev/null; then
  mkdir -p "$root/usr/local/share/ca-certificates"
  cp "$ca_dir"/*.crt "$root/usr/local/share/ca-certificates/"
  chroot "$root" update-ca-certificates
fi
chroot "$root" apt-get clean
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin
tar -C "$root" -c . | docker import \
  --change 'ENV LANG=C.UTF-8 PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1' \
  --change 'CMD ["/bin/bash"]' - "$tag"
echo "built $tag"
