package atelier

import (
	"context"
	"fmt"
	"time"
	"unicode/utf8"
)

// Experiment is a named group of runs. It is created the first time a run names it, or
// explicitly (CreateExperiment), with tags and an artifact location of its own.
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
	// ArtifactLocation is where its creator said the experiment's artifacts go (MLflow's
	// artifact_location); "" when it was not said. Atelier keeps and returns it.
	ArtifactLocation string            `json:"artifact_location,omitempty"`
	Tags             map[string]string `json:"tags,omitempty"`
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

// ExperimentCreate creates an experiment before its first run.
type ExperimentCreate struct {
	Name             string            `json:"name"`
	Description      string            `json:"description,omitempty"`
	ArtifactLocation string            `json:"artifact_location,omitempty"`
	Tags             map[string]string `json:"tags,omitempty"`
}

// Validate checks a creation before anything of it is stored.
func (c *ExperimentCreate) Validate() error {
	if err := ValidateExperimentName(c.Name); err != nil {
		return err
	}
	if err := (&ExperimentUpdate{Description: &c.Description, Tags: c.Tags}).Validate(); err != nil {
		return err
	}
	if !utf8.ValidString(c.ArtifactLocation) {
		return invalidUTF8("the experiment's artifact location")
	}
	if len(c.ArtifactLocation) > MaxArtifactLocation {
		return Errorf(EINVALID, "experiment artifact location is longer than %d bytes", MaxArtifactLocation)
	}
	return nil
}

// ExperimentUpdate changes an experiment; nil fields are left alone. Tags are set (added or
// changed) and DeleteTags removed, each of which must exist.
type ExperimentUpdate struct {
	Name        *string           `json:"name,omitempty"`
	Description *string           `json:"description,omitempty"`
	Archived    *bool             `json:"archived,omitempty"`
	Tags        map[string]string `json:"tags,omitempty"`
	DeleteTags  []string          `json:"delete_tags,omitempty"`
}

// MaxExperimentDescription bounds an experiment's description, MaxArtifactLocation its
// artifact location.
const (
	MaxExperimentDescription = 4096
	MaxArtifactLocation      = 4096
)

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
	return ValidateTagChanges(u.Tags, u.DeleteTags)
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

// ExperimentCreator creates experiments explicitly (the MLflow API's experiments/create), so
// that of many concurrent creates of one name exactly one succeeds: the others get ECONFLICT.
type ExperimentCreator interface {
	CreateExperiment(ctx context.Context, workspace string, c ExperimentCreate) (*Experiment, error)
}

// ExperimentQuery searches experiments. Filter and OrderBy are the query language of runs
// (filter.go) over the attributes of ExperimentAttributes and tags.K; the default order is
// created_at desc, then id. Archived keeps only archived experiments when true, only the others
// when false, all when nil.
type ExperimentQuery struct {
	Filter    string `json:"filter,omitempty"`
	OrderBy   string `json:"order_by,omitempty"`
	Archived  *bool  `json:"archived,omitempty"`
	Limit     int    `json:"limit,omitempty"`
	PageToken string `json:"page_token,omitempty"`
}

// ExperimentAttributes are the attributes of an experiment search.
var ExperimentAttributes = []string{"id", "name", "created_at", "updated_at"}

// ExperimentPage is one page of a search; NextPageToken is empty on the last page.
type ExperimentPage struct {
	Experiments   []*Experiment `json:"experiments"`
	NextPageToken string        `json:"next_page_token"`
}

// ExperimentSearcher searches experiments in the store, one page at a time.
type ExperimentSearcher interface {
	SearchExperiments(ctx context.Context, workspace string, q ExperimentQuery) (*ExperimentPage, error)
}
