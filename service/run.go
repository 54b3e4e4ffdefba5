package service

import (
	"context"
	"unicode/utf8"

	"github.com/atelier-ml/atelier"
)

// CreateWorkspace creates a workspace. Administrators and users may; a user who creates one
// becomes its Owner (a team starts its own workspace without waiting for an administrator).
func (s *Runs) CreateWorkspace(ctx context.Context, ws *atelier.Workspace) error {
	p := atelier.PrincipalFromContext(ctx)
	if p == nil {
		return atelier.Errorf(atelier.EUNAUTHORIZED, "authentication required")
	}
	if p.Kind == atelier.PrincipalRun {
		return refuseRun("a run's token may not create workspaces")
	}
	ws.CreatedBy = p.Name
	if err := s.store.CreateWorkspace(ctx, ws); err != nil {
		return err
	}
	if p.Kind == atelier.PrincipalUser {
		if err := s.store.PutMember(ctx, &atelier.Member{Workspace: ws.Name, User: p.Name, Role: atelier.RoleOwner}); err != nil {
			// A workspace nobody but an administrator can reach helps no one.
			s.store.DeleteWorkspace(context.WithoutCancel(ctx), ws.Name, true)
			return err
		}
		s.forgetRoles()
	}
	return nil
}

// FindWorkspace returns a workspace.
func (s *Runs) FindWorkspace(ctx context.Context, name string) (*atelier.Workspace, error) {
	if err := s.authorizeWorkspace(ctx, name); err != nil {
		return nil, err
	}
	return s.store.FindWorkspace(ctx, name)
}

// ListWorkspaces lists the workspaces the caller may see.
func (s *Runs) ListWorkspaces(ctx context.Context) ([]*atelier.Workspace, error) {
	p := atelier.PrincipalFromContext(ctx)
	if p == nil {
		return nil, atelier.Errorf(atelier.EUNAUTHORIZED, "authentication required")
	}
	list, err := s.store.ListWorkspaces(ctx)
	if err != nil || p.Kind == atelier.PrincipalAdmin {
		return list, err
	}
	member := map[string]bool{}
	if p.Kind == atelier.PrincipalUser {
		ms, err := s.store.ListMemberships(ctx, p.Name)
		if err != nil {
			return nil, err
		}
		for _, m := range ms {
			member[m.Workspace] = true
		}
	} else {
		member[p.Workspace] = true
	}
	visible := list[:0]
	for _, ws := range list {
		if member[ws.Name] {
			visible = append(visible, ws)
		}
	}
	return visible, nil
}

// DeleteWorkspace deletes a workspace (its Owners and administrators). The default workspace
// stays.
func (s *Runs) DeleteWorkspace(ctx context.Context, name string, force bool) error {
	if err := s.authorizeOwner(ctx, name); err != nil {
		return err
	}
	if name == atelier.DefaultWorkspace {
		return atelier.Errorf(atelier.ECONFLICT, "the default workspace cannot be deleted")
	}
	err := s.store.DeleteWorkspace(ctx, name, force)
	s.forgetRoles()
	s.data.datastores.dropAll()
	return err
}

// FindExperiment returns an experiment.
func (s *Runs) FindExperiment(ctx context.Context, workspace, name string) (*atelier.Experiment, error) {
	if err := s.authorizeExperiment(ctx, workspace, name); err != nil {
		return nil, err
	}
	return s.store.FindExperiment(ctx, workspace, name)
}

// ListExperiments lists a workspace's experiments; to a run's token, its run's experiment.
func (s *Runs) ListExperiments(ctx context.Context, workspace string, f atelier.ExperimentFilter) ([]*atelier.Experiment, error) {
	if err := s.authorizeWorkspace(ctx, workspace); err != nil {
		return nil, err
	}
	list, err := s.store.ListExperiments(ctx, workspace, f)
	p := runPrincipal(ctx)
	if err != nil || p == nil {
		return list, err
	}
	exp, err := s.runExperiment(ctx, p)
	if err != nil {
		return nil, err
	}
	mine := []*atelier.Experiment{}
	for _, e := range list {
		if e.Name == exp {
			mine = append(mine, e)
		}
	}
	return mine, nil
}

// SearchExperiments searches a workspace's experiments in the store; to a run's token, only its
// run's experiment is found.
func (s *Runs) SearchExperiments(ctx context.Context, workspace string, q atelier.ExperimentQuery) (*atelier.ExperimentPage, error) {
	if err := s.authorizeWorkspace(ctx, workspace); err != nil {
		return nil, err
	}
	page, err := s.store.SearchExperiments(ctx, workspace, q)
	p := runPrincipal(ctx)
	if err != nil || p == nil {
		return page, err
	}
	exp, err := s.runExperiment(ctx, p)
	if err != nil {
		return nil, err
	}
	mine := &atelier.ExperimentPage{Experiments: []*atelier.Experiment{}, NextPageToken: page.NextPageToken}
	for _, e := range page.Experiments {
		if e.Name == exp {
			mine.Experiments = append(mine.Experiments, e)
		}
	}
	return mine, nil
}

// CreateExperiment creates an experiment before its first run; ECONFLICT when it exists.
func (s *Runs) CreateExperiment(ctx context.Context, workspace string, c atelier.ExperimentCreate) (*atelier.Experiment, error) {
	if err := s.authorizeWrite(ctx, workspace, ""); err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return s.store.CreateExperiment(ctx, workspace, c)
}

// SetRunLifecycle deletes or restores a run.
func (s *Runs) SetRunLifecycle(ctx context.Context, workspace, id string, l atelier.RunLifecycle) (*atelier.Run, error) {
	if err := s.authorizeWrite(ctx, workspace, id); err != nil {
		return nil, err
	}
	return s.store.SetRunLifecycle(ctx, workspace, id, l)
}

// UpdateExperiment renames, archives or restores an experiment.
func (s *Runs) UpdateExperiment(ctx context.Context, workspace, name string, upd atelier.ExperimentUpdate) (*atelier.Experiment, error) {
	if err := s.authorizeWrite(ctx, workspace, ""); err != nil {
		return nil, err
	}
	if err := upd.Validate(); err != nil {
		return nil, err
	}
	return s.store.UpdateExperiment(ctx, workspace, name, upd)
}

// CreateRun creates a run and its activity.
func (s *Runs) CreateRun(ctx context.Context, workspace string, c atelier.RunCreate) (*atelier.Run, error) {
	if err := s.authorizeWrite(ctx, workspace, c.ParentID); err != nil {
		return nil, err
	}
	if p := runPrincipal(ctx); p != nil {
		if c.ParentID == "" {
			return nil, refuseRun("a run's token may create child runs only (set parent_id)")
		}
		// Its children stay in its experiment, the one experiment the token reads.
		exp, err := s.runExperiment(ctx, p)
		if err != nil {
			return nil, err
		}
		if c.Experiment != "" && c.Experiment != exp {
			return nil, refuseRun("a run's token creates child runs in its run's experiment %q, not in %q", exp, c.Experiment)
		}
		c.Experiment = exp
	}
	run, err := s.store.CreateRun(ctx, workspace, c)
	if err != nil {
		return nil, err
	}
	s.publish(workspace, atelier.EventRunCreated, run.ID, run)
	s.runChanged(ctx, run)
	return run, nil
}

// FindRun returns a run.
func (s *Runs) FindRun(ctx context.Context, workspace, id string) (*atelier.Run, error) {
	if err := s.authorizeRunRead(ctx, workspace, id); err != nil {
		return nil, err
	}
	return s.store.FindRun(ctx, workspace, id)
}

// ListRuns searches runs; a run's token searches its run tree only.
func (s *Runs) ListRuns(ctx context.Context, workspace string, q atelier.RunQuery) (*atelier.RunPage, error) {
	if err := s.authorizeWorkspace(ctx, workspace); err != nil {
		return nil, err
	}
	if p := runPrincipal(ctx); p != nil {
		var err error
		if q, err = s.confineRuns(ctx, p, q); err != nil {
			return nil, err
		}
	}
	return s.store.ListRuns(ctx, workspace, q)
}

// UpdateRunStatus moves a run through its lifecycle and publishes the change.
func (s *Runs) UpdateRunStatus(ctx context.Context, workspace, id string, upd atelier.RunStatusUpdate) (*atelier.Run, error) {
	if err := s.authorizeWrite(ctx, workspace, id); err != nil {
		return nil, err
	}
	p := runPrincipal(ctx)
	runner := p != nil && p.Runner && p.RunID == id
	if upd.Status == atelier.StatusCanceled {
		if runner {
			// The run's job runner stopped its script as asked: that ends the request. From
			// anyone else, Canceled is a request (see CancelRun).
			if run, err := s.store.FindRun(ctx, workspace, id); err == nil && run.Status == atelier.StatusCancelRequested {
				return s.updateRunStatus(ctx, workspace, id, upd)
			}
		}
		return s.compute.CancelRun(ctx, workspace, id)
	}
	if upd.Status.Terminal() && !runner {
		// A submitted script that completes or fails its own run (as Azure ML scripts do)
		// does not end it: the script's exit does, once its outputs are uploaded, as its
		// runner records. A failure it asks for (run.fail()) is kept for that end.
		if run, err := s.store.FindRun(ctx, workspace, id); err == nil && run.Compute != "" && run.Status.Active() {
			if p != nil && p.RunID == id && upd.Status == atelier.StatusFailed {
				props := map[string]string{requestedStatusProperty: string(atelier.StatusFailed)}
				if upd.Error != "" {
					props[requestedErrorProperty] = truncateText(upd.Error, atelier.MaxTagValue)
				}
				if err := s.store.AddProperties(ctx, workspace, id, props); err != nil && atelier.ErrorCode(err) != atelier.ECONFLICT {
					return nil, err
				}
				return s.store.FindRun(ctx, workspace, id)
			}
			return run, nil
		}
	}
	if runner && upd.Status == atelier.StatusCompleted {
		if run, err := s.store.FindRun(ctx, workspace, id); err == nil {
			upd = asRequested(run, upd)
		}
	}
	return s.updateRunStatus(ctx, workspace, id, upd)
}

// The properties that keep a failure a submitted script asked for (run.fail()) until its end.
const (
	requestedStatusProperty = "atelier.requested_status"
	requestedErrorProperty  = "atelier.requested_error"
)

// asRequested is the end of a run whose script exited 0: Failed when the script failed its run.
func asRequested(run *atelier.Run, upd atelier.RunStatusUpdate) atelier.RunStatusUpdate {
	if upd.Status == atelier.StatusCompleted && run.Properties[requestedStatusProperty] == string(atelier.StatusFailed) {
		upd.Status = atelier.StatusFailed
		upd.Error = run.Properties[requestedErrorProperty]
		if upd.Error == "" {
			upd.Error = "the script failed its run (run.fail())"
		}
	}
	return upd
}

// truncateText cuts s to at most n bytes, on a rune boundary.
func truncateText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// updateRunStatus changes a run's status without authorization (for the scheduler) and tells
// watchers.
func (s *Runs) updateRunStatus(ctx context.Context, workspace, id string, upd atelier.RunStatusUpdate) (*atelier.Run, error) {
	run, err := s.store.UpdateRunStatus(ctx, workspace, id, upd)
	if err != nil {
		return nil, err
	}
	s.publish(workspace, atelier.EventRunStatus, run.ID, run)
	s.runChanged(ctx, run)
	if run.Compute != "" && run.Status.Terminal() {
		s.sched.poke() // its target has room for the next queued run; its job can be released
	}
	return run, nil
}

// runChanged tells watchers about the run's activity (the store keeps it in step with the run).
func (s *Runs) runChanged(ctx context.Context, run *atelier.Run) {
	s.publish(run.Workspace, atelier.EventActivity, run.ID, run.Activity(s.now().UTC()))
}

// LogParams sets params.
func (s *Runs) LogParams(ctx context.Context, workspace, id string, params map[string]string) error {
	if err := s.authorizeWrite(ctx, workspace, id); err != nil {
		return err
	}
	return s.store.LogParams(ctx, workspace, id, params)
}

// SetTags sets tags.
func (s *Runs) SetTags(ctx context.Context, workspace, id string, tags map[string]string) error {
	if err := s.authorizeWrite(ctx, workspace, id); err != nil {
		return err
	}
	return s.store.SetTags(ctx, workspace, id, tags)
}

// DeleteTag removes a tag.
func (s *Runs) DeleteTag(ctx context.Context, workspace, id, key string) error {
	if err := s.authorizeWrite(ctx, workspace, id); err != nil {
		return err
	}
	return s.store.DeleteTag(ctx, workspace, id, key)
}

// AddProperties sets properties.
func (s *Runs) AddProperties(ctx context.Context, workspace, id string, props map[string]string) error {
	if err := s.authorizeWrite(ctx, workspace, id); err != nil {
		return err
	}
	return s.store.AddProperties(ctx, workspace, id, props)
}

// Subscribe streams a workspace's events; a run's token watches one run of its tree.
func (s *Runs) Subscribe(ctx context.Context, workspace string, f atelier.EventFilter) (<-chan *atelier.Event, error) {
	if runPrincipal(ctx) != nil && f.RunID == "" {
		if err := s.authorizeWorkspace(ctx, workspace); err != nil {
			return nil, err
		}
		return nil, refuseRun("a run's token may watch the events of one of its runs only (set run_id)")
	}
	if err := s.authorizeRunRead(ctx, workspace, f.RunID); err != nil {
		return nil, err
	}
	if _, err := s.store.FindWorkspace(ctx, workspace); err != nil {
		return nil, err
	}
	return s.events.Subscribe(ctx, workspace, f), nil
}

// ListActivities lists activities.
func (s *Runs) ListActivities(ctx context.Context, workspace string, f atelier.ActivityFilter) ([]*atelier.Activity, error) {
	if err := s.authorize(ctx, workspace); err != nil {
		return nil, err
	}
	return s.store.ListActivities(ctx, workspace, f)
}

// FindActivity returns an activity (a run's token: those of its runs, whose ids are the runs').
func (s *Runs) FindActivity(ctx context.Context, workspace, id string) (*atelier.Activity, error) {
	if err := s.authorizeRunRead(ctx, workspace, id); err != nil {
		return nil, err
	}
	return s.store.FindActivity(ctx, workspace, id)
}
