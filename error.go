package atelier

import (
	"errors"
	"fmt"
	"syscall"
)

// Error codes. They are mapped to HTTP statuses in one table at the edge (api/).
const (
	ECONFLICT     = "conflict"     // the request conflicts with the current state (409)
	EINTERNAL     = "internal"     // a bug or an outage; details are logged, not returned (500)
	EINVALID      = "invalid"      // the request is malformed or fails validation (400)
	ENOTFOUND     = "not_found"    // the thing does not exist, or the caller may not know it does (404)
	EUNAUTHORIZED = "unauthorized" // no valid credentials (401)
	EFORBIDDEN    = "forbidden"    // valid credentials, not allowed (403)
	ETOOLARGE     = "too_large"    // the request body or an upload exceeds a limit (413)
	EUNAVAILABLE  = "unavailable"  // shutting down or overloaded; retry later (503)
	ETOOMANY      = "too_many"     // too many attempts (failed logins); retry later (429)
	ENOSPACE      = "storage_full" // the server's disk (or quota) is full: nothing was stored (507)
)

// Error is an error meant for the user: a code a program can switch on and a message a human can act on.
// Its cause, when it has one, is for the server's log: it is never shown to users (its text may
// hold internal details), but errors.Is and errors.As see it.
type Error struct {
	Code    string
	Message string
	Cause   error
}

func (e *Error) Error() string {
	if e.Cause != nil {
		return fmt.Sprintf("atelier error: code=%s message=%s: %v", e.Code, e.Message, e.Cause)
	}
	return fmt.Sprintf("atelier error: code=%s message=%s", e.Code, e.Message)
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Cause }

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Wrap returns an *Error with the given message and cause: the code of the cause's *Error
// when it has one (its message is kept after the new one), else EINTERNAL, whose message users
// see as what failed ("extracting the snapshot: internal error") while the log gets the cause.
func Wrap(err error, format string, args ...any) *Error {
	msg := fmt.Sprintf(format, args...)
	if code := ErrorCode(err); code != EINTERNAL {
		return &Error{Code: code, Message: msg + ": " + ErrorMessage(err), Cause: err}
	}
	return &Error{Code: EINTERNAL, Message: msg + ": internal error", Cause: err}
}

// ErrorCode returns the code of the first *Error in err's chain, EINTERNAL for any other error and "" for nil.
func ErrorCode(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the message of the first *Error in err's chain; other errors give a generic
// message because their text may hold internal details.
func ErrorMessage(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}

// StorageMonitor follows whether the server's storage is full: the front doors tell it how
// each write ended (nil: it stored), and the health check reports what it concluded.
type StorageMonitor interface {
	Observe(err error)
}

// StorageFullMessage is what a write refused for lack of space tells the user.
const StorageFullMessage = "the server's storage is full: nothing was stored; " +
	"its administrator must free space (or raise its quota) before writes succeed again"

// StorageFull returns err as an ENOSPACE error when the operating system refused a write for
// lack of space (ENOSPC) or quota (EDQUOT) and no code was given to it yet; otherwise err
// itself. The cause stays in the chain, for the server's log. Adapters call it where they wrap
// their write errors, so every caller sees the one code.
func StorageFull(err error) error {
	if ErrorCode(err) != EINTERNAL || !(errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)) {
		return err
	}
	return StorageFullError(err)
}

// StorageFullError returns an ENOSPACE error caused by err (what the storage said).
func StorageFullError(err error) error {
	return fmt.Errorf("%w: %w", &Error{Code: ENOSPACE, Message: StorageFullMessage}, err)
}
