package datastore

import (
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/atelier-ml/atelier"
)

// A local file that changes after a write took it (grows, shrinks, is rewritten in place) fails
// the read at its end, before the write commits.
func TestLocalFileChanged(t *testing.T) {
	for name, change := range map[string]func(path string) error{
		"grown": func(path string) error {
			f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = f.Write([]byte("more"))
			return err
		},
		"shrunk": func(path string) error { return os.Truncate(path, 10) },
		"rewritten": func(path string) error {
			f, err := os.OpenFile(path, os.O_WRONLY, 0)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = f.WriteAt([]byte("X"), 5)
			return err
		},
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "f")
			if err := os.WriteFile(path, make([]byte, 1<<20), 0o644); err != nil {
				t.Fatal(err)
			}
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			lf, err := newLocalFile(t.Context(), f, "lake", "f")
			if err != nil {
				t.Fatal(err)
			}
			if err := change(path); err != nil {
				t.Fatal(err)
			}
			_, err = io.ReadAll(lf)
			if atelier.ErrorCode(err) != atelier.EINVALID {
				t.Errorf("reading a %s file: %v, want it refused", name, err)
			}
			// And the kernel's copy into a folder's file.
			dst, err := os.Create(filepath.Join(t.TempDir(), "dst"))
			if err != nil {
				t.Fatal(err)
			}
			defer dst.Close()
			if _, readErr, writeErr := copyToFile(dst, lf); atelier.ErrorCode(readErr) != atelier.EINVALID || writeErr != nil {
				t.Errorf("copying a %s file: %v, %v; want it refused", name, readErr, writeErr)
			}
		})
	}
}
