package main

import (
	"context"
	"os/exec"
	"time"
)

// execCommand runs a short helper command (git) in dir and returns its output.
func execCommand(dir, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	out, err := cmd.Output()
	return string(out), err
}
