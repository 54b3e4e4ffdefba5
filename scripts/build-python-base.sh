#!/usr/bin/env bash
# Builds a real CPython base image from Debian packages, reproducibly, as an OCI image layout:
# mmdebstrap --variant=minbase writes a bookworm rootfs with python3 (and pip/venv, which a
# Containerfile doing the same job as atelier's builder needs) with SOURCE_DATE_EPOCH=0, and
# this script wraps that tarball as a one-layer OCI image labelled with where its Python is
# (ai.atelier.python) and which version it is (ai.atelier.python.version), as oci/build reads.
#
# Two builds from the same state of Debian's archive give the same image digest (checked: two
# runs, one digest); security updates change it, which only matters across days.
#
# The image is cached in ${ATELIER_TEST_CACHE:-~/.cache/atelier-test}/python-base/<key>, the key
# being the digest of this script (which holds every input) and the architecture; it is rebuilt
# only when they change. <cache>/python-base/current points at the newest one: the tests of oci/
# and `make bench` find the base there (or in ATELIER_PYTHON_BASE).
#
#   scripts/build-python-base.sh          # prints the layout directory
#   scripts/build-python-base.sh -check   # exit 0 when the cached base is current, 1 otherwise
#
# Needs mmdebstrap (apt) and root (or a working unshare), and reaches Debian's packages.
set -euo pipefail

SUITE=bookworm
INCLUDE=python3,python3-venv,python3-pip,ca-certificates
TAG=$SUITE

script=$(readlink -f "$0")
arch=$(dpkg --print-architecture)
key=$(cat "$script" <(echo "$arch") | sha256sum | cut -c1-16)
cache=${ATELIER_TEST_CACHE:-$HOME/.cache/atelier-test}/python-base
out=$cache/$SUITE-$arch-$key

if [ -f "$out/index.json" ]; then
  [ "${1:-}" = -check ] && exit 0
  ln -sfn "$(basename "$out")" "$cache/current"
  echo "$out"
  exit 0
fi
[ "${1:-}" = -check ] && exit 1

command -v mmdebstrap >/dev/null || { echo "build-python-base: mmdebstrap is not installed (apt-get install mmdebstrap)" >&2; exit 1; }
mkdir -p "$cache"
work=$(mktemp -d "$cache/.build-XXXXXX")
trap 'rm -rf "$work"' EXIT

# Docs, man pages and translations are excluded (a third of a minbase rootfs); apt's lists are
# dropped after the install; mmdebstrap itself clamps every mtime to SOURCE_DATE_EPOCH.
echo "build-python-base: mmdebstrap $SUITE ($INCLUDE), a few minutes" >&2
SOURCE_DATE_EPOCH=0 mmdebstrap --quiet --variant=minbase --include="$INCLUDE" \
  --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
  --dpkgopt='path-exclude=/usr/share/info/*' \
  --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/* "$1"/var/log/apt/* "$1"/var/log/dpkg.log' \
  --format=tar "$SUITE" "$work/rootfs.tar" </dev/null

# The interpreter python3 points at (python3.11) says the version.
pyname=$(tar -tvf "$work/rootfs.tar" ./usr/bin/python3 | sed -n 's/.*-> //p')
pyversion=${pyname#python}
case $pyversion in [0-9].[0-9]*) ;; *) echo "build-python-base: no python3 in the rootfs ($pyname)" >&2; exit 1 ;; esac

blobs=$work/layout/blobs/sha256
mkdir -p "$blobs"
diffid=$(sha256sum <"$work/rootfs.tar" | cut -d' ' -f1)
gzip -n -1 <"$work/rootfs.tar" >"$work/layer.tar.gz"
layer=$(sha256sum <"$work/layer.tar.gz" | cut -d' ' -f1)
layersize=$(stat -c %s "$work/layer.tar.gz")
mv "$work/layer.tar.gz" "$blobs/$layer"
rm "$work/rootfs.tar"

# blob NAME CONTENT: writes CONTENT as a blob and sets NAME_digest and NAME_size.
blob() {
  printf '%s' "$2" >"$work/blob"
  local d
  d=$(sha256sum <"$work/blob" | cut -d' ' -f1)
  mv "$work/blob" "$blobs/$d"
  printf -v "$1_digest" 'sha256:%s' "$d"
  printf -v "$1_size" '%s' "$(stat -c %s "$blobs/$d")"
}

epoch=1970-01-01T00:00:00Z
blob config "{\"architecture\":\"$arch\",\"os\":\"linux\",\"created\":\"$epoch\",\
\"config\":{\"Env\":[\"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\",\"LANG=C.UTF-8\"],\
\"Cmd\":[\"/usr/bin/python3\"],\"Labels\":{\"ai.atelier.python\":\"/usr/bin/python3\",\"ai.atelier.python.version\":\"$pyversion\",\
\"org.opencontainers.image.title\":\"atelier python base ($SUITE)\"}},\
\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"sha256:$diffid\"]},\
\"history\":[{\"created\":\"$epoch\",\"created_by\":\"mmdebstrap --variant=minbase --include=$INCLUDE $SUITE\"}]}"
blob manifest "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\
\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"$config_digest\",\"size\":$config_size},\
\"layers\":[{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"sha256:$layer\",\"size\":$layersize}]}"
printf '{"imageLayoutVersion":"1.0.0"}' >"$work/layout/oci-layout"
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"%s"}}]}' \
  "$manifest_digest" "$manifest_size" "$TAG" >"$work/layout/index.json"

# Another run may have finished first: its image is the same.
mv -T "$work/layout" "$out" 2>/dev/null || [ -f "$out/index.json" ]
ln -sfn "$(basename "$out")" "$cache/current"
# Bases of older versions of this script are not used any more.
find "$cache" -mindepth 1 -maxdepth 1 -name "$SUITE-$arch-*" ! -name "$(basename "$out")" -exec rm -rf {} +
echo "build-python-base: $manifest_digest (Python $pyversion, layer $layersize bytes) in $out" >&2
echo "$out"
