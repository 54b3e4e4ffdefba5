#!/usr/bin/env bash
# Fuzzes the REST API against its own OpenAPI document with schemathesis: builds the binary,
# starts a server on a temporary data directory and a free loopback port, runs every check of
# scripts/schemathesis.toml with the administrator's token, and stops the server.
#   FUZZ_EXAMPLES  test cases per operation and phase (default 20)
#   FUZZ_SEED      a seed, to replay a run
#   FUZZ_REPORT    a directory to keep a JUnit report in
#   FUZZ_PHASES    the phases to run (default all: examples,coverage,fuzzing,stateful); CI runs
#                  the deterministic ones, examples and coverage
#   FUZZ_WORKERS   schemathesis' threads (default 1: with 2, Python 3.11's ast.parse, which
#                  hypothesis calls from each thread, failed once with "AST constructor
#                  recursion depth mismatch", an error of the tool, not of the server)
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

extra=()
[ -n "${FUZZ_SEED:-}" ] && extra+=(--seed "$FUZZ_SEED")
[ -n "${FUZZ_PHASES:-}" ] && extra+=(--phases "$FUZZ_PHASES")
[ -n "${FUZZ_REPORT:-}" ] && extra+=(--report junit --report-dir "$(realpath -m "$FUZZ_REPORT")")
status=0
# From the temporary directory: schemathesis keeps a cache (.schemathesis/) where it runs.
config=$PWD/scripts/schemathesis.toml
(cd "$work" && "$venv/bin/st" --config-file "$config" run "$url/api/v1/openapi.json" \
  --header "Authorization: Bearer $token" \
  --max-examples "${FUZZ_EXAMPLES:-20}" --workers "${FUZZ_WORKERS:-1}" --no-color "${extra[@]}") | tee "$work/st.log" || status=$?
if grep -q "panic\|level=ERROR" "$work/server.log"; then
  echo "== the server logged errors:"; grep -A20 "panic\|level=ERROR" "$work/server.log" | head -100
  status=1
fi
# A closing line in the plain form test reports read, from schemathesis' "Test cases:" line
# ("4785 generated, 4785 passed, 104 skipped" or "..., 2 found 2 unique failures, 1 errored, ...").
cases=$(grep -A1 '^Test cases:' "$work/st.log" | tail -1 || true)
n() { local v; v=$(grep -Eo "[0-9]+ $1" <<<"$cases" | tail -1 | cut -d' ' -f1 || true); echo "${v:-0}"; }
failed=$(( $(n 'unique failures?') + $(n errored) ))
[ "$status" = 0 ] || [ "$failed" -gt 0 ] || failed=1
echo "schemathesis: $(n passed) passed, $failed failed, $(n skipped) skipped"
exit $status
