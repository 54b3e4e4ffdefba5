package archive

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/atelier-ml/atelier"
	"github.com/google/go-cmp/cmp"
)

// maliciousZips are refused whole, naming the bad entry; "ok.txt" comes first to show that
// nothing is handed over before every entry is checked.
var maliciousZips = []struct {
	name    string
	entries []zipEntry
	bad     string // the entry the error names
}{
	{"parent", []zipEntry{{name: "ok.txt"}, {name: "../evil", data: "x"}}, "../evil"},
	{"absolute", []zipEntry{{name: "ok.txt"}, {name: "/abs", data: "x"}}, "/abs"},
	{"escape in the middle", []zipEntry{{name: "ok.txt"}, {name: "a/../../b", data: "x"}}, "a/../../b"},
	{"drive letter backslash", []zipEntry{{name: "ok.txt"}, {name: `C:\x`, data: "x"}}, `C:\x`},
	{"drive letter slash", []zipEntry{{name: "ok.txt"}, {name: "C:/x", data: "x"}}, "C:/x"},
	{"backslash escape", []zipEntry{{name: "ok.txt"}, {name: `a\..\..\b`, data: "x"}}, `a\..\..\b`},
	{"dot", []zipEntry{{name: "ok.txt"}, {name: "./a", data: "x"}}, "./a"},
	{"empty name", []zipEntry{{name: "ok.txt"}, {name: "", data: "x"}}, `""`},
	{"NUL", []zipEntry{{name: "ok.txt"}, {name: "a\x00b", data: "x"}}, "a\x00b"},
	{"parent directory entry", []zipEntry{{name: "ok.txt"}, {name: "../", mode: fs.ModeDir | 0o755}}, "../"},
	{"symlink", []zipEntry{{name: "ok.txt"}, {name: "link", data: "/etc/passwd", mode: fs.ModeSymlink | 0o777}}, "link"},
	{"device", []zipEntry{{name: "ok.txt"}, {name: "dev", mode: fs.ModeDevice | 0o644}}, "dev"},
	{"duplicate", []zipEntry{{name: "ok.txt"}, {name: "ok.txt", data: "again"}}, "ok.txt"},
	{"file and directory", []zipEntry{{name: "ok.txt"}, {name: "ok.txt/inner", data: "x"}}, "ok.txt"},
}

func TestReadZipRefuses(t *testing.T) {
	for _, tt := range maliciousZips {
		t.Run(tt.name, func(t *testing.T) {
			z := MustZip(t, tt.entries...)
			err := ReadZip(bytes.NewReader(z), int64(len(z)), Options{}, func(p string, _ bool, _ io.Reader) error {
				t.Errorf("each called for %q before the zip was checked", p)
				return nil
			})
			want := strconv.Quote(tt.bad)
			if tt.bad == `""` {
				want = tt.bad
			}
			wantInvalid(t, err, want)
		})
	}
}

func TestExtractZipRefuses(t *testing.T) {
	for _, tt := range maliciousZips {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			zipPath := MustWriteFile(t, "evil.zip", MustZip(t, tt.entries...))
			dest := filepath.Join(root, "a", "dest")
			wantInvalid(t, ExtractZip(zipPath, dest, Options{}))
			if got := ReadTree(t, root); len(got) != 0 {
				t.Errorf("files written: %v", got)
			}
		})
	}
}

func TestReadZip(t *testing.T) {
	z := MustZip(t,
		zipEntry{name: "src/", mode: fs.ModeDir | 0o755},
		zipEntry{name: "src/train.py", data: "print(1)", mode: 0o755},
		zipEntry{name: "README", data: "hello"},
		zipEntry{name: "empty"},
	)
	type got struct {
		Path string
		Exec bool
		Data string
	}
	var gots []got
	err := ReadZip(bytes.NewReader(z), int64(len(z)), Options{}, func(p string, x bool, r io.Reader) error {
		data, err := io.ReadAll(r)
		gots = append(gots, got{p, x, string(data)})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []got{{"src/train.py", true, "print(1)"}, {"README", false, "hello"}, {"empty", false, ""}}
	if diff := cmp.Diff(want, gots); diff != "" {
		t.Errorf("entries (-want +got):\n%s", diff)
	}

	// An error of the callback comes back as is.
	boom := errors.New("store down")
	err = ReadZip(bytes.NewReader(z), int64(len(z)), Options{}, func(string, bool, io.Reader) error { return boom })
	if err != boom {
		t.Errorf("got %v, want the callback's error", err)
	}
}

func TestReadZipLimits(t *testing.T) {
	big := strings.Repeat("0", 1<<20)
	tests := []struct {
		name    string
		opt     Options
		entries []zipEntry
		want    []string
	}{
		{"too many files", Options{MaxFiles: 2}, []zipEntry{{name: "a/1"}, {name: "a/2"}, {name: "b"}}, []string{"3 files, over the limit of 2", "a/  2 files"}},
		{"declared too big", Options{MaxBytes: 1000}, []zipEntry{{name: "small", data: "x"}, {name: "big", data: big}}, []string{"over the limit of 1000 B", "big  1.0 MiB"}},
		// 1 MiB of zeros deflates to about 1 KiB; the headers claim 10 bytes.
		{"bomb past its header", Options{}, []zipEntry{{name: "bomb", data: big, declared: 10}}, []string{`"bomb" is corrupt or holds more data than its header declares`}},
		{"bomb past the limit", Options{MaxBytes: 1000}, []zipEntry{{name: "bomb", data: big, declared: 999}}, []string{`"bomb"`}},
		{"declared near 2^64", Options{}, []zipEntry{{name: "a", data: "x", declared: 1 << 63}, {name: "b", data: "x", declared: 1 << 63}}, []string{"over the limit"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			z := MustZip(t, tt.entries...)
			var read int64
			err := ReadZip(bytes.NewReader(z), int64(len(z)), tt.opt, func(_ string, _ bool, r io.Reader) error {
				n, err := io.Copy(io.Discard, r)
				read += n
				return err
			})
			wantInvalid(t, err, tt.want...)
			if read > 1000 && tt.opt.MaxBytes == 1000 {
				t.Errorf("%d bytes got through a limit of 1000", read)
			}
		})
	}
}

func TestReadZipCorrupt(t *testing.T) {
	z := MustZip(t, zipEntry{name: "a.txt", data: strings.Repeat("hello ", 1000)})
	corrupt := bytes.Clone(z)
	corrupt[60] ^= 0xff // inside the deflated data
	for name, data := range map[string][]byte{"not a zip": []byte("hello"), "empty": nil, "corrupt data": corrupt, "truncated": z[:len(z)/2]} {
		t.Run(name, func(t *testing.T) {
			err := ReadZip(bytes.NewReader(data), int64(len(data)), Options{}, func(_ string, _ bool, r io.Reader) error {
				_, err := io.Copy(io.Discard, r)
				return err
			})
			wantInvalid(t, err)
		})
	}
}

// A failing disk is not the uploader's fault: its error comes back as is, not as EINVALID.
func TestReadZipReaderError(t *testing.T) {
	z := MustZip(t, zipEntry{name: "a.txt", data: "a"})
	f, err := os.Open(MustWriteFile(t, "a.zip", z))
	if err != nil {
		t.Fatal(err)
	}
	f.Close() // every ReadAt now fails
	err = ReadZip(f, int64(len(z)), Options{}, func(string, bool, io.Reader) error { return nil })
	if !errors.Is(err, os.ErrClosed) {
		t.Errorf("got %v, want the reader's error", err)
	}
}

func FuzzReadZip(f *testing.F) {
	f.Add(MustZip(f, zipEntry{name: "a/b.txt", data: "hello"}, zipEntry{name: "x", data: "#!", mode: 0o755}))
	f.Add(MustZip(f, zipEntry{name: "d/", mode: fs.ModeDir | 0o755}, zipEntry{name: "d/e", data: strings.Repeat("e", 300)}))
	f.Add(MustZip(f, zipEntry{name: "bomb", data: strings.Repeat("0", 5000), declared: 10}))
	for _, m := range maliciousZips {
		f.Add(MustZip(f, m.entries...))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		err := ReadZip(bytes.NewReader(data), int64(len(data)), Options{MaxBytes: 1 << 20, MaxFiles: 100}, func(p string, _ bool, r io.Reader) error {
			if err := atelier.ValidatePath(p); err != nil {
				t.Fatalf("each called with an invalid path: %v", err)
			}
			_, err := io.Copy(io.Discard, r)
			return err
		})
		if err != nil && atelier.ErrorCode(err) != atelier.EINVALID {
			t.Fatalf("got %v, want nil or EINVALID", err)
		}
	})
}
