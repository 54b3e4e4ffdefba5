package atelier

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"
)

// A dataset is a registered, versioned reference to files in datastores (Azure ML v1's
// Dataset): a File dataset names files, a Tabular one files read as a table (delimited text,
// parquet or JSON lines). Registering a name again adds a version; versions never change
// except for their description and tags. Runs that consume a version are recorded with it
// (lineage). The files themselves stay where they are: a dataset holds no object.

// Dataset types.
const (
	DatasetFile    = "file"
	DatasetTabular = "tabular"
)

// Tabular formats.
const (
	FormatDelimited = "delimited"
	FormatParquet   = "parquet"
	FormatJSONLines = "json_lines"
)

// Limits of a dataset's definition.
const (
	MaxDatasetPaths       = 256
	MaxDatasetName        = 255
	MaxDatasetTransforms  = 64 << 10 // bytes of JSON
	MaxDatasetDescription = 4096
)

// datasetNamePattern: Azure ML's dataset names may hold spaces ("diabetes dataset"), inside.
var datasetNamePattern = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9._ -]{0,253}[A-Za-z0-9._-])?$`)

// ValidateDatasetName checks a dataset name: 1-255 letters, digits, '.', '_', '-' or spaces,
// starting with a letter or digit and not ending with a space.
func ValidateDatasetName(name string) error {
	if !datasetNamePattern.MatchString(name) {
		return Errorf(EINVALID, "name: invalid dataset name %q: use 1-%d letters, digits, '.', '_', '-' or spaces, starting with a letter or digit and not ending with a space", name, MaxDatasetName)
	}
	return nil
}

// DatasetPath is a file, a folder or a glob ("data/*.csv", "logs/**") of a datastore; an
// empty path is the whole datastore.
type DatasetPath struct {
	Datastore string `json:"datastore"`
	Path      string `json:"path"`
}

// Base is the path up to its first glob element: the folder or file that must exist.
func (p DatasetPath) Base() string {
	parts := strings.Split(strings.Trim(p.Path, "/"), "/")
	for i, s := range parts {
		if strings.ContainsAny(s, "*?[") {
			return strings.Join(parts[:i], "/")
		}
	}
	return strings.Trim(p.Path, "/")
}

// DatasetFormat says how a tabular dataset's files are read.
type DatasetFormat struct {
	Kind      string `json:"kind"`
	Separator string `json:"separator,omitempty"`
	Header    *bool  `json:"header,omitempty"`
	Encoding  string `json:"encoding,omitempty"`
}

// Dataset is one version of a registered dataset.
type Dataset struct {
	Workspace   string            `json:"workspace"`
	Name        string            `json:"name"`
	Version     int               `json:"version"`
	Type        string            `json:"type"`
	Paths       []DatasetPath     `json:"paths"`
	Format      *DatasetFormat    `json:"format,omitempty"`
	Transforms  json.RawMessage   `json:"transforms,omitempty"`
	Description string            `json:"description"`
	Tags        map[string]string `json:"tags"`
	CreatedBy   string            `json:"created_by"`
	CreatedAt   time.Time         `json:"created_at"`
	// RunID is the run whose files the version holds (its outputs, registered by the run's
	// script as Azure ML's output datasets are), "" for data registered from elsewhere.
	RunID string `json:"run_id,omitempty"`
}

// DatasetRegister is the body of POST .../datasets: the definition of a new version.
type DatasetRegister struct {
	Name        string            `json:"name"`
	Type        string            `json:"type"`
	Paths       []DatasetPath     `json:"paths"`
	Format      *DatasetFormat    `json:"format,omitempty"`
	Transforms  json.RawMessage   `json:"transforms,omitempty"`
	Description string            `json:"description,omitempty"`
	Tags        map[string]string `json:"tags,omitempty"`
	// CreateNewVersion adds a version to an existing name; without it an existing name is
	// ECONFLICT, unless the definition is the latest version's (then that version is returned).
	CreateNewVersion bool `json:"create_new_version,omitempty"`
	// RunID names the run that produced the files (see Dataset.RunID). A run's token registers
	// datasets only with its own run or one of its descendants here.
	RunID string `json:"run_id,omitempty"`
}

// Validate checks a registration's own fields (the service checks the datastores and paths).
func (r *DatasetRegister) Validate() error {
	if err := ValidateDatasetName(r.Name); err != nil {
		return err
	}
	switch r.Type {
	case DatasetFile:
		if r.Format != nil {
			return Errorf(EINVALID, "format: a file dataset has no format (it is for type tabular)")
		}
	case DatasetTabular:
		if r.Format == nil {
			return Errorf(EINVALID, "format: a tabular dataset needs a format (kind delimited, parquet or json_lines)")
		}
		switch r.Format.Kind {
		case FormatDelimited, FormatParquet, FormatJSONLines:
		default:
			return Errorf(EINVALID, "format.kind: unknown tabular format %q: use delimited, parquet or json_lines", r.Format.Kind)
		}
		if utf8.RuneCountInString(r.Format.Separator) > 8 || len(r.Format.Encoding) > 32 {
			return Errorf(EINVALID, "format: separator or encoding is too long")
		}
	default:
		return Errorf(EINVALID, "type: unknown dataset type %q: use file or tabular", r.Type)
	}
	if len(r.Paths) == 0 {
		return Errorf(EINVALID, "paths: a dataset needs at least one (datastore, path)")
	}
	if len(r.Paths) > MaxDatasetPaths {
		return Errorf(EINVALID, "paths: at most %d paths", MaxDatasetPaths)
	}
	for i, p := range r.Paths {
		if err := ValidateName("datastore", p.Datastore); err != nil {
			return Errorf(EINVALID, "paths[%d].datastore: %s", i, ErrorMessage(err))
		}
		if b := p.Base(); b != "" {
			if err := ValidatePath(b); err != nil {
				return Errorf(EINVALID, "paths[%d].path: %q is not a relative path with '/' separators", i, p.Path)
			}
		}
		if !utf8.ValidString(p.Path) || len(p.Path) > 4096 {
			return Errorf(EINVALID, "paths[%d].path: invalid path", i)
		}
	}
	if len(r.Transforms) > MaxDatasetTransforms {
		return Errorf(EINVALID, "transforms: at most %d bytes", MaxDatasetTransforms)
	}
	if len(r.Transforms) > 0 {
		var v []json.RawMessage
		if err := json.Unmarshal(r.Transforms, &v); err != nil {
			return Errorf(EINVALID, "transforms: a JSON array")
		}
	}
	if !utf8.ValidString(r.Description) || len(r.Description) > MaxDatasetDescription {
		return Errorf(EINVALID, "description: valid UTF-8, at most %d bytes", MaxDatasetDescription)
	}
	return ValidateKeyValues("tag", r.Tags, MaxTagValue)
}

// SameDefinition reports whether a registration defines what version d holds (type, paths,
// format and transforms; description and tags aside).
func (r *DatasetRegister) SameDefinition(d *Dataset) bool {
	a, _ := json.Marshal([]any{r.Type, r.Paths, r.Format, compactJSON(r.Transforms)})
	b, _ := json.Marshal([]any{d.Type, d.Paths, d.Format, compactJSON(d.Transforms)})
	return string(a) == string(b)
}

func compactJSON(b json.RawMessage) any {
	if len(b) == 0 {
		return nil
	}
	var v any
	if json.Unmarshal(b, &v) != nil {
		return string(b)
	}
	if l, ok := v.([]any); ok && len(l) == 0 {
		return nil
	}
	return v
}

// DatasetUpdate changes a version's description and tags (nil leaves a field as it is).
type DatasetUpdate struct {
	Description *string           `json:"description,omitempty"`
	Tags        map[string]string `json:"tags,omitempty"`
}

// DatasetRun is a run that consumed a dataset version (lineage).
type DatasetRun struct {
	Name    string    `json:"name"`
	Version int       `json:"version"`
	RunID   string    `json:"run_id"`
	Input   string    `json:"input,omitempty"` // the name the run knew it by (as_named_input)
	UsedAt  time.Time `json:"used_at"`
}

// DatasetStore keeps datasets. Versions count from 1 per name.
type DatasetStore interface {
	// CreateDatasetVersion stores d as the next version of d.Name and sets d.Version.
	CreateDatasetVersion(ctx context.Context, d *Dataset) error
	// FindDataset returns a version; version 0 is the latest.
	FindDataset(ctx context.Context, workspace, name string, version int) (*Dataset, error)
	// ListDatasets returns the latest version of each name, by name.
	ListDatasets(ctx context.Context, workspace string) ([]*Dataset, error)
	ListDatasetVersions(ctx context.Context, workspace, name string) ([]*Dataset, error)
	UpdateDataset(ctx context.Context, workspace, name string, version int, upd DatasetUpdate) (*Dataset, error)
	// DeleteDataset deletes a version, or every version with version 0.
	DeleteDataset(ctx context.Context, workspace, name string, version int) error
	// RecordDatasetRun records that a run consumed a version; recording it again is no change.
	RecordDatasetRun(ctx context.Context, workspace string, use DatasetRun) error
	// DatasetRuns lists the runs of a version (version 0: of every version), or with name ""
	// the datasets runID consumed.
	DatasetRuns(ctx context.Context, workspace, name string, version int, runID string) ([]*DatasetRun, error)
}

// DatasetService is the datasets' part of the service: members read, Contributors register,
// update and delete, a run's token reads and records its own run's inputs.
type DatasetService interface {
	RegisterDataset(ctx context.Context, workspace string, req DatasetRegister) (*Dataset, error)
	FindDataset(ctx context.Context, workspace, name string, version int) (*Dataset, error)
	ListDatasets(ctx context.Context, workspace string) ([]*Dataset, error)
	ListDatasetVersions(ctx context.Context, workspace, name string) ([]*Dataset, error)
	UpdateDataset(ctx context.Context, workspace, name string, version int, upd DatasetUpdate) (*Dataset, error)
	DeleteDataset(ctx context.Context, workspace, name string, version int) error
	RecordDatasetRun(ctx context.Context, workspace string, use DatasetRun) error
	DatasetRuns(ctx context.Context, workspace, name string, version int, runID string) ([]*DatasetRun, error)
}

// DatasetNotFound is the error of a missing dataset or version.
func DatasetNotFound(workspace, name string, version int) error {
	if version > 0 {
		return Errorf(ENOTFOUND, "dataset %q has no version %d in workspace %q", name, version, workspace)
	}
	return Errorf(ENOTFOUND, "dataset %q not found in workspace %q", name, workspace)
}

// String is "name:version".
func (d *Dataset) String() string { return fmt.Sprintf("%s:%d", d.Name, d.Version) }
