//go:build !linux

package blob

import "os"

// createFile creates a new file for writing; direct I/O is used on Linux only.
func createFile(name string) (*os.File, bool, error) {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o666)
	return f, false, err
}

func clearDirect(*os.File) error { return nil }
