// Package testdisk gives tests a small disk that fills: a tmpfs of a chosen size on a
// temporary directory (Linux, root), for the full-disk cases of every storage adapter.
package testdisk

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// MustSmall mounts a tmpfs of size (mount's size=, e.g. "1m") on a temporary directory,
// unmounted when the test ends, and returns the directory; it skips the test where no tmpfs
// can be mounted (not root, not Linux).
func MustSmall(tb testing.TB, size string) string {
	tb.Helper()
	dir := tb.TempDir()
	if err := mount(dir, size); err != nil {
		tb.Skipf("cannot mount a small tmpfs here (%v): the full-disk case needs root on Linux", err)
	}
	tb.Cleanup(func() { unmount(dir) })
	return dir
}

// Fill writes a file in dir until the disk is full, and returns its path.
func Fill(tb testing.TB, dir string) string {
	tb.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	for {
		if _, err := f.Write(buf); errors.Is(err, syscall.ENOSPC) {
			return path
		} else if err != nil {
			tb.Fatalf("filling the disk: %v", err)
		}
	}
}
