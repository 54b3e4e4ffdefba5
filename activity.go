package atelier

import (
	"context"
	"encoding/json"
	"time"
)

// ActivityStatus is the state of a long-running operation.
type ActivityStatus string

const (
	ActivityQueued    ActivityStatus = "Queued"
	ActivityRunning   ActivityStatus = "Running"
	ActivitySucceeded ActivityStatus = "Succeeded"
	ActivityFailed    ActivityStatus = "Failed"
	ActivityCanceled  ActivityStatus = "Canceled"
)

// Terminal reports whether the operation has ended.
func (s ActivityStatus) Terminal() bool {
	return s == ActivitySucceeded || s == ActivityFailed || s == ActivityCanceled
}

// Activity is any long-running operation (a run, an image build, a deployment) with its progress.
type Activity struct {
	ID        string         `json:"id"`
	Workspace string         `json:"workspace"`
	Kind      string         `json:"kind"`   // "run", later "image.build", "service.deploy", ...
	Target    string         `json:"target"` // the id or name of what it works on
	Status    ActivityStatus `json:"status"`
	Percent   float64        `json:"percent"`
	Message   string         `json:"message"`
	StartedAt time.Time      `json:"started_at"`
	UpdatedAt time.Time      `json:"updated_at"`
	EndedAt   *time.Time     `json:"ended_at"`
	Error     string         `json:"error"`
}

// ActivityFilter selects activities in a list.
type ActivityFilter struct {
	Kind   string
	Target string
	Active bool // only those not yet ended
	Limit  int
}

// ActivityService lists long-running operations.
type ActivityService interface {
	ListActivities(ctx context.Context, workspace string, f ActivityFilter) ([]*Activity, error)
	FindActivity(ctx context.Context, workspace, id string) (*Activity, error)
}

// Event types pushed to watchers.
const (
	EventRunCreated = "run.created"
	EventRunStatus  = "run.status"
	EventMetrics    = "run.metrics"
	EventLog        = "run.log"
	EventActivity   = "activity"
)

// Event is a change pushed to watchers: Data is the changed object (a run, the latest metric
// values, a log chunk, an activity).
type Event struct {
	ID        int64           `json:"id"`
	Type      string          `json:"type"`
	Workspace string          `json:"workspace"`
	RunID     string          `json:"run_id,omitempty"`
	Time      time.Time       `json:"time"`
	Data      json.RawMessage `json:"data"`
}

// EventFilter selects the events a watcher wants; zero values mean any.
type EventFilter struct {
	RunID string
	Types []string
}

// Match reports whether e passes the filter.
func (f EventFilter) Match(e *Event) bool {
	if f.RunID != "" && e.RunID != f.RunID {
		return false
	}
	if len(f.Types) == 0 {
		return true
	}
	for _, t := range f.Types {
		if t == e.Type {
			return true
		}
	}
	return false
}

// EventService lets clients watch a workspace without polling.
type EventService interface {
	// Subscribe delivers matching events until ctx ends; the channel is then closed. A watcher
	// too slow to keep up is dropped (its channel closed) rather than slowing the server.
	Subscribe(ctx context.Context, workspace string, f EventFilter) (<-chan *Event, error)
}
