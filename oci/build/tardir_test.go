package build

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// TestTarDir: a folder (an OCI layout) tars as its files and folders, names relative to it.
func TestTarDir(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "blobs", "sha256"), 0o755)
	os.WriteFile(filepath.Join(dir, "index.json"), []byte("{}"), 0o644)
	os.WriteFile(filepath.Join(dir, "blobs", "sha256", "ab"), []byte("layer"), 0o644)
	var buf bytes.Buffer
	if err := TarDir(&buf, dir); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	tr := tar.NewReader(&buf)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		got[h.Name] = string(b)
	}
	want := map[string]string{"blobs/": "", "blobs/sha256/": "", "blobs/sha256/ab": "layer", "index.json": "{}"}
	if len(got) != len(want) {
		t.Fatalf("tar holds %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
}
