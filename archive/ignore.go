package archive

import (
	"bytes"
	"regexp"
	"strings"
)

// ignoreFile holds the patterns of one .gitignore or .amlignore; they apply below its directory.
type ignoreFile struct {
	base     string // slash path of its directory relative to the scanned root, "" for the root
	patterns []pattern
}

// pattern is one line of an ignore file, with gitignore semantics.
type pattern struct {
	negate  bool
	dirOnly bool
	// literal is set for a plain name that matches at any depth, the most common pattern
	// (node_modules, __pycache__), so it needs no regexp.
	literal string
	re      *regexp.Regexp
}

func parseIgnore(base string, data []byte) *ignoreFile {
	f := &ignoreFile{base: base}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")) // editors on Windows add a BOM
	for line := range strings.Lines(string(data)) {
		if p, ok := parsePattern(line); ok {
			f.patterns = append(f.patterns, p)
		}
	}
	return f
}

// parsePattern compiles a gitignore line; ok is false for blank lines, comments and patterns
// that cannot match anything (a malformed bracket range).
func parsePattern(line string) (p pattern, ok bool) {
	line = strings.TrimRight(line, "\r\n")
	// Trailing spaces are dropped unless escaped with a backslash.
	for strings.HasSuffix(line, " ") && !strings.HasSuffix(line, `\ `) {
		line = line[:len(line)-1]
	}
	if line == "" || line[0] == '#' {
		return p, false
	}
	if line[0] == '!' {
		p.negate, line = true, line[1:]
	}
	if strings.HasSuffix(line, "/") {
		p.dirOnly, line = true, strings.TrimRight(line, "/")
	}
	// A slash at the start or in the middle anchors the pattern to the ignore file's directory;
	// otherwise it matches at any depth.
	anchored := strings.Contains(line, "/")
	line = strings.TrimPrefix(line, "/")
	if line == "" {
		return p, false
	}
	if !anchored && !strings.ContainsAny(line, `*?[\`) {
		p.literal = line
		return p, true
	}
	var re strings.Builder
	re.WriteString("^")
	if !anchored {
		re.WriteString("(?:.*/)?")
	}
	for i := 0; i < len(line); {
		c := line[i]
		switch {
		case strings.HasPrefix(line[i:], "**") && (i == 0 || line[i-1] == '/') && (i+2 == len(line) || line[i+2] == '/'):
			if i+2 == len(line) {
				re.WriteString(".*") // "dir/**": everything inside
				i += 2
			} else {
				re.WriteString("(?:.*/)?") // "**/": zero or more directories
				i += 3
			}
		case c == '*':
			for i < len(line) && line[i] == '*' {
				i++ // other runs of stars are a single star
			}
			re.WriteString("[^/]*")
		case c == '?':
			re.WriteString("[^/]")
			i++
		case c == '[':
			class, n := bracket(line[i:])
			if n == 0 {
				re.WriteString(`\[`) // unterminated: a literal bracket
				i++
			} else {
				re.WriteString(class)
				i += n
			}
		case c == '\\' && i+1 < len(line):
			re.WriteString(regexp.QuoteMeta(line[i+1 : i+2]))
			i += 2
		default:
			re.WriteString(regexp.QuoteMeta(line[i : i+1]))
			i++
		}
	}
	re.WriteString("$")
	rx, err := regexp.Compile(re.String())
	if err != nil {
		return p, false
	}
	p.re = rx
	return p, true
}

// bracket translates the class at the start of s ("[a-z]", "[!0-9]", "[[:alpha:]]") into a
// regexp class that never matches '/', and returns how many bytes of s it used (0 if unterminated).
func bracket(s string) (string, int) {
	var b strings.Builder
	b.WriteString("[")
	i := 1
	if i < len(s) && (s[i] == '!' || s[i] == '^') {
		b.WriteString("^/")
		i++
	}
	for first := true; i < len(s); first = false {
		c := s[i]
		switch {
		case c == ']' && !first:
			b.WriteString("]")
			return b.String(), i + 1
		case c == '[' && strings.HasPrefix(s[i:], "[:"):
			end := strings.Index(s[i+2:], ":]")
			if end < 0 {
				return "", 0
			}
			b.WriteString(s[i : i+2+end+2]) // POSIX classes mean the same in Go's regexp
			i += 2 + end + 2
		case c == '\\' && i+1 < len(s):
			b.WriteString(regexp.QuoteMeta(s[i+1 : i+2]))
			i += 2
		case c == '-':
			b.WriteByte('-')
			i++
		case c == '/':
			i++ // a class never matches a separator
		case c < 0x80 && !isAlnum(c):
			b.WriteByte('\\')
			b.WriteByte(c)
			i++
		default:
			b.WriteByte(c)
			i++
		}
	}
	return "", 0
}

func isAlnum(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

func (p *pattern) match(rel string, isDir bool) bool {
	if p.dirOnly && !isDir {
		return false
	}
	if p.literal != "" {
		return rel == p.literal || strings.HasSuffix(rel, "/"+p.literal)
	}
	return p.re.MatchString(rel)
}

// ignored reports whether the slash path rel (relative to the scanned root) is ignored by the
// stack of ignore files from the root down to rel's directory. As in git, the last matching
// pattern wins and deeper files come last. The walk never enters an ignored directory, which is
// why a file inside one cannot be re-included.
func ignored(stack []*ignoreFile, rel string, isDir bool) bool {
	ign := false
	for _, f := range stack {
		sub := rel
		if f.base != "" {
			sub = strings.TrimPrefix(rel, f.base+"/")
		}
		for i := range f.patterns {
			// Only a pattern that would flip the answer is worth matching.
			if p := &f.patterns[i]; p.negate == ign && p.match(sub, isDir) {
				ign = !p.negate
			}
		}
	}
	return ign
}
