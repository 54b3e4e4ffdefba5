"""Checks, without running it, that an entry script defines init() and run(raw).

Reads the script on stdin; prints nothing and exits 0 when it is fine, else prints why and exits 1.
"""

import ast
import sys

source = sys.stdin.read()
try:
    tree = ast.parse(source)
except SyntaxError as exc:
    print("syntax error at line %s: %s" % (exc.lineno, exc.msg))
    sys.exit(1)
found = {}
for node in tree.body:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        found[node.name] = node
missing = [name for name in ("init", "run") if name not in found]
if missing:
    print("it defines no top-level %s()" % " or ".join(missing))
    sys.exit(1)
args = found["run"].args
if not (args.args or args.vararg or args.posonlyargs):
    print("its run() takes no argument: it is called as run(raw_json)")
    sys.exit(1)
