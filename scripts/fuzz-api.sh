#!/usr/bin/env bash
# Fuzzes the REST API against its own OpenAPI document with schemathesis: builds the binary,
# starts a server on a temporary data directory and a free loopback port, runs every check of
# scripts/schemathesis.toml with the administrator's token, and stops the server.
#   FUZZ_EXAMPLES  test cases per operation and phase (default 20)
#   FUZZ_SEED      a seed, to replay a run
set -euo pipefail
cd "$(dirname "$0")/.."

venv=${ATELIER_TEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/atelier-test}/schemathesis
version=4.32.5 # pinned: checks change between releases
if ! "$venv/bin/st" --version 2>/dev/null | grep -q " $version\$"; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet "schemathesis==$version"
fi

work=$(mktemp -d)
server=
cleanup() {
  if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

${GO:-go} build -o "$work/atelier" ./cmd/atelier
mkdir "$work/data"
# Port 0: the server picks a free one and writes its address to <data>/server-url.
"$work/atelier" server --data "$work/data" --addr 127.0.0.1:0 --socket off --log-level warn \
  >"$work/server.log" 2>&1 &
server=$!
for _ in $(seq 300); do
  [ -s "$work/data/server-url" ] && break
  kill -0 "$server" 2>/dev/null || { cat "$work/server.log"; exit 1; }
  sleep 0.1
done
url=$(cat "$work/data/server-url")
token=$(cat "$work/data/admin-token")

seed=()
[ -n "${FUZZ_SEED:-}" ] && seed=(--seed "$FUZZ_SEED")
status=0
"$venv/bin/st" --config-file scripts/schemathesis.toml run "$url/api/v1/openapi.json" \
  --header "Authorization: Bearer $token" \
  --max-examples "${FUZZ_EXAMPLES:-20}" --workers 2 --no-color \
  --report junit --report-dir "${FUZZ_REPORT_DIR:-$work/report}" "${seed[@]}" || status=$?
if grep -q "panic\|level=ERROR" "$work/server.log"; then
  echo "== the server logged errors:"; grep -A20 "panic\|level=ERROR" "$work/server.log" | head -100
  status=1
fi
exit $status
