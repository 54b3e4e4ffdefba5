package atelier

import (
	"context"
	"fmt"
	"unicode/utf8"
)

// RunRenamer renames a run: its display name, which Azure ML v1 changes with
// run.display_name = ... and the studio shows. The id does not change.
type RunRenamer interface {
	RenameRun(ctx context.Context, workspace, id, name string) (*Run, error)
}

// RunRename is the body of PATCH .../runs/{run}.
type RunRename struct {
	Name *string `json:"name"`
}

// ValidateRunName checks a run's new name: valid UTF-8, at most MaxRunNameLength characters.
// The empty name is allowed: the run is then shown by its id.
func ValidateRunName(name string) error {
	if !utf8.ValidString(name) {
		return invalidUTF8(fmt.Sprintf("run name %q", name))
	}
	if utf8.RuneCountInString(name) > MaxRunNameLength {
		return Errorf(EINVALID, "name: a run name is at most %d characters", MaxRunNameLength)
	}
	return nil
}
