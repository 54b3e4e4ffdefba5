package archive

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestPatternMatch(t *testing.T) {
	tests := []struct {
		pattern string
		path    string
		isDir   bool
		want    bool
	}{
		{"*.log", "a.log", false, true},
		{"*.log", "deep/er/a.log", false, true},
		{"*.log", "a.logx", false, false},
		{"node_modules", "node_modules", true, true},
		{"node_modules", "web/node_modules", true, true},
		{"node_modules", "my_node_modules", true, false},
		{"build/", "build", true, true},
		{"build/", "build", false, false}, // dir-only
		{"build/", "src/build", true, true},
		{"/root.txt", "root.txt", false, true},
		{"/root.txt", "sub/root.txt", false, false}, // anchored
		{"docs/*.md", "docs/a.md", false, true},
		{"docs/*.md", "x/docs/a.md", false, false},   // a middle slash anchors too
		{"docs/*.md", "docs/sub/a.md", false, false}, // * stops at /
		{"**/cache", "cache", true, true},
		{"**/cache", "a/b/cache", true, true},
		{"**/cache/x", "a/cache/x", false, true},
		{"a/**/b", "a/b", false, true},
		{"a/**/b", "a/x/y/b", false, true},
		{"a/**/b", "c/a/x/b", false, false},
		{"out/**", "out/x", false, true},
		{"out/**", "out/x/y", false, true},
		{"out/**", "out", true, false},
		{"**", "anything/at/all", false, true},
		{"a**b", "axxb", false, true},
		{"a**b", "ax/xb", false, false}, // not delimited by slashes: a single star
		{"?.py", "a.py", false, true},
		{"?.py", "ab.py", false, false},
		{"file[0-9].txt", "file7.txt", false, true},
		{"file[0-9].txt", "filex.txt", false, false},
		{"file[!0-9].txt", "filex.txt", false, true},
		{"file[!0-9].txt", "file7.txt", false, false},
		{"file[^0-9].txt", "filex.txt", false, true},
		{"[[:upper:]]*", "README", false, true},
		{"[[:upper:]]*", "readme", false, false},
		{"[]]x", "]x", false, true},
		{"a[/x]b", "a/b", false, false}, // a class never matches a separator
		{"a[/x]b", "axb", false, true},
		{"data[", "data[", false, true}, // unterminated bracket: literal
		{`\#notcomment`, "#notcomment", false, true},
		{`\!bang`, "!bang", false, true},
		{`trail\ `, "trail ", false, true},
		{"trail   ", "trail", false, true},
		{`\*star`, "*star", false, true},
		{`\*star`, "xstar", false, false},
		{"a.b", "axb", false, false}, // regexp metacharacters are literal
		{"(x)+", "(x)+", false, true},
		{"*.PY", "a.py", false, false}, // case-sensitive, like git on Linux
		{"*.ckpt\r\n", "m.ckpt", false, true},
		{"!*.log", "a.log", false, true}, // matches; the caller negates
	}
	for _, tt := range tests {
		t.Run(tt.pattern+"~"+tt.path, func(t *testing.T) {
			p, ok := parsePattern(tt.pattern)
			if !ok {
				t.Fatalf("pattern %q did not parse", tt.pattern)
			}
			if got := p.match(tt.path, tt.isDir); got != tt.want {
				t.Errorf("%q matches %q (dir %v) = %v, want %v (re %v)", tt.pattern, tt.path, tt.isDir, got, tt.want, p.re)
			}
		})
	}
}

func TestParsePatternSkips(t *testing.T) {
	for _, line := range []string{"", "   ", "# comment", "#*.log", "/", "!", "[z-a]", "a[/]b"} {
		if _, ok := parsePattern(line); ok {
			t.Errorf("parsePattern(%q) gave a pattern, want none", line)
		}
	}
}

func TestScanIgnore(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		want  []string
	}{{
		name:  "extension at any depth",
		files: map[string]string{".gitignore": "*.log\n", "a.log": "", "x/b.log": "", "x/b.py": ""},
		want:  []string{".gitignore", "x/b.py"},
	}, {
		name:  "negation",
		files: map[string]string{".gitignore": "*.log\n!keep.log\n", "a.log": "", "keep.log": "", "x/keep.log": ""},
		want:  []string{".gitignore", "keep.log", "x/keep.log"},
	}, {
		name:  "later pattern wins",
		files: map[string]string{".gitignore": "!keep.log\n*.log\n", "keep.log": ""},
		want:  []string{".gitignore"},
	}, {
		name:  "dir only",
		files: map[string]string{".gitignore": "build/\n", "build/x": "", "src/build": "file named build", "src/build2/y": ""},
		want:  []string{".gitignore", "src/build", "src/build2/y"},
	}, {
		name:  "anchored",
		files: map[string]string{".gitignore": "/data\n", "data/a": "", "src/data/b": ""},
		want:  []string{".gitignore", "src/data/b"},
	}, {
		name:  "double star",
		files: map[string]string{".gitignore": "**/__pycache__/\nlogs/**/*.txt\n", "__pycache__/a.pyc": "", "m/n/__pycache__/b.pyc": "", "logs/a.txt": "", "logs/d/e/b.txt": "", "logs/c.csv": ""},
		want:  []string{".gitignore", "logs/c.csv"},
	}, {
		name: "nested file is relative to its directory",
		files: map[string]string{
			"sub/.gitignore": "/x\ny/*.tmp\n", "x": "", "sub/x": "", "sub/deeper/x": "",
			"sub/y/a.tmp": "", "y/a.tmp": "",
		},
		want: []string{"sub/.gitignore", "sub/deeper/x", "x", "y/a.tmp"},
	}, {
		name:  "nested file overrides the root",
		files: map[string]string{".gitignore": "*.txt\n", "a.txt": "", "sub/.gitignore": "!keep.txt\n", "sub/keep.txt": "", "sub/other.txt": "", "keep.txt": ""},
		want:  []string{".gitignore", "sub/.gitignore", "sub/keep.txt"},
	}, {
		name:  "no re-include under an ignored directory",
		files: map[string]string{".gitignore": "logs/\n!logs/keep.txt\n", "logs/keep.txt": "", "logs/.gitignore": "!keep.txt\n"},
		want:  []string{".gitignore"},
	}, {
		name:  "re-include through the contents of a directory",
		files: map[string]string{".gitignore": "/*\n!/src/\n/src/*\n!/src/main.py\n", "README": "", "src/main.py": "", "src/other.py": ""},
		want:  []string{"src/main.py"},
	}, {
		name:  "comments blank lines and escapes",
		files: map[string]string{".gitignore": "# *.py\n\n\\#hash\n\\!bang\n", "a.py": "", "#hash": "", "!bang": ""},
		want:  []string{".gitignore", "a.py"},
	}, {
		name:  ".git is always skipped",
		files: map[string]string{".git/HEAD": "ref", "sub/.git": "gitdir: ../.git/modules/sub", "sub/a": "", ".gitkeep": ""},
		want:  []string{".gitkeep", "sub/a"},
	}, {
		name: ".amlignore takes precedence over .gitignore",
		files: map[string]string{
			".amlignore": "data/\n", ".gitignore": "*.py\nmodels/\n", "data/x": "", "a.py": "",
			"models/m.pt": "", "sub/.gitignore": "*\n", "sub/b.py": "",
		},
		want: []string{".amlignore", ".gitignore", "a.py", "models/m.pt", "sub/.gitignore", "sub/b.py"},
	}, {
		name:  "nested .amlignore",
		files: map[string]string{".amlignore": "", "sub/.amlignore": "*.bin\n", "sub/a.bin": "", "a.bin": ""},
		want:  []string{".amlignore", "a.bin", "sub/.amlignore"},
	}, {
		name:  "nested .amlignore is not read without a root one",
		files: map[string]string{"sub/.amlignore": "*.bin\n", "sub/a.bin": ""},
		want:  []string{"sub/.amlignore", "sub/a.bin"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			MustWriteTree(t, dir, tt.files)
			got := MustScanPaths(t, dir, Options{})
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("scanned paths (-want +got):\n%s", diff)
			}
		})
	}
}
