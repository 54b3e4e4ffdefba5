//go:build unix

package main

import (
	"bytes"
	"os"
	"syscall"
)

// ownSocket reports whether path is a socket that belongs to this process's user, and that
// this process may use: the server turns away the processes of runs (no_new_privs).
func ownSocket(path string) bool {
	if status, err := os.ReadFile("/proc/self/status"); err == nil && bytes.Contains(status, []byte("\nNoNewPrivs:\t1\n")) {
		return false
	}
	fi, err := os.Lstat(path)
	if err != nil || fi.Mode()&os.ModeSocket == 0 {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && int(st.Uid) == os.Getuid()
}
