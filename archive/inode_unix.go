//go:build unix

package archive

import (
	"io/fs"
	"syscall"
)

// inode tells a file replaced by another (same size and time, e.g. restored from a backup) from
// the original.
func inode(fi fs.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Ino)
	}
	return 0
}
