#!/bin/sh
# Runs the OCI distribution-spec conformance suite against the registry of this package.
#
# The suite (github.com/opencontainers/distribution-spec/conformance, pinned below) is built
# once through the Go module proxy into ~/.cache/atelier-test/ and reused; TestConformance then
# serves the registry on 127.0.0.1 and runs it with every API and data set enabled (pull, push,
# content discovery with referrers, content management, sha512 and empty blobs) and fails unless
# every test passes.
#
#   oci/registry/conformance.sh            build if needed, then run
#   oci/registry/conformance.sh -build     only build; print the binary's path
set -eu

version=v0.0.0-20260831232431-97274622c111 # distribution-spec main of 2026-08-31
cache=${ATELIER_TEST_CACHE:-$HOME/.cache/atelier-test}
bin=$cache/oci-conformance-$version

if [ ! -x "$bin" ]; then
	work=$(mktemp -d)
	trap 'rm -rf "$work"' EXIT
	mkdir -p "$cache"
	(
		cd "$work"
		printf 'module ocisuite\n\ngo 1.24\n' >go.mod
		GOFLAGS=-mod=mod go get "github.com/opencontainers/distribution-spec/conformance@$version"
		GOFLAGS=-mod=mod go build -o "$bin.tmp" github.com/opencontainers/distribution-spec/conformance
	)
	mv "$bin.tmp" "$bin"
fi
if [ "${1:-}" = -build ]; then
	echo "$bin"
	exit 0
fi
cd "$(dirname "$0")"
ATELIER_OCI_CONFORMANCE=$bin exec go test -count=1 -run '^TestConformance$' -v .
