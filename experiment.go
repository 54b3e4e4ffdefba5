package atelier

import (
	"context"
	"fmt"
	"time"
	"unicode/utf8"
)

// Experiment is a named group of runs. It is created the first time a run names it.
type Experiment struct {
	ID          int64      `json:"id"`
	Workspace   string     `json:"workspace"`
	Name        string     `json:"name"`
	Description string     `json:"description"`
	Archived    bool       `json:"archived"`
	CreatedAt   time.Time  `json:"created_at"`
	UpdatedAt   time.Time  `json:"updated_at"`
	RunCount    int64      `json:"run_count"`
	LastRunAt   *time.Time `json:"last_run_at"`
}

// ValidateExperimentName allows any printable name up to 256 characters without '/', so names
// such as "diabetes ridge (v2)" work, as in Azure ML and MLflow.
func ValidateExperimentName(name string) error {
	if !utf8.ValidString(name) {
		return invalidUTF8(fmt.Sprintf("experiment name %q", name))
	}
	if name == "" || utf8.RuneCountInString(name) > 256 {
		return Errorf(EINVALID, "invalid experiment name %q: use 1-256 characters", name)
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f || r == '/' {
			return Errorf(EINVALID, "invalid experiment name %q: control characters and '/' are not allowed", name)
		}
	}
	return nil
}

// ExperimentUpdate changes an experiment; nil fields are left alone.
type ExperimentUpdate struct {
	Name        *string `json:"name,omitempty"`
	Description *string `json:"description,omitempty"`
	Archived    *bool   `json:"archived,omitempty"`
}

// MaxExperimentDescription bounds an experiment's description.
const MaxExperimentDescription = 4096

// Validate checks an update before anything of it is stored.
func (u *ExperimentUpdate) Validate() error {
	if u.Name != nil {
		if err := ValidateExperimentName(*u.Name); err != nil {
			return err
		}
	}
	if u.Description != nil {
		if !utf8.ValidString(*u.Description) {
			return invalidUTF8("the experiment's description")
		}
		if len(*u.Description) > MaxExperimentDescription {
			return Errorf(EINVALID, "experiment description is longer than %d bytes", MaxExperimentDescription)
		}
	}
	return nil
}

// ExperimentFilter selects experiments in a list.
type ExperimentFilter struct {
	IncludeArchived bool
	Name            string // exact name, if set
	ID              int64  // the experiment with this id, if set (the MLflow API addresses experiments by id)
}

// ExperimentService manages experiments. Experiments are addressed by name within a workspace.
type ExperimentService interface {
	FindExperiment(ctx context.Context, workspace, name string) (*Experiment, error)
	ListExperiments(ctx context.Context, workspace string, filter ExperimentFilter) ([]*Experiment, error)
	UpdateExperiment(ctx context.Context, workspace, name string, upd ExperimentUpdate) (*Experiment, error)
}
