package atelier

import (
	"context"
	"io"
	"strings"
	"time"
	"unicode/utf8"
)

// A logged model is a model a run produced (MLflow 3's LoggedModel): files of its own, params,
// tags, metrics measured on it (each naming the run and data set it was measured with), and a
// status saying whether its files were uploaded whole. It belongs to an experiment and usually
// names its source run; runs also link to the models they produced (outputs) and used (inputs).
// Registering it as a model version copies nothing: the version holds the same objects.

// LoggedModelStatus says whether a logged model's files are complete.
type LoggedModelStatus string

// Logged model statuses: a model is Pending while its files are uploaded, then Ready or Failed.
// Finalizing may move it between any two of them, as MLflow allows.
const (
	LoggedModelPending LoggedModelStatus = "Pending"
	LoggedModelReady   LoggedModelStatus = "Ready"
	LoggedModelFailed  LoggedModelStatus = "Failed"
)

// Valid reports whether s is a known status.
func (s LoggedModelStatus) Valid() bool {
	return s == LoggedModelPending || s == LoggedModelReady || s == LoggedModelFailed
}

// LoggedModelIDPrefix starts every logged model id, so it is never mistaken for a run id.
const LoggedModelIDPrefix = "m-"

// LoggedModel is a model logged by (or for) a run.
type LoggedModel struct {
	ID          string            `json:"id"`
	Workspace   string            `json:"workspace"`
	Experiment  string            `json:"experiment"`
	Name        string            `json:"name"`
	ModelType   string            `json:"model_type,omitempty"`
	SourceRunID string            `json:"source_run_id,omitempty"`
	Status      LoggedModelStatus `json:"status"`
	// StatusMessage says why a model failed, when it was said.
	StatusMessage string               `json:"status_message,omitempty"`
	Params        map[string]string    `json:"params"`
	Tags          map[string]string    `json:"tags"`
	Metrics       []*LoggedModelMetric `json:"metrics"`
	Deleted       bool                 `json:"deleted,omitempty"`
	CreatedBy     string               `json:"created_by"`
	CreatedAt     time.Time            `json:"created_at"`
	UpdatedAt     time.Time            `json:"updated_at"`
}

// LoggedModelMetric is a value measured on a logged model: by a run, at a step, possibly on a
// data set (named and digested as MLflow's datasets are).
type LoggedModelMetric struct {
	Name          string    `json:"name"`
	Value         float64   `json:"value"`
	Step          int64     `json:"step"`
	Timestamp     time.Time `json:"timestamp"`
	RunID         string    `json:"run_id,omitempty"`
	DatasetName   string    `json:"dataset_name,omitempty"`
	DatasetDigest string    `json:"dataset_digest,omitempty"`
}

// LoggedModelCreate creates a logged model, Pending.
type LoggedModelCreate struct {
	Experiment  string            `json:"experiment"`
	Name        string            `json:"name"`
	ModelType   string            `json:"model_type,omitempty"`
	SourceRunID string            `json:"source_run_id,omitempty"`
	Params      map[string]string `json:"params,omitempty"`
	Tags        map[string]string `json:"tags,omitempty"`
}

// Limits on logged models.
const (
	MaxLoggedModelName = 256
	MaxModelTypeLength = 256
	MaxStatusMessage   = 4096
)

// ValidateLoggedModelName allows 1-256 printable characters without '/' (the name is a folder
// of the model's files when it is registered).
func ValidateLoggedModelName(name string) error {
	if name == "" || !utf8.ValidString(name) || utf8.RuneCountInString(name) > MaxLoggedModelName {
		return Errorf(EINVALID, "invalid logged model name %q: use 1-%d characters of UTF-8", name, MaxLoggedModelName)
	}
	if strings.ContainsAny(name, "/\x00") || strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return Errorf(EINVALID, "invalid logged model name %q: control characters and '/' are not allowed", name)
	}
	return nil
}

// Validate checks a creation before anything of it is stored.
func (c *LoggedModelCreate) Validate() error {
	if err := ValidateExperimentName(c.Experiment); err != nil {
		return err
	}
	if err := ValidateLoggedModelName(c.Name); err != nil {
		return err
	}
	if len(c.ModelType) > MaxModelTypeLength || !utf8.ValidString(c.ModelType) {
		return Errorf(EINVALID, "model type must be valid UTF-8 of at most %d bytes", MaxModelTypeLength)
	}
	if err := ValidateKeyValues("param", c.Params, MaxParamValue); err != nil {
		return err
	}
	return ValidateKeyValues("tag", c.Tags, MaxTagValue)
}

// LoggedModelUpdate changes a logged model; nil fields are left alone. Params are added (one
// already set may not change: ECONFLICT), tags set and DeleteTags removed (each must exist).
type LoggedModelUpdate struct {
	Status        *LoggedModelStatus `json:"status,omitempty"`
	StatusMessage *string            `json:"status_message,omitempty"`
	Params        map[string]string  `json:"params,omitempty"`
	Tags          map[string]string  `json:"tags,omitempty"`
	DeleteTags    []string           `json:"delete_tags,omitempty"`
}

// Validate checks an update before anything of it is stored.
func (u *LoggedModelUpdate) Validate() error {
	if u.Status != nil && !u.Status.Valid() {
		return Errorf(EINVALID, "invalid logged model status %q: use Pending, Ready or Failed", *u.Status)
	}
	if u.StatusMessage != nil && (len(*u.StatusMessage) > MaxStatusMessage || !utf8.ValidString(*u.StatusMessage)) {
		return Errorf(EINVALID, "status message must be valid UTF-8 of at most %d bytes", MaxStatusMessage)
	}
	if err := ValidateKeyValues("param", u.Params, MaxParamValue); err != nil {
		return err
	}
	return ValidateTagChanges(u.Tags, u.DeleteTags)
}

// ValidateLoggedModelMetrics checks metrics before they are stored.
func ValidateLoggedModelMetrics(list []*LoggedModelMetric) error {
	for _, m := range list {
		if err := ValidateMetricName(m.Name); err != nil {
			return err
		}
		for what, s := range map[string]string{"data set name": m.DatasetName, "data set digest": m.DatasetDigest} {
			if len(s) > MaxDatasetNameLength || !utf8.ValidString(s) {
				return Errorf(EINVALID, "metric %q: %s must be valid UTF-8 of at most %d bytes", m.Name, what, MaxDatasetNameLength)
			}
		}
	}
	return nil
}

// LoggedModelDataset selects models with a metric measured on a data set (any digest when
// Digest is empty).
type LoggedModelDataset struct {
	Name   string `json:"name"`
	Digest string `json:"digest,omitempty"`
}

// LoggedModelQuery searches logged models. Filter is the query language of runs (filter.go)
// over the fields: attributes (name, id, status, model_type, source_run_id, experiment,
// created_at, updated_at), params.K, tags.K and metrics.K (the newest value of K measured on the
// model, on the data sets of Datasets when they are given). OrderBy uses the same fields; the
// default is created_at desc, then id.
type LoggedModelQuery struct {
	// Experiments keeps the models of these experiments (all when empty).
	Experiments []string             `json:"experiments,omitempty"`
	Filter      string               `json:"filter,omitempty"`
	Datasets    []LoggedModelDataset `json:"datasets,omitempty"`
	OrderBy     string               `json:"order_by,omitempty"`
	Limit       int                  `json:"limit,omitempty"`
	PageToken   string               `json:"page_token,omitempty"`
}

// LoggedModelAttributes are the attributes of a logged model search.
var LoggedModelAttributes = []string{"id", "name", "status", "model_type", "source_run_id", "experiment", "created_at", "updated_at"}

// Validate checks the query's limits (the filter is checked where it is compiled).
func (q *LoggedModelQuery) Validate() error {
	if q.Limit < 0 || q.Limit > MaxPageSize {
		return Errorf(EINVALID, "limit %d is out of range (0 to %d)", q.Limit, MaxPageSize)
	}
	if len(q.Experiments) > 1000 || len(q.Datasets) > 1000 {
		return Errorf(EINVALID, "a logged model search names at most 1000 experiments and 1000 data sets")
	}
	return nil
}

// LoggedModelPage is one page of a search; NextPageToken is empty on the last page.
type LoggedModelPage struct {
	Models        []*LoggedModel `json:"models"`
	NextPageToken string         `json:"next_page_token"`
}

// RunModel links a run and a logged model: the run produced it (an output, at a step) or used
// it (an input).
type RunModel struct {
	RunID   string `json:"run_id"`
	ModelID string `json:"model_id"`
	Input   bool   `json:"input,omitempty"`
	Step    int64  `json:"step"`
}

// LoggedModelStore is the part of the metadata store that keeps logged models, each write one
// transaction.
type LoggedModelStore interface {
	// CreateLoggedModel stores a new Pending model (its experiment is created if needed; its
	// source run must exist in the workspace) and gives it its id.
	CreateLoggedModel(ctx context.Context, workspace string, c LoggedModelCreate, createdBy string) (*LoggedModel, error)
	// FindLoggedModel returns a model, deleted or not, with its params, tags and metrics.
	FindLoggedModel(ctx context.Context, workspace, id string) (*LoggedModel, error)
	// UpdateLoggedModel changes a live model, all or nothing.
	UpdateLoggedModel(ctx context.Context, workspace, id string, upd LoggedModelUpdate) (*LoggedModel, error)
	// DeleteLoggedModel marks a model deleted: searches no longer find it and it takes no writes.
	DeleteLoggedModel(ctx context.Context, workspace, id string) error
	// ListLoggedModels searches live models.
	ListLoggedModels(ctx context.Context, workspace string, q LoggedModelQuery) (*LoggedModelPage, error)
	// LogLoggedModelMetrics records metrics measured on a live model.
	LogLoggedModelMetrics(ctx context.Context, workspace, id string, metrics []*LoggedModelMetric) error
	// AddRunModels links a run to models (idempotent); the run and the models must exist.
	AddRunModels(ctx context.Context, workspace string, links []RunModel) error
	// ListRunModels lists a run's links, inputs and outputs, in the order they were added.
	ListRunModels(ctx context.Context, workspace, runID string) ([]RunModel, error)
	// PutLoggedModelFile records a file of a live model (its object already stored and held).
	PutLoggedModelFile(ctx context.Context, workspace, id string, f *File) error
	FindLoggedModelFile(ctx context.Context, workspace, id, path string) (*File, error)
	// ListLoggedModelFiles lists the model's files at prefix (a file, or a folder and all under
	// it; "" for all).
	ListLoggedModelFiles(ctx context.Context, workspace, id, prefix string) ([]*File, error)
}

// LoggedModelService is logged models as users see them.
type LoggedModelService interface {
	CreateLoggedModel(ctx context.Context, workspace string, c LoggedModelCreate) (*LoggedModel, error)
	FindLoggedModel(ctx context.Context, workspace, id string) (*LoggedModel, error)
	UpdateLoggedModel(ctx context.Context, workspace, id string, upd LoggedModelUpdate) (*LoggedModel, error)
	DeleteLoggedModel(ctx context.Context, workspace, id string) error
	ListLoggedModels(ctx context.Context, workspace string, q LoggedModelQuery) (*LoggedModelPage, error)
	LogLoggedModelMetrics(ctx context.Context, workspace, id string, metrics []*LoggedModelMetric) error
	AddRunModels(ctx context.Context, workspace string, links []RunModel) error
	ListRunModels(ctx context.Context, workspace, runID string) ([]RunModel, error)
	// UploadLoggedModelFile streams r into the object store as the model's file at path.
	UploadLoggedModelFile(ctx context.Context, workspace, id, path string, r io.Reader) (*File, error)
	ListLoggedModelFiles(ctx context.Context, workspace, id, prefix string) ([]*File, error)
	OpenLoggedModelFile(ctx context.Context, workspace, id, path string) (*File, io.ReadCloser, error)
}
