#!/usr/bin/env bash
# The local base image of the registry-free stack (docs/operations.md, "Running the stack
# without a registry"): a Debian bookworm minbase tree made by debootstrap and imported with
# `docker import`, with the host's apt sources (the same mirror) and CA bundle (pip and apt
# inside the containers need it where the registries sit behind an intercepting proxy).
# Tagged by the hash of its inputs (this script, the sources, the CA bundle): rebuilt only
# when one of them changes.   usage: deploy/local/base-image.sh  -> prints the image tag
set -euo pipefail

ca="${DATACLOUD_CA_BUNDLE:-$(python3 -m pip config get global.cert 2>/dev/null || true)}"
[ -n "$ca" ] && [ -f "$ca" ] || ca=/etc/ssl/certs/ca-certificates.crt
sources=/etc/apt/sources.list.d/debian.sources
[ -f "$sources" ] || sources=/etc/apt/sources.list
apt_conf=(/etc/apt/apt.conf.d/99artifact-registry)
hash="$(cat "$0" "$sources" "$ca" "${apt_conf[@]}" 2>/dev/null | sha256sum | cut -c1-12)"
tag="datacloud-local/base:bookworm-$hash"

alias=datacloud-local/base:bookworm   # what deploy/local/*.Dockerfile build FROM
if docker image inspect "$tag" >/dev/null 2>&1; then
  docker tag "$tag" "$alias"
  echo "$tag"
  exit 0
fi

root="$(mktemp -d /var/tmp/datacloud-base.XXXXXX)"
trap 'rm -rf "$root"' EXIT
echo "base-image: debootstrap bookworm into $root" >&2
mirror="$(awk '/^URIs:/ {print $2; exit}' "$sources" 2>/dev/null || true)"
log="$(mktemp /var/tmp/datacloud-base-debootstrap.XXXXXX.log)"
if ! debootstrap --variant=minbase bookworm "$root" "${mirror:-http://deb.debian.org/debian}" >"$log" 2>&1; then
  tail -30 "$log" >&2
  exit 1
fi
rm -f "$log"
rm -f "$root/etc/apt/sources.list"
cp "$sources" "$root/etc/apt/sources.list.d/"
for f in "${apt_conf[@]}"; do [ -f "$f" ] && cp "$f" "$root/etc/apt/apt.conf.d/"; done
mkdir -p "$root/etc/ssl"
cp "$ca" "$root/etc/ssl/datacloud-ca-bundle.crt"
cat > "$root/etc/apt/apt.conf.d/90datacloud" <<'CONF'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
Acquire::https::CAInfo "/etc/ssl/datacloud-ca-bundle.crt";
CONF
rm -rf "$root/var/cache/apt/archives/"*.deb "$root/var/lib/apt/lists/"*
tar -C "$root" -c . | docker import \
  -c 'ENV LANG=C.UTF-8 PIP_CERT=/etc/ssl/datacloud-ca-bundle.crt REQUESTS_CA_BUNDLE=/etc/ssl/datacloud-ca-bundle.crt SSL_CERT_FILE=/etc/ssl/datacloud-ca-bundle.crt' \
  -c 'CMD ["bash"]' - "$tag" >/dev/null
docker tag "$tag" "$alias"
echo "$tag"
