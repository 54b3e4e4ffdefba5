package blob

import (
	"os"
	"syscall"
)

// createFile creates a new file for writing, with O_DIRECT when the file system supports it
// (tmpfs, for one, does not).
func createFile(name string) (f *os.File, direct bool, err error) {
	const flags = os.O_WRONLY | os.O_CREATE | os.O_EXCL
	f, err = os.OpenFile(name, flags|syscall.O_DIRECT, 0o666)
	if err == nil {
		return f, true, nil
	}
	f, err = os.OpenFile(name, flags, 0o666)
	return f, false, err
}

// clearDirect turns direct I/O off for the rest of f's writes.
func clearDirect(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	err = rc.Control(func(fd uintptr) {
		flags, _, errno := syscall.Syscall(syscall.SYS_FCNTL, fd, syscall.F_GETFL, 0)
		if errno == 0 {
			_, _, errno = syscall.Syscall(syscall.SYS_FCNTL, fd, syscall.F_SETFL, flags&^syscall.O_DIRECT)
		}
		if errno != 0 {
			ferr = errno
		}
	})
	if err != nil {
		return err
	}
	return ferr
}
