// Command atelier is the workspace server and its command-line client in one binary.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/sandbox"
)

func main() {
	// A confined process of a run (package sandbox) starts as this binary: it applies its
	// policy and becomes the run's program here, before anything else.
	sandbox.Main()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := newRootCmd()
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "error:", errorText(err))
		os.Exit(exitCode(err))
	}
}

// Exit codes scripts can rely on.
const (
	exitError     = 1 // any failure not listed below
	exitUsage     = 2 // bad flags or arguments
	exitNotFound  = 3
	exitConflict  = 4
	exitAuth      = 5   // unauthorized or forbidden
	exitUnavail   = 6   // the server cannot be reached
	exitRunFailed = 7   // run submit --wait: the run ended Failed or Canceled; image create --wait: the build Failed
	exitInterrupt = 130 // interrupted (Ctrl-C, SIGTERM), as shells report it
)

func errorText(err error) string {
	var e *atelier.Error
	if errors.As(err, &e) {
		return printableLines(e.Message)
	}
	return printableLines(err.Error())
}

func exitCode(err error) int {
	var u usageError
	if errors.As(err, &u) {
		return exitUsage
	}
	var rf runFailedError
	if errors.As(err, &rf) {
		return exitRunFailed
	}
	var bf imageFailedError
	if errors.As(err, &bf) {
		return exitRunFailed
	}
	var sf serviceFailedError
	if errors.As(err, &sf) {
		return exitRunFailed
	}
	var ie interruptedError
	if errors.As(err, &ie) {
		return exitInterrupt
	}
	var e *atelier.Error
	if !errors.As(err, &e) {
		return exitError
	}
	switch e.Code {
	case atelier.EINVALID:
		return exitUsage
	case atelier.ENOTFOUND:
		return exitNotFound
	case atelier.ECONFLICT:
		return exitConflict
	case atelier.EUNAUTHORIZED, atelier.EFORBIDDEN:
		return exitAuth
	case atelier.EUNAVAILABLE:
		return exitUnavail
	}
	return exitError
}

// usageError is a mistake in how a command was called.
type usageError struct{ msg string }

func (u usageError) Error() string { return u.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// interruptedError ends a command the user interrupted, saying what goes on without it.
type interruptedError struct{ msg string }

func (e interruptedError) Error() string { return e.msg }
