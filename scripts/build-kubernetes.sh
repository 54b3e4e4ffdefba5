#!/usr/bin/env bash
# Builds a real Kubernetes control plane for the kubernetes compute driver's tests
# (compute/kubernetes/kubetest): kube-apiserver, kube-controller-manager and kube-scheduler
# from k8s.io/kubernetes through a wrapper module (its staging replaces rewritten to the
# published k8s.io/* modules), etcd 3.6 through a wrapper module, and kwok (fake nodes and pod
# status), all through the Go module proxy. ../shared/ENGINES.md §7 has the measurements:
# about 12 minutes cold and 3 GB of RAM.
#
# The binaries go to ${ATELIER_TEST_CACHE:-~/.cache/atelier-test}/kubernetes/<key>/bin, the
# key being the digest of this script (which holds every version) and the architecture; they
# are rebuilt only when it changes. <cache>/kubernetes/current points at the newest build:
# kubetest finds the binaries there (or in ATELIER_KUBERNETES_BIN). kwok's stage files (pods
# go Running, then Succeeded) are copied next to the binaries as kwok-stages.yaml.
#
#   scripts/build-kubernetes.sh          # prints the bin directory
#   scripts/build-kubernetes.sh -check   # exit 0 when the cached build is current, 1 otherwise
#
# Runs under nice: the build is long and the machine is shared.
set -euo pipefail

KV=1.37.2     # k8s.io/kubernetes
SV=0.37.2     # the k8s.io/* staging modules of that release
ETCD=3.6.16
KWOK=0.8.0

script=$(readlink -f "$0")
arch=$(go env GOARCH)
key=$(cat "$script" <(echo "$arch") | sha256sum | cut -c1-16)
cache=${ATELIER_TEST_CACHE:-$HOME/.cache/atelier-test}/kubernetes
out=$cache/$KV-$arch-$key

if [ -f "$out/bin/.complete" ]; then
  [ "${1:-}" = -check ] && exit 0
  ln -sfn "$(basename "$out")" "$cache/current"
  echo "$out/bin"
  exit 0
fi
[ "${1:-}" = -check ] && exit 1

mkdir -p "$cache"
work=$(mktemp -d "$cache/.build-XXXXXX")
trap 'rm -rf "$work"' EXIT
bin=$work/bin
mkdir -p "$bin"
export GOFLAGS=-mod=mod GOWORK=off CGO_ENABLED=0
N="nice -n 15"
t0=$SECONDS
say() { echo "build-kubernetes: $* ($((SECONDS - t0)) s)" >&2; }

# Kubernetes: its go.mod replaces every staging module with ./staging/src/k8s.io/X, which a
# module from the proxy does not have; the wrapper points them at the published versions.
say "k8s.io/kubernetes v$KV: wrapper module"
mkdir -p "$work/k8s"
gomod=$(go mod download -json "k8s.io/kubernetes@v$KV" | python3 -c 'import json,sys;print(json.load(sys.stdin)["GoMod"])')
{
  echo "module example.com/k8sbuild"
  echo "go $(go env GOVERSION | sed 's/^go//; s/^\([0-9]*\.[0-9]*\).*/\1/').0"
  echo "require k8s.io/kubernetes v$KV"
  echo "replace ("
  grep -E '=> \./staging' "$gomod" | awk -v sv="v$SV" '{print "\t"$1" => "$1" "sv}'
  echo ")"
} >"$work/k8s/go.mod"
printf '//go:build tools\npackage tools\nimport (\n_ "k8s.io/kubernetes/cmd/kube-apiserver"\n_ "k8s.io/kubernetes/cmd/kube-controller-manager"\n_ "k8s.io/kubernetes/cmd/kube-scheduler"\n)\n' >"$work/k8s/tools.go"
minor=${KV#*.}; minor=${minor%%.*}
ldflags="-s -w -X k8s.io/component-base/version.gitVersion=v$KV -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor"
(cd "$work/k8s" && $N go mod tidy)
say "kube-apiserver (about 5 minutes, 3 GB)"
(cd "$work/k8s" && $N go build -trimpath -ldflags "$ldflags" -o "$bin/" k8s.io/kubernetes/cmd/kube-apiserver)
say "kube-controller-manager and kube-scheduler (about 4 minutes)"
(cd "$work/k8s" && $N go build -trimpath -ldflags "$ldflags" -o "$bin/" k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kube-scheduler)

# etcd 3.6 (Debian's 3.4 lacks watch progress requests, which informers rely on): its server
# module replaces its sibling modules with relative paths too.
say "etcd v$ETCD"
mkdir -p "$work/etcd"
{
  echo "module example.com/etcdbuild"
  echo "go $(go env GOVERSION | sed 's/^go//; s/^\([0-9]*\.[0-9]*\).*/\1/').0"
  echo "require go.etcd.io/etcd/server/v3 v$ETCD"
  echo "replace ("
  for m in api/v3 client/pkg/v3 client/v3 pkg/v3; do echo "	go.etcd.io/etcd/$m => go.etcd.io/etcd/$m v$ETCD"; done
  echo ")"
} >"$work/etcd/go.mod"
printf '//go:build tools\npackage tools\nimport _ "go.etcd.io/etcd/server/v3"\n' >"$work/etcd/tools.go"
(cd "$work/etcd" && $N go mod tidy && $N go build -trimpath -ldflags "-s -w" -o "$bin/etcd" go.etcd.io/etcd/server/v3)

say "kwok v$KWOK"
GOBIN=$bin $N go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@v$KWOK"
stages=$(go env GOMODCACHE)/sigs.k8s.io/kwok@v$KWOK/kustomize/stage
first=1
for s in node/fast/node-initialize node/heartbeat/node-heartbeat pod/fast/pod-ready pod/fast/pod-complete pod/fast/pod-delete; do
  [ $first = 1 ] || echo "---"
  first=0
  cat "$stages/$s.yaml"
done >"$bin/kwok-stages.yaml"

"$bin/kube-apiserver" --version >&2
"$bin/etcd" --version | head -1 >&2
touch "$bin/.complete"
rm -rf "$out"
mv "$work" "$out"
trap - EXIT
rm -rf "$out/k8s" "$out/etcd"
ln -sfn "$(basename "$out")" "$cache/current"
say "done: $out/bin"
echo "$out/bin"
