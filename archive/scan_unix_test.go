//go:build unix

package archive

import (
	"path/filepath"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// A pipe in the source directory is skipped: reading it would block the scan forever.
func TestScanSkipsSpecialFiles(t *testing.T) {
	dir := t.TempDir()
	MustWriteTree(t, dir, map[string]string{"a.py": "a"})
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o644); err != nil {
		t.Skip("no fifos here:", err)
	}
	if diff := cmp.Diff([]string{"a.py"}, MustScanPaths(t, dir, Options{})); diff != "" {
		t.Errorf("paths (-want +got):\n%s", diff)
	}
}
