package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/atelier-ml/atelier"
)

// appendOnFirstRead appends to a file after its first read, as a program still writing it.
type appendOnFirstRead struct {
	r    io.Reader
	path string
	done bool
}

func (a *appendOnFirstRead) Read(p []byte) (int, error) {
	n, err := a.r.Read(p)
	if !a.done {
		a.done = true
		f, ferr := os.OpenFile(a.path, os.O_APPEND|os.O_WRONLY, 0)
		if ferr != nil {
			return n, ferr
		}
		f.Write([]byte("more lines\n"))
		f.Close()
	}
	return n, err
}

// A file that changes while it is uploaded is refused, and nothing is stored under its name.
func TestUploadOfChangingFile(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the real binary")
	}
	srv := startServer(t, t.TempDir(), freeAddr(t))
	path := filepath.Join(t.TempDir(), "growing.log")
	if err := os.WriteFile(path, bytes.Repeat([]byte("a line\n"), 300000), 0o644); err != nil {
		t.Fatal(err)
	}
	fh, err := openUnchanging(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	_, err = srv.client.WriteDatastoreFile(t.Context(), "default", "default", "logs/growing.log", &appendOnFirstRead{r: fh, path: path}, "", "")
	if err == nil || fh.err == nil || !strings.Contains(fh.err.Error(), "changed while it was uploaded") {
		t.Fatalf("upload of a changing file: %v (reader: %v), want it refused", err, fh.err)
	}
	page, err := srv.client.ListDatastoreFiles(t.Context(), "default", "default", atelier.DatastoreFileQuery{Recursive: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Files) != 0 {
		t.Errorf("after the refused upload the datastore holds %v", page.Files[0].Path)
	}

	// Unchanged, the same file goes up.
	fh2, err := openUnchanging(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh2.Close()
	if _, err := srv.client.WriteDatastoreFile(t.Context(), "default", "default", "logs/growing.log", fh2, "", ""); err != nil || fh2.err != nil {
		t.Fatalf("upload of an unchanged file: %v, %v", err, fh2.err)
	}
}
