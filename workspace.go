package atelier

import (
	"context"
	"regexp"
	"time"
	"unicode/utf8"
)

// DefaultWorkspace is the workspace every server has from its first start.
const DefaultWorkspace = "default"

// Workspace is the top-level container: everything else (experiments, runs, models, datastores)
// belongs to exactly one workspace.
type Workspace struct {
	ID          int64     `json:"id"`
	Name        string    `json:"name"`
	Description string    `json:"description"`
	CreatedAt   time.Time `json:"created_at"`
	CreatedBy   string    `json:"created_by"`
	// RunCount is filled by reads so a delete can be refused without another round trip.
	RunCount int64 `json:"run_count"`
}

var namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// ValidateName checks a workspace, datastore or compute name: 1-128 characters, letters, digits,
// '.', '_' and '-', starting with a letter or digit, so it is safe in a URL path and a file name.
func ValidateName(kind, name string) error {
	if !namePattern.MatchString(name) {
		return Errorf(EINVALID, "invalid %s name %q: use 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit", kind, name)
	}
	return nil
}

// Validate returns an EINVALID error when the workspace cannot be stored.
func (w *Workspace) Validate() error {
	if err := ValidateName("workspace", w.Name); err != nil {
		return err
	}
	if !utf8.ValidString(w.Description) {
		return invalidUTF8("the workspace's description")
	}
	if len(w.Description) > 4096 {
		return Errorf(EINVALID, "workspace description is longer than 4096 characters")
	}
	return nil
}

// WorkspaceService manages workspaces.
type WorkspaceService interface {
	CreateWorkspace(ctx context.Context, ws *Workspace) error
	FindWorkspace(ctx context.Context, name string) (*Workspace, error)
	ListWorkspaces(ctx context.Context) ([]*Workspace, error)
	// DeleteWorkspace refuses (ECONFLICT) while the workspace holds runs unless force is set.
	DeleteWorkspace(ctx context.Context, name string, force bool) error
}
