package service

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/url"
	"slices"
	"strings"
	"sync"

	"github.com/atelier-ml/atelier"
)

var (
	_ atelier.ComputeService = (*Service)(nil)
	_ atelier.JobHost        = (*jobHost)(nil)
)

// builtInComputeTargets returns the server's own targets (local), as users see them: they
// are configured on the server, not stored, and every workspace has them.
func (s *Compute) builtInComputeTargets() []*atelier.ComputeTarget {
	s.sched.mu.Lock()
	defer s.sched.mu.Unlock()
	list := make([]*atelier.ComputeTarget, 0, len(s.sched.targets))
	for _, t := range s.sched.targets {
		list = append(list, &atelier.ComputeTarget{Name: t.Name, Kind: t.Kind, MaxConcurrentRuns: t.MaxConcurrentRuns,
			Isolation: t.Isolation, BuiltIn: true})
	}
	slices.SortFunc(list, func(a, b *atelier.ComputeTarget) int { return strings.Compare(a.Name, b.Name) })
	return list
}

// ListComputeTargets lists the built-in compute targets and the workspace's stored ones, with
// their queues (see withRuns).
func (s *Compute) ListComputeTargets(ctx context.Context, workspace string) ([]*atelier.ComputeTarget, error) {
	if err := s.authorize(ctx, workspace); err != nil {
		return nil, err
	}
	if _, err := s.store.FindWorkspace(ctx, workspace); err != nil {
		return nil, err
	}
	list := s.builtInComputeTargets()
	for _, t := range list {
		if _, err := s.withRuns(ctx, t); err != nil {
			return nil, err
		}
	}
	stored, err := s.storedComputeTargets(ctx, workspace)
	if err != nil {
		return nil, err
	}
	return append(list, stored...), nil
}

// SubmitRun queues a script on a compute target.
func (s *Compute) SubmitRun(ctx context.Context, workspace string, sub atelier.RunSubmit) (*atelier.Run, error) {
	if err := s.authorizeWrite(ctx, workspace, sub.ParentID); err != nil {
		return nil, err
	}
	if sub.Experiment == "" {
		sub.Experiment = sub.Config.Experiment
	}
	if sub.ParentID != "" {
		// A child joins its parent's experiment, the one a run's token may write to.
		parent, err := s.store.FindRun(ctx, workspace, sub.ParentID)
		if atelier.ErrorCode(err) == atelier.ENOTFOUND {
			return nil, atelier.Errorf(atelier.EINVALID, "parent_id: run %q not found in workspace %q", sub.ParentID, workspace)
		} else if err != nil {
			return nil, err
		}
		if sub.Experiment != "" && sub.Experiment != parent.Experiment {
			return nil, atelier.Errorf(atelier.EINVALID, "experiment: a child run is in its parent's experiment %q, not in %q", parent.Experiment, sub.Experiment)
		}
		sub.Experiment = parent.Experiment
	}
	if sub.SnapshotID == "" {
		return nil, atelier.Errorf(atelier.EINVALID, "snapshot_id is required: upload the source directory first")
	}
	snap, err := s.store.FindSnapshot(ctx, workspace, sub.SnapshotID)
	if err != nil {
		return nil, err
	}
	if err := sub.Config.Validate(snap); err != nil {
		return nil, err
	}
	if err := s.checkRunCompute(ctx, workspace, sub.Config.Compute); err != nil {
		return nil, err
	}
	if err := s.data.checkRunSecrets(ctx, workspace, sub.Config.Secrets); err != nil {
		return nil, err
	}
	for _, ref := range sub.Config.Data {
		if _, err := s.data.findDatastore(ctx, workspace, ref.Datastore); atelier.ErrorCode(err) == atelier.ENOTFOUND {
			return nil, atelier.Errorf(atelier.EINVALID, "run config: data %q: datastore %q not found (see 'atelier datastore list')", ref.Name, ref.Datastore)
		} else if err != nil {
			return nil, err
		}
	}
	config, err := json.Marshal(sub.Config)
	if err != nil {
		return nil, err
	}
	run, err := s.store.CreateRun(ctx, workspace, atelier.RunCreate{Experiment: sub.Experiment, Name: sub.Name,
		Status: atelier.StatusQueued, Compute: sub.Config.Compute, Config: config, SnapshotID: sub.SnapshotID,
		Git: sub.Git, Tags: sub.Tags, Params: sub.Params, Data: sub.Config.Data, ParentID: sub.ParentID})
	if err != nil {
		return nil, err
	}
	s.publish(workspace, atelier.EventRunCreated, run.ID, run)
	s.runs.runChanged(ctx, run)
	s.sched.poke()
	return run, nil
}

// CancelRun cancels a run: a queued one at once, an active one by stopping its script.
func (s *Compute) CancelRun(ctx context.Context, workspace, id string) (*atelier.Run, error) {
	if err := s.authorizeWrite(ctx, workspace, id); err != nil {
		return nil, err
	}
	run, err := s.store.FindRun(ctx, workspace, id)
	if err != nil {
		return nil, err
	}
	if run.Status.Terminal() {
		return nil, atelier.Errorf(atelier.ECONFLICT, "run %s has already ended (%s)", id, run.Status)
	}
	if run.Compute == "" || !run.Status.Active() {
		// A queued run, or an interactive run whose client is told by the status.
		return s.runs.updateRunStatus(ctx, workspace, id, atelier.RunStatusUpdate{Status: atelier.StatusCanceled, Error: "canceled by request"})
	}
	// An executing run: the status is the request. Its runner watches it, and the controller
	// holding its lease (on this server or another) tells the driver (see controller.go).
	run, err = s.runs.updateRunStatus(ctx, workspace, id, atelier.RunStatusUpdate{Status: atelier.StatusCancelRequested})
	if err == nil {
		s.sched.poke()
	}
	return run, err
}

// mlflowTrackingURI is where the MLflow client reaches a workspace: the server's root for the
// default workspace, /workspaces/{ws}/mlflow for another (see package mlflow).
func (s *Compute) mlflowTrackingURI(workspace string) string {
	if workspace == atelier.DefaultWorkspace {
		return s.ServerURL
	}
	return s.ServerURL + "/workspaces/" + url.PathEscape(workspace) + "/mlflow"
}

// jobHost gives executors what they need from the server, without the API's authorization:
// the scheduler already decided the job may run.
type jobHost struct {
	s *Compute

	mu      sync.Mutex
	buckets map[string]atelier.DatastoreBucket // datastore name → opened for the job
}

func (h *jobHost) OpenObject(ctx context.Context, digest string) (io.ReadCloser, error) {
	return h.s.objects.OpenObject(ctx, digest)
}

func (h *jobHost) SetStatus(ctx context.Context, job *atelier.Job, status atelier.RunStatus) error {
	_, err := h.s.runs.updateRunStatus(ctx, job.Run.Workspace, job.Run.ID, atelier.RunStatusUpdate{Status: status})
	var refused *atelier.TransitionError
	if errors.As(err, &refused) {
		switch refused.From {
		case status:
			return nil // already there (the scheduler claims runs as Preparing)
		case atelier.StatusCancelRequested:
			return nil // canceling: the executor is being told through its context
		}
	}
	return err
}

func (h *jobHost) AppendLog(ctx context.Context, job *atelier.Job, path string, data []byte) error {
	return h.s.runs.appendLog(ctx, job.Run.Workspace, job.Run.ID, path, data)
}

func (h *jobHost) UploadFile(ctx context.Context, job *atelier.Job, path string, r io.Reader) error {
	_, err := h.s.runs.uploadFile(ctx, job.Run.Workspace, job.Run.ID, path, r, "")
	return err
}
