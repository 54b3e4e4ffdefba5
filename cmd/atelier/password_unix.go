//go:build linux || darwin || freebsd || netbsd || openbsd

package main

import (
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// readNoEcho asks each prompt on out and reads one line per prompt from the terminal f with
// echo off. Echo goes off before the first prompt is shown, so nothing typed at once after it
// is echoed.
func readNoEcho(f *os.File, out io.Writer, prompts ...string) ([]string, error) {
	fd := int(f.Fd())
	if old, err := unix.IoctlGetTermios(fd, ioctlGetTermios); err == nil {
		quiet := *old
		quiet.Lflag &^= unix.ECHO
		quiet.Lflag |= unix.ICANON | unix.ISIG
		if err := unix.IoctlSetTermios(fd, ioctlSetTermios, &quiet); err == nil {
			defer unix.IoctlSetTermios(fd, ioctlSetTermios, old)
		}
	}
	return readLines(f, out, prompts)
}
