//go:build !(linux || darwin || freebsd || netbsd || openbsd)

package main

import (
	"io"
	"os"
)

// readNoEcho asks each prompt on out and reads one line per prompt; this platform's terminal
// echo is left on.
func readNoEcho(f *os.File, out io.Writer, prompts ...string) ([]string, error) {
	return readLines(f, out, prompts)
}
