//go:build unix

package api

import (
	"errors"
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// maxSocketPath is the room for a socket's path, its final NUL included.
const maxSocketPath = len(syscall.RawSockaddrUnix{}.Path)

// passedIn returns the descriptors of SCM_RIGHTS messages in oob.
func passedIn(oob []byte) []*os.File {
	msgs, err := syscall.ParseSocketControlMessage(oob)
	if err != nil {
		return nil
	}
	var files []*os.File
	for _, m := range msgs {
		fds, err := syscall.ParseUnixRights(&m)
		if err != nil {
			continue
		}
		for _, fd := range fds {
			files = append(files, os.NewFile(uintptr(fd), "passed file"))
		}
	}
	return files
}

// rightsOf is the SCM_RIGHTS message that passes files.
func rightsOf(files []*os.File) []byte {
	fds := make([]int, len(files))
	for i, f := range files {
		fds[i] = int(f.Fd())
	}
	return syscall.UnixRights(fds...)
}

// checkAccess says whether f was opened for what the request needs: reading (an upload's
// source), or writing without appending (a download's destination).
func checkAccess(f *os.File, write bool) error {
	flags, err := unix.FcntlInt(f.Fd(), unix.F_GETFL, 0)
	if err != nil {
		return fmt.Errorf("cannot be used: %v", err)
	}
	switch mode := flags & unix.O_ACCMODE; {
	case write && mode == unix.O_RDONLY:
		return errors.New("is not open for writing")
	case write && flags&unix.O_APPEND != 0:
		return errors.New("is open for appending")
	case !write && mode == unix.O_WRONLY:
		return errors.New("is not open for reading")
	}
	return nil
}
