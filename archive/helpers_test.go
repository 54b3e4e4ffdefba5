package archive

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/atelier-ml/atelier"
)

// MustWriteTree writes files (slash path → content) under dir. A path ending in "/" makes an
// empty directory; a content starting with "#!" makes an executable.
func MustWriteTree(tb testing.TB, dir string, files map[string]string) {
	tb.Helper()
	for p, content := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if strings.HasSuffix(p, "/") {
			if err := os.MkdirAll(full, 0o755); err != nil {
				tb.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			tb.Fatal(err)
		}
		perm := fs.FileMode(0o644)
		if strings.HasPrefix(content, "#!") {
			perm = 0o755
		}
		if err := os.WriteFile(full, []byte(content), perm); err != nil {
			tb.Fatal(err)
		}
	}
}

// MustScanPaths scans dir and returns the snapshot paths.
func MustScanPaths(tb testing.TB, dir string, opt Options) []string {
	tb.Helper()
	files, err := Scan(tb.Context(), dir, opt)
	if err != nil {
		tb.Fatal(err)
	}
	paths := []string{}
	for _, f := range files {
		paths = append(paths, f.Path)
	}
	return paths
}

// ReadTree returns the files under dir as slash path → content, with "#x " prefixed to the
// content of executables.
func ReadTree(tb testing.TB, dir string) map[string]string {
	tb.Helper()
	tree := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		content := string(data)
		if info.Mode()&0o111 != 0 {
			content = "#x " + content
		}
		tree[filepath.ToSlash(rel)] = content
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return tree
}

// zipEntry is an entry of a zip built by MustZip; anything goes, malicious names included.
type zipEntry struct {
	name string
	data string
	mode fs.FileMode // 0 means 0644
	// declared, when set, is the uncompressed size written in the headers whatever the data.
	declared uint64
}

func MustZip(tb testing.TB, entries ...zipEntry) []byte {
	tb.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range entries {
		fh := &zip.FileHeader{Name: e.name, Method: zip.Deflate}
		m := e.mode
		if m == 0 {
			m = 0o644
		}
		fh.SetMode(m)
		var w io.Writer
		var err error
		if e.declared != 0 {
			// Write the compressed bytes ourselves so the header can lie about the size.
			var comp bytes.Buffer
			fw, _ := flate.NewWriter(&comp, flate.DefaultCompression)
			io.WriteString(fw, e.data)
			fw.Close()
			fh.UncompressedSize64, fh.CompressedSize64 = e.declared, uint64(comp.Len())
			w, err = zw.CreateRaw(fh)
			if err == nil {
				_, err = w.Write(comp.Bytes())
			}
		} else {
			w, err = zw.CreateHeader(fh)
			if err == nil {
				_, err = io.WriteString(w, e.data)
			}
		}
		if err != nil {
			tb.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// MustWriteFile writes data to a new file in a temporary directory and returns its path.
func MustWriteFile(tb testing.TB, name string, data []byte) string {
	tb.Helper()
	p := filepath.Join(tb.TempDir(), name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		tb.Fatal(err)
	}
	return p
}

// wantInvalid fails unless err is EINVALID and its message holds all of want.
func wantInvalid(tb testing.TB, err error, want ...string) {
	tb.Helper()
	if code := atelier.ErrorCode(err); code != atelier.EINVALID {
		tb.Fatalf("got error %v (code %q), want EINVALID", err, code)
	}
	for _, w := range want {
		if msg := atelier.ErrorMessage(err); !strings.Contains(msg, w) {
			tb.Errorf("error message %q does not mention %q", msg, w)
		}
	}
}
