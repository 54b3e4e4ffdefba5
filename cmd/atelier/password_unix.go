//go:build linux || darwin || freebsd || netbsd || openbsd

package main

import (
	"bufio"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// readNoEcho reads a line from a terminal with echo off.
func readNoEcho(f *os.File) (string, error) {
	fd := int(f.Fd())
	old, err := unix.IoctlGetTermios(fd, ioctlGetTermios)
	if err == nil {
		raw := *old
		raw.Lflag &^= unix.ECHO
		raw.Lflag |= unix.ICANON | unix.ISIG
		if err := unix.IoctlSetTermios(fd, ioctlSetTermios, &raw); err == nil {
			defer unix.IoctlSetTermios(fd, ioctlSetTermios, old)
		}
	}
	line, err := bufio.NewReader(f).ReadString('\n')
	return strings.TrimRight(line, "\r\n"), err
}
