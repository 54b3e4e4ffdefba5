//go:build !(linux || darwin || freebsd || netbsd || openbsd)

package main

import (
	"bufio"
	"os"
	"strings"
)

// readNoEcho reads a line; this platform's terminal echo is left on.
func readNoEcho(f *os.File) (string, error) {
	line, err := bufio.NewReader(f).ReadString('\n')
	return strings.TrimRight(line, "\r\n"), err
}
