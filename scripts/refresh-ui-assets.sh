#!/usr/bin/env bash
# Refreshes the studio's front-end libraries in ui/static from the npm registry: htmx and uPlot at
# the pinned versions below. Their files are committed, with their versions and sha256 in
# ui/static/VERSIONS, so `go build` never needs npm; run this only to change a version (edit the
# pins, run it, review the diff, commit). Needs npm (npm pack) and sha256sum.
set -euo pipefail
cd "$(dirname "$0")/.."

HTMX_VERSION=2.0.11
UPLOT_VERSION=1.6.32

out=ui/static
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

fetch() { # package version -> unpacked in $tmp/<package>
  local pkg=$1 version=$2
  (cd "$tmp" && npm pack --silent "$pkg@$version" >/dev/null)
  mkdir -p "$tmp/$pkg"
  tar -xzf "$tmp/${pkg%%.*}"*"-$version.tgz" -C "$tmp/$pkg" --strip-components=1
}

fetch htmx.org "$HTMX_VERSION"
fetch uplot "$UPLOT_VERSION"

cp "$tmp/htmx.org/dist/htmx.min.js" "$out/htmx.min.js"
cp "$tmp/uplot/dist/uPlot.iife.min.js" "$out/uPlot.iife.min.js"
cp "$tmp/uplot/dist/uPlot.min.css" "$out/uPlot.min.css"
cp "$tmp/uplot/LICENSE" "$out/uPlot.LICENSE"
cp "$tmp/htmx.org/LICENSE" "$out/htmx.LICENSE"

{
  echo "# Written by scripts/refresh-ui-assets.sh: the npm package and version of each vendored file, and its sha256."
  for f in htmx.min.js htmx.LICENSE; do echo "htmx.org@$HTMX_VERSION $f $(sha256sum "$out/$f" | cut -d' ' -f1)"; done
  for f in uPlot.iife.min.js uPlot.min.css uPlot.LICENSE; do echo "uplot@$UPLOT_VERSION $f $(sha256sum "$out/$f" | cut -d' ' -f1)"; done
} >"$out/VERSIONS"
cat "$out/VERSIONS"
