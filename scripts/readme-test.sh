#!/usr/bin/env bash
# Follows README.md literally, as a new user on a fresh clone would: every ```sh block, and every
# ```python block, in the order they appear, in one shell (a variable a block sets is there for
# the next), from the root of a copy of this checkout (its tracked files and bin/atelier, which
# `make build` builds), against a real server started there on a free loopback port with its
# data in the copy's ./.atelier, as `make run` would.
#
# A block is skipped only when the line before it (blank lines aside) is a marker that says why:
#   <!-- readme-test: skip: make run holds the terminal; this test starts the server itself -->
#
# Python blocks run with the `python` of a virtual environment (cached under
# $ATELIER_TEST_CACHE, default ~/.cache/atelier-test/readme-venv) that is first on PATH while
# the blocks run, as an activated environment is: a block's `pip install` goes there. The blocks
# reach PyPI (the example's requirements, the SDK, mlflow).
#   README_TEST_KEEP=1  keep the copy (its path is printed) to look at after a failure
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
[ -x bin/atelier ] || { echo "readme-test: bin/atelier is missing: run make build first" >&2; exit 2; }

cache=${ATELIER_TEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/atelier-test}
venv=$cache/readme-venv
if [ ! -x "$venv/bin/python" ]; then
  mkdir -p "$cache"
  python3 -m venv "$venv"
fi

work=$(mktemp -d)
server=
cleanup() {
  if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  if [ -n "${README_TEST_KEEP:-}" ]; then echo "readme-test: kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

# A fresh clone: the tracked files as they are in this working tree (nothing ignored, no .atelier).
mkdir "$work/clone"
git ls-files -z | (tar --null -T - -cf - --ignore-failed-read 2>/dev/null || true) | tar -xf - -C "$work/clone"
mkdir -p "$work/clone/bin"
cp bin/atelier "$work/clone/bin/atelier"

# The README's blocks, as one script.
python3 - README.md >"$work/blocks.sh" <<'EOF'
import re, shlex, sys

path = sys.argv[1]
lines = open(path, encoding="utf-8").read().split("\n")
out = []
marker = None  # the reason of a skip marker waiting for its block
i = 0
while i < len(lines):
    line = lines[i]
    m = re.match(r"^<!--\s*readme-test:\s*skip\s*:?\s*(.*?)\s*-->\s*$", line)
    if m:
        if not m.group(1):
            sys.exit("%s:%d: a skip marker must say why" % (path, i + 1))
        marker = m.group(1)
        i += 1
        continue
    fence = re.match(r"^```(\w*)\s*$", line)
    if not fence:
        if line.strip():
            marker = None  # a marker applies to the block right after it only
        i += 1
        continue
    lang, start = fence.group(1), i + 1
    j = start
    while j < len(lines) and not lines[j].startswith("```"):
        j += 1
    body = lines[start:j]
    where = "%s:%d" % (path, start)
    if lang in ("sh", "bash", "shell", "python"):
        if marker:
            out.append("echo " + shlex.quote("== %s (%s) skipped: %s" % (where, lang, marker)))
        elif lang == "python":
            out.append("echo '== %s (python)'" % where)
            out.append("python - <<'ATELIER_README_PYTHON'")
            out.extend(body)
            out.append("ATELIER_README_PYTHON")
        else:
            out.append("echo '== %s (sh)'" % where)
            out.append("set -x")
            out.extend(body)
            out.append("{ set +x; } 2>/dev/null")
    elif marker:
        sys.exit("%s: a skip marker before a block that is not run (%s)" % (where, lang or "no language"))
    marker = None
    i = j + 1
print("\n".join(out))
EOF

# The server, as `make run` starts it, on a port of its own choosing (it writes the address it
# listens on to .atelier/server-url).
cd "$work/clone"
bin/atelier server --addr 127.0.0.1:0 >"$work/server.log" 2>&1 &
server=$!
for _ in $(seq 300); do
  [ -s .atelier/server-url ] && break
  kill -0 "$server" 2>/dev/null || { echo "readme-test: the server did not start:"; cat "$work/server.log"; exit 1; }
  sleep 0.1
done
[ -s .atelier/server-url ] || { echo "readme-test: the server wrote no address:"; cat "$work/server.log"; exit 1; }
echo "readme-test: server at $(cat .atelier/server-url), in $work/clone"

status=0
# A new terminal: nothing of the caller's atelier or MLflow settings, the venv activated.
env -u ATELIER_SERVER -u ATELIER_TOKEN -u ATELIER_WORKSPACE -u ATELIER_OUTPUT -u ATELIER_QUIET \
  -u ATELIER_CONFIG -u ATELIER_SOCKET -u MLFLOW_TRACKING_URI -u MLFLOW_TRACKING_TOKEN \
  -u MLFLOW_TRACKING_USERNAME -u MLFLOW_TRACKING_PASSWORD -u PYTHONPATH \
  VIRTUAL_ENV="$venv" PATH="$venv/bin:$PATH" PIP_DISABLE_PIP_VERSION_CHECK=1 \
  timeout "${README_TEST_TIMEOUT:-1800}" bash -eo pipefail "$work/blocks.sh" || status=$?
if [ "$status" != 0 ]; then
  echo "readme-test: FAILED (exit $status) in the block named last above; the server's log:"
  tail -50 "$work/server.log"
  exit 1
fi
if grep -q "panic\|level=ERROR" "$work/server.log"; then
  echo "readme-test: the server logged errors:"; grep -A20 "panic\|level=ERROR" "$work/server.log" | head -100
  exit 1
fi
echo "readme-test: ok, every block of $repo/README.md ran"
