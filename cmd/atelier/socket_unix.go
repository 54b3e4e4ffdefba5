//go:build unix

package main

import (
	"os"
	"syscall"
)

// ownSocket reports whether path is a socket that belongs to this process's user.
func ownSocket(path string) bool {
	fi, err := os.Lstat(path)
	if err != nil || fi.Mode()&os.ModeSocket == 0 {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && int(st.Uid) == os.Getuid()
}
