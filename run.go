package atelier

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
	"unicode/utf8"
)

// RunStatus is the lifecycle state of a run.
type RunStatus string

const (
	StatusNotStarted      RunStatus = "NotStarted"
	StatusQueued          RunStatus = "Queued"
	StatusPreparing       RunStatus = "Preparing"
	StatusRunning         RunStatus = "Running"
	StatusFinalizing      RunStatus = "Finalizing"
	StatusCancelRequested RunStatus = "CancelRequested"
	StatusCompleted       RunStatus = "Completed"
	StatusFailed          RunStatus = "Failed"
	StatusCanceled        RunStatus = "Canceled"
)

// RunStatuses lists every status in lifecycle order.
var RunStatuses = []RunStatus{StatusNotStarted, StatusQueued, StatusPreparing, StatusRunning,
	StatusFinalizing, StatusCancelRequested, StatusCompleted, StatusFailed, StatusCanceled}

// order ranks the forward lifecycle; a run may skip ahead (an interactive run goes from
// NotStarted straight to Running) but never go back.
var statusOrder = map[RunStatus]int{StatusNotStarted: 0, StatusQueued: 1, StatusPreparing: 2,
	StatusRunning: 3, StatusFinalizing: 4}

// Valid reports whether s is a known status.
func (s RunStatus) Valid() bool {
	for _, k := range RunStatuses {
		if s == k {
			return true
		}
	}
	return false
}

// Terminal reports whether a run in status s has ended.
func (s RunStatus) Terminal() bool {
	return s == StatusCompleted || s == StatusFailed || s == StatusCanceled
}

// Active reports whether a run in status s has started and not yet ended.
func (s RunStatus) Active() bool {
	return s == StatusPreparing || s == StatusRunning || s == StatusFinalizing || s == StatusCancelRequested
}

// CanTransition reports whether a run may move from status s to next. Terminal states are final;
// the forward lifecycle may skip states but never goes back; any live run can be canceled, fail
// or complete; CancelRequested can only end.
func (s RunStatus) CanTransition(next RunStatus) bool {
	if !next.Valid() || s.Terminal() || s == next {
		return false
	}
	if next.Terminal() {
		return true
	}
	if s == StatusCancelRequested {
		return false
	}
	if next == StatusCancelRequested {
		return true
	}
	return statusOrder[next] > statusOrder[s]
}

// TransitionError is the cause of the ECONFLICT a store answers when a run cannot go from its
// status to the one asked: callers switch on it, not on the message.
type TransitionError struct {
	Run      string
	From, To RunStatus
}

func (e *TransitionError) Error() string {
	return fmt.Sprintf("run %s cannot go from %s to %s", e.Run, e.From, e.To)
}

// TransitionConflict returns the ECONFLICT error of a refused status transition.
func TransitionConflict(run string, from, to RunStatus) *Error {
	cause := &TransitionError{Run: run, From: from, To: to}
	return &Error{Code: ECONFLICT, Message: cause.Error(), Cause: cause}
}

// Run is one execution of a script (or an interactive session) within an experiment.
type Run struct {
	ID         string     `json:"id"`
	Workspace  string     `json:"workspace"`
	Experiment string     `json:"experiment"`
	ParentID   string     `json:"parent_id"`
	Name       string     `json:"name"`
	Status     RunStatus  `json:"status"`
	CreatedAt  time.Time  `json:"created_at"`
	StartedAt  *time.Time `json:"started_at"`
	EndedAt    *time.Time `json:"ended_at"`
	CreatedBy  string     `json:"created_by"`
	Compute    string     `json:"compute"`
	// Config is the run configuration as submitted; its shape belongs to the compute side.
	Config     json.RawMessage `json:"config,omitempty"`
	SnapshotID string          `json:"snapshot_id"`
	Error      string          `json:"error"`
	ExitCode   *int            `json:"exit_code"`
	Git        *GitInfo        `json:"git,omitempty"`

	Params     map[string]string `json:"params"`
	Tags       map[string]string `json:"tags"`
	Properties map[string]string `json:"properties"`
	// Metrics holds the latest value of each scalar metric, so a run reads without its series.
	Metrics map[string]Float `json:"metrics"`
	// ChildCount is the number of direct children.
	ChildCount int64 `json:"child_count"`
	// Deleted says the run was deleted (MLflow's lifecycle stage "deleted"): it is kept, takes
	// no more params, tags or metrics, and may be restored.
	Deleted bool `json:"deleted,omitempty"`
}

// Duration is the time the run has been (or was) executing.
func (r *Run) Duration(now time.Time) time.Duration {
	if r.StartedAt == nil {
		return 0
	}
	if r.EndedAt != nil {
		return r.EndedAt.Sub(*r.StartedAt)
	}
	return now.Sub(*r.StartedAt)
}

// Activity is the run seen as a long-running operation; stores keep it in step with the run.
func (r *Run) Activity(now time.Time) *Activity {
	a := &Activity{ID: r.ID, Workspace: r.Workspace, Kind: "run", Target: r.ID, Message: string(r.Status),
		StartedAt: r.CreatedAt, UpdatedAt: now, EndedAt: r.EndedAt, Error: r.Error}
	switch r.Status {
	case StatusNotStarted, StatusQueued:
		a.Status = ActivityQueued
	case StatusCompleted:
		a.Status, a.Percent = ActivitySucceeded, 100
	case StatusFailed:
		a.Status, a.Percent = ActivityFailed, 100
	case StatusCanceled:
		a.Status, a.Percent = ActivityCanceled, 100
	default:
		a.Status = ActivityRunning
	}
	return a
}

// GitInfo records the state of the source tree when it was a git checkout.
type GitInfo struct {
	Commit string `json:"commit"`
	Branch string `json:"branch"`
	Dirty  bool   `json:"dirty"`
	Remote string `json:"remote,omitempty"`
}

// RunCreate is the request to create a run.
type RunCreate struct {
	Experiment string            `json:"experiment"`
	Name       string            `json:"name,omitempty"`
	ParentID   string            `json:"parent_id,omitempty"`
	Status     RunStatus         `json:"status,omitempty"` // NotStarted when empty
	Compute    string            `json:"compute,omitempty"`
	Config     json.RawMessage   `json:"config,omitempty"`
	SnapshotID string            `json:"snapshot_id,omitempty"`
	Git        *GitInfo          `json:"git,omitempty"`
	Params     map[string]string `json:"params,omitempty"`
	Tags       map[string]string `json:"tags,omitempty"`
	Properties map[string]string `json:"properties,omitempty"`
	// StartedAt, when set, is when the run started (a run imported from elsewhere, or an MLflow
	// client's start_time): the run is created started, in status Running when Status is empty
	// (an active Status is kept; NotStarted and Queued are refused). Kept to the millisecond;
	// see ValidateRunTime for the range.
	StartedAt *time.Time `json:"started_at,omitempty"`
	// Data is the run's lineage: the datastore paths it reads and writes. Only SubmitRun sets
	// it, from the run configuration.
	Data []DataReference `json:"-"`
}

// Limits on run fields, shared by every store.
const (
	MaxKeyLength       = 250
	MaxParamValue      = 6000
	MaxTagValue        = 8000
	MaxRunNameLength   = 256
	MaxErrorLength     = 16384
	MaxKeyValuesPerReq = 1000
)

// ValidateKey checks a param, tag or property name: 1-250 characters of printable
// UTF-8 without leading or trailing spaces.
func ValidateKey(kind, key string) error {
	if err := validateKeyText(kind, key); err != nil {
		return err
	}
	if key[0] == ' ' || key[len(key)-1] == ' ' {
		return Errorf(EINVALID, "invalid %s name %q: leading or trailing spaces are not allowed", kind, key)
	}
	return nil
}

// validateKeyText checks a name is 1-MaxKeyLength bytes of UTF-8 without control characters.
func validateKeyText(kind, key string) error {
	if key == "" || len(key) > MaxKeyLength {
		return Errorf(EINVALID, "invalid %s name %q: use 1-%d characters", kind, key, MaxKeyLength)
	}
	if !utf8.ValidString(key) {
		return invalidUTF8(fmt.Sprintf("%s name %q", kind, key))
	}
	for _, r := range key {
		if r < 0x20 || r == 0x7f {
			return Errorf(EINVALID, "invalid %s name %q: control characters are not allowed", kind, key)
		}
	}
	return nil
}

// ValidateTagChanges checks the tags an update sets and those it deletes (experiments, models).
func ValidateTagChanges(set map[string]string, del []string) error {
	if err := ValidateKeyValues("tag", set, MaxTagValue); err != nil {
		return err
	}
	for _, k := range del {
		if err := ValidateKey("tag", k); err != nil {
			return err
		}
	}
	return nil
}

// ValidateKeyValues checks a map of params, tags or properties.
func ValidateKeyValues(kind string, kv map[string]string, maxValue int) error {
	if len(kv) > MaxKeyValuesPerReq {
		return Errorf(EINVALID, "too many %ss in one request: %d (limit %d)", kind, len(kv), MaxKeyValuesPerReq)
	}
	for k, v := range kv {
		if err := ValidateKey(kind, k); err != nil {
			return err
		}
		if len(v) > maxValue {
			return Errorf(EINVALID, "invalid value of %s %q: use valid UTF-8 of at most %d bytes", kind, k, maxValue)
		}
		if !utf8.ValidString(v) {
			return Errorf(EINVALID, "%s %q: value is not valid UTF-8", kind, k)
		}
	}
	return nil
}

// Validate checks a run creation request.
func (c *RunCreate) Validate() error {
	// A child run may leave the experiment out: it joins its parent's.
	if c.Experiment != "" || c.ParentID == "" {
		if err := ValidateExperimentName(c.Experiment); err != nil {
			return err
		}
	}
	if !utf8.ValidString(c.Name) {
		return invalidUTF8(fmt.Sprintf("run name %q", c.Name))
	}
	if utf8.RuneCountInString(c.Name) > MaxRunNameLength {
		return Errorf(EINVALID, "run name is longer than %d characters", MaxRunNameLength)
	}
	if c.Status != "" && !c.Status.Valid() {
		return Errorf(EINVALID, "unknown run status %q", c.Status)
	}
	if c.Status.Terminal() {
		return Errorf(EINVALID, "a run cannot be created in the terminal status %s", c.Status)
	}
	if c.StartedAt != nil {
		if err := ValidateRunTime("start time", *c.StartedAt, time.Now()); err != nil {
			return err
		}
		if c.Status != "" && !c.Status.Active() {
			return Errorf(EINVALID, "a run created with a start time is started: its status cannot be %s (leave it empty for Running)", c.Status)
		}
	}
	if c.Compute != "" {
		if err := ValidateName("compute", c.Compute); err != nil {
			return err
		}
	}
	if len(c.Config) > 0 && !json.Valid(c.Config) {
		return Errorf(EINVALID, "run config is not valid JSON")
	}
	if err := ValidateKeyValues("param", c.Params, MaxParamValue); err != nil {
		return err
	}
	if err := ValidateKeyValues("tag", c.Tags, MaxTagValue); err != nil {
		return err
	}
	return ValidateKeyValues("property", c.Properties, MaxTagValue)
}

// RunStatusUpdate moves a run through its lifecycle.
type RunStatusUpdate struct {
	Status   RunStatus `json:"status"`
	Error    string    `json:"error,omitempty"`
	ExitCode *int      `json:"exit_code,omitempty"`
	// EndedAt, when set, is when the run ended (an MLflow client's end_time): it is used when
	// the update ends the run, instead of the store's clock, and ignored otherwise. It is kept
	// as given even before the run's start, as MLflow keeps it (clients' clocks differ).
	EndedAt *time.Time `json:"ended_at,omitempty"`
}

// MaxRunTimeAhead is how far after the server's clock a given start or end time may be: room
// for clients whose clocks run ahead, not for times in microseconds taken for milliseconds.
const MaxRunTimeAhead = 24 * time.Hour

// ValidateRunTime checks a start or end time a client gives a run (kind names it in the
// message): not before 1970-01-01 (the Unix epoch) and at most MaxRunTimeAhead after now.
func ValidateRunTime(kind string, t, now time.Time) error {
	if t.Before(time.Unix(0, 0)) {
		return Errorf(EINVALID, "invalid run %s %s: it is before 1970-01-01T00:00:00Z", kind, t.UTC().Format(time.RFC3339Nano))
	}
	if t.After(now.Add(MaxRunTimeAhead)) {
		return Errorf(EINVALID, "invalid run %s %s: it is more than %s after the server's clock (%s); times are milliseconds since 1970",
			kind, t.UTC().Format(time.RFC3339Nano), MaxRunTimeAhead, now.UTC().Format(time.RFC3339))
	}
	return nil
}

// Validate checks a status update's own fields (the store checks the transition).
func (u *RunStatusUpdate) Validate(now time.Time) error {
	if !u.Status.Valid() {
		return Errorf(EINVALID, "unknown run status %q", u.Status)
	}
	if u.EndedAt != nil {
		return ValidateRunTime("end time", *u.EndedAt, now)
	}
	return nil
}

// RunQuery selects and orders runs. Filter and OrderBy use the grammar of filter.go.
type RunQuery struct {
	Experiment string `json:"experiment,omitempty"`
	ParentID   string `json:"parent_id,omitempty"`
	// RootOnly keeps runs without a parent.
	RootOnly  bool   `json:"root_only,omitempty"`
	Filter    string `json:"filter,omitempty"`
	OrderBy   string `json:"order_by,omitempty"`
	Limit     int    `json:"limit,omitempty"`
	PageToken string `json:"page_token,omitempty"`
	// Summaries asks for every metric's summary of the page's runs too (RunPage.Summaries),
	// read with the runs. For in-process callers (the MLflow API); the REST API does not carry it.
	Summaries bool `json:"-"`
	// Lifecycle keeps only active or only deleted runs; "" keeps both (the MLflow API's
	// view_type; the CLI lists active runs unless asked).
	Lifecycle RunLifecycle `json:"lifecycle,omitempty"`
}

// RunLifecycle is whether a run is deleted: active runs take writes, deleted ones do not.
type RunLifecycle string

// The run lifecycles.
const (
	LifecycleActive  RunLifecycle = "active"
	LifecycleDeleted RunLifecycle = "deleted"
)

// RunDeleter deletes and restores runs. A deleted run stays stored and readable; the store
// refuses (ECONFLICT) its params, tags and metrics until it is restored.
type RunDeleter interface {
	SetRunLifecycle(ctx context.Context, workspace, id string, l RunLifecycle) (*Run, error)
}

// RunDeletedConflict is the ECONFLICT of a write to a deleted run.
func RunDeletedConflict(id string) *Error {
	return Errorf(ECONFLICT, "run %s is deleted: restore it to change it", id)
}

// Default and maximum page sizes of run lists.
const (
	DefaultPageSize = 100
	MaxPageSize     = 10000
)

// RunPage is one page of a run list; NextPageToken is empty on the last page.
type RunPage struct {
	Runs          []*Run `json:"runs"`
	NextPageToken string `json:"next_page_token"`
	// Summaries holds, by run id, what ListMetrics returns for each run of the page (runs
	// without metrics are left out), when RunQuery.Summaries asked for them.
	Summaries map[string][]*MetricSummary `json:"-"`
}

// RunService manages runs and their params, tags and properties.
type RunService interface {
	CreateRun(ctx context.Context, workspace string, create RunCreate) (*Run, error)
	FindRun(ctx context.Context, workspace, id string) (*Run, error)
	ListRuns(ctx context.Context, workspace string, q RunQuery) (*RunPage, error)
	// UpdateRunStatus refuses illegal transitions with ECONFLICT.
	UpdateRunStatus(ctx context.Context, workspace, id string, upd RunStatusUpdate) (*Run, error)
	// LogParams sets params; setting a param again to the same value is fine, another value is ECONFLICT.
	LogParams(ctx context.Context, workspace, id string, params map[string]string) error
	SetTags(ctx context.Context, workspace, id string, tags map[string]string) error
	DeleteTag(ctx context.Context, workspace, id, key string) error
	// AddProperties sets properties, which are immutable like params.
	AddProperties(ctx context.Context, workspace, id string, props map[string]string) error
}
