package atelier_test

import (
	"errors"
	"io/fs"
	"strings"
	"testing"

	"github.com/atelier-ml/atelier"
)

func TestWrap(t *testing.T) {
	cause := &fs.PathError{Op: "open", Path: "/srv/atelier/secret/path", Err: fs.ErrPermission}
	internal := atelier.Wrap(cause, "extracting the snapshot")
	if atelier.ErrorCode(internal) != atelier.EINTERNAL || atelier.ErrorMessage(internal) != "extracting the snapshot: internal error" {
		t.Errorf("Wrap of an internal error = %s %q", atelier.ErrorCode(internal), atelier.ErrorMessage(internal))
	}
	if strings.Contains(atelier.ErrorMessage(internal), "/srv") {
		t.Error("the cause's details reach the user's message")
	}
	if !errors.Is(internal, fs.ErrPermission) || !strings.Contains(internal.Error(), "/srv/atelier/secret/path") {
		t.Errorf("the cause is lost for the log: %v", internal)
	}

	user := atelier.Wrap(atelier.Errorf(atelier.ENOTFOUND, "object abc not found"), "data %q", "train")
	if atelier.ErrorCode(user) != atelier.ENOTFOUND || atelier.ErrorMessage(user) != `data "train": object abc not found` {
		t.Errorf("Wrap of a user error = %s %q", atelier.ErrorCode(user), atelier.ErrorMessage(user))
	}
	var inner *atelier.Error
	if !errors.As(user.Unwrap(), &inner) || inner.Message != "object abc not found" {
		t.Errorf("Unwrap = %v, want the wrapped *Error", user.Unwrap())
	}
}
