"""A gitignore-style matcher for snapshot uploads (.amlignore, else .gitignore).

Supports comments, blank lines, negation (!), directory-only patterns (trailing /), anchored
patterns (a / at the start or in the middle), *, ?, [...] classes, and ** (leading **/,
trailing /**, and /**/ in the middle). Patterns of an ignore file are relative to its
directory; deeper files override shallower ones, and within a file the last match wins.
"""

import os
import re

__all__ = ["IgnoreRules", "Pattern", "walk"]


def _translate(glob):
    """Turns a gitignore glob (without leading/trailing slashes) into a regex source."""
    out = []
    i, n = 0, len(glob)
    while i < n:
        c = glob[i]
        if c == "*":
            if glob.startswith("**", i):
                # "**/" at the start or after "/": zero or more directories.
                at_seg_start = i == 0 or glob[i - 1] == "/"
                j = i + 2
                if at_seg_start and j < n and glob[j] == "/":
                    out.append("(?:.*/)?")
                    i = j + 1
                    continue
                if at_seg_start and j == n:
                    out.append(".*")
                    i = j
                    continue
                out.append("[^/]*")  # "**" inside a name acts like "*"
                i = j
                continue
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            j = i + 1
            if j < n and glob[j] in "!^":
                j += 1
            if j < n and glob[j] == "]":
                j += 1
            while j < n and glob[j] != "]":
                j += 1
            if j >= n:
                out.append(re.escape(c))
            else:
                body = glob[i + 1:j]
                if body[:1] in ("!", "^"):
                    body = "^" + body[1:]
                body = body.replace("\\", "\\\\")
                out.append("(?!/)[" + body + "]")
                i = j
        elif c == "\\" and i + 1 < n:
            i += 1
            out.append(re.escape(glob[i]))
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


class Pattern:
    """One line of an ignore file."""

    def __init__(self, line):
        self.source = line
        self.negate = False
        self.dir_only = False
        if line.startswith("!"):
            self.negate = True
            line = line[1:]
        elif line.startswith("\\!") or line.startswith("\\#"):
            line = line[1:]
        if line.endswith("/"):
            self.dir_only = True
            line = line.rstrip("/")
        anchored = "/" in line
        line = line.lstrip("/")
        src = _translate(line)
        if not anchored:
            src = "(?:.*/)?" + src
        self.regex = re.compile("^" + src + "$", re.DOTALL)

    def matches(self, rel, is_dir):
        if self.dir_only and not is_dir:
            return False
        return self.regex.match(rel) is not None

    def __repr__(self):
        return "Pattern(%r)" % self.source


def parse_lines(text):
    pats = []
    for raw in text.splitlines():
        line = raw.rstrip("\r")
        if not line.strip() or line.startswith("#"):
            continue
        # Trailing spaces are ignored unless escaped with a backslash.
        stripped = line.rstrip(" ")
        if stripped.endswith("\\") and len(stripped) < len(line):
            stripped += " "
        if not stripped or stripped == "!":
            continue
        pats.append(Pattern(stripped))
    return pats


class IgnoreRules:
    """The patterns in force in one directory: a list of (base, patterns) from shallow to deep."""

    def __init__(self, layers=()):
        self.layers = list(layers)

    def extended(self, base, text):
        pats = parse_lines(text)
        if not pats:
            return self
        return IgnoreRules(self.layers + [(base, pats)])

    def ignored(self, rel, is_dir):
        """rel is the slash-separated path from the source root."""
        result = False
        for base, pats in self.layers:
            if base:
                if not rel.startswith(base + "/"):
                    continue
                sub = rel[len(base) + 1:]
            else:
                sub = rel
            for p in pats:
                if p.matches(sub, is_dir):
                    result = not p.negate
        return result


def walk(root, ignore_name=None):
    """Yields (relative slash path, absolute path) of every file under root that the ignore
    files do not exclude, in sorted order. .git is always skipped. ignore_name is the ignore
    file to honour; by default .amlignore when the root has one, else .gitignore."""
    root = os.path.abspath(root)
    if ignore_name is None:
        ignore_name = ".amlignore" if os.path.isfile(os.path.join(root, ".amlignore")) else ".gitignore"
    seen = set()

    def visit(dir_abs, dir_rel, rules):
        real = os.path.realpath(dir_abs)
        if real in seen:  # a symlink loop
            return
        seen.add(real)
        ign = os.path.join(dir_abs, ignore_name)
        if os.path.isfile(ign):
            with open(ign, encoding="utf-8", errors="replace") as f:
                rules = rules.extended(dir_rel, f.read())
        try:
            names = sorted(os.listdir(dir_abs))
        except OSError:
            return
        for name in names:
            if name == ".git":
                continue
            abs_p = os.path.join(dir_abs, name)
            rel = dir_rel + "/" + name if dir_rel else name
            is_dir = os.path.isdir(abs_p)
            if rules.ignored(rel, is_dir):
                continue
            if is_dir:
                yield from visit(abs_p, rel, rules)
            elif os.path.isfile(abs_p):
                yield rel, abs_p

    yield from visit(root, "", IgnoreRules())
