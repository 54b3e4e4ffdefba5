package service

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/atelier-ml/atelier"
)

// What a run's token may do. A submitted script receives a token that works while its run is
// active; it may change its run and that run's descendants (the children it creates), read
// them, their experiment and the workspace record, and read the workspace's datastores,
// datasets, environments and models (registering new model and dataset versions from its own
// runs' files). Anything else is refused with runScope, so the author of a script learns what
// the token is for. Lists it may use (runs, experiments) are confined to what it may read, as a
// user's list of workspaces holds only theirs: the MLflow API looks experiments and its
// registry records up through them.

// runScope ends every refusal of a run's token.
const runScope = "a run's token may change only its run and that run's descendants, and read those runs, " +
	"their experiment, the workspace, its datastores, datasets, environments and models " +
	"(registering models and datasets from its run's files)"

// maxRunTree bounds the runs a run's token lists at once (see confineRuns).
const maxRunTree = 10000

func refuseRun(format string, args ...any) error {
	return atelier.Errorf(atelier.EFORBIDDEN, "%s: %s", fmt.Sprintf(format, args...), runScope)
}

// runPrincipal returns the caller when it is a run's token, nil otherwise.
func runPrincipal(ctx context.Context) *atelier.Principal {
	if p := atelier.PrincipalFromContext(ctx); p != nil && p.Kind == atelier.PrincipalRun {
		return p
	}
	return nil
}

// authorizeWorkspace checks that the caller may read the workspace record and its shared
// resources (datastores, models): what authorize allows, and a run's token of the workspace.
func (s *Service) authorizeWorkspace(ctx context.Context, workspace string) error {
	_, err := s.role(ctx, workspace)
	return err
}

// authorizeRunRead checks that the caller may read run id: what authorize allows, and the
// token of id's run tree. To a run's token another run is refused whether it exists or not.
func (s *Service) authorizeRunRead(ctx context.Context, workspace, id string) error {
	if _, err := s.role(ctx, workspace); err != nil {
		return err
	}
	if p := runPrincipal(ctx); p != nil && !s.runInTree(ctx, workspace, p.RunID, id) {
		return refuseRun("run %s is neither this token's run nor one of its descendants", id)
	}
	return nil
}

// runExperiment returns the experiment of a run token's run: the one it may read.
func (s *Service) runExperiment(ctx context.Context, p *atelier.Principal) (string, error) {
	run, err := s.store.FindRun(ctx, p.Workspace, p.RunID)
	if err != nil {
		return "", err
	}
	return run.Experiment, nil
}

// authorizeExperiment checks that the caller may read the experiment: what authorize allows,
// and the token of a run of that experiment.
func (s *Service) authorizeExperiment(ctx context.Context, workspace, name string) error {
	if _, err := s.role(ctx, workspace); err != nil {
		return err
	}
	p := runPrincipal(ctx)
	if p == nil {
		return nil
	}
	exp, err := s.runExperiment(ctx, p)
	if err != nil {
		return err
	}
	if name != exp {
		return refuseRun("experiment %q is not the experiment of this token's run (%q)", name, exp)
	}
	return nil
}

// runTree lists the ids of root and its descendants.
func (s *Service) runTree(ctx context.Context, workspace, root string) ([]string, error) {
	ids := []string{root}
	for i := 0; i < len(ids); i++ {
		q := atelier.RunQuery{ParentID: ids[i], Limit: atelier.MaxPageSize}
		for {
			page, err := s.store.ListRuns(ctx, workspace, q)
			if err != nil {
				return nil, err
			}
			for _, r := range page.Runs {
				ids = append(ids, r.ID)
			}
			if len(ids) > maxRunTree {
				return nil, atelier.Errorf(atelier.ETOOLARGE, "run %s has more than %d descendants: list them a parent at a time (runs/{id}/children)", root, maxRunTree)
			}
			if page.NextPageToken == "" {
				break
			}
			q.PageToken = page.NextPageToken
		}
	}
	return ids, nil
}

// confineRuns narrows a run search of a run's token to its run tree: the children of a run of
// the tree as they are, any other search with the tree's ids added to its filter.
func (s *Service) confineRuns(ctx context.Context, p *atelier.Principal, q atelier.RunQuery) (atelier.RunQuery, error) {
	if q.ParentID != "" {
		if !s.runInTree(ctx, p.Workspace, p.RunID, q.ParentID) {
			return q, refuseRun("run %s is neither this token's run nor one of its descendants", q.ParentID)
		}
		return q, nil
	}
	// Check the caller's filter alone first, so its errors point into what they wrote.
	if _, err := atelier.ParseFilter(q.Filter); err != nil {
		return q, err
	}
	ids, err := s.runTree(ctx, p.Workspace, p.RunID)
	if err != nil {
		return q, err
	}
	quoted := make([]string, len(ids))
	for i, id := range ids {
		quoted[i] = "'" + strings.NewReplacer(`\`, `\\`, "'", "''").Replace(id) + "'"
	}
	clause := "id in (" + strings.Join(quoted, ", ") + ")"
	if strings.TrimSpace(q.Filter) == "" {
		q.Filter = clause
	} else {
		q.Filter = "(" + q.Filter + ") and " + clause
	}
	return q, nil
}

// authorizeSnapshot checks that the caller may read the snapshot: what authorize allows, and
// the token of the run it is the code of.
func (s *Service) authorizeSnapshot(ctx context.Context, workspace, id string) error {
	if _, err := s.role(ctx, workspace); err != nil {
		return err
	}
	p := runPrincipal(ctx)
	if p == nil {
		return nil
	}
	run, err := s.store.FindRun(ctx, p.Workspace, p.RunID)
	if err != nil {
		return err
	}
	if run.SnapshotID == "" || run.SnapshotID != id {
		return refuseRun("snapshot %s is not the code of this token's run", id)
	}
	return nil
}

// runnerUploads reports whether the caller is the job runner of a run still active whose
// configuration has an upload data reference holding datastore path p: the runner sends back
// what the script left in that folder (see atelier.DataUpload), and nothing else.
func (s *Service) runnerUploads(ctx context.Context, workspace, datastore, p string) bool {
	pr := runPrincipal(ctx)
	if pr == nil || !pr.Runner || pr.Workspace != workspace {
		return false
	}
	run, err := s.store.FindRun(ctx, workspace, pr.RunID)
	if err != nil || !run.Status.Active() {
		return false
	}
	var config atelier.RunConfig
	if json.Unmarshal(run.Config, &config) != nil {
		return false
	}
	for _, ref := range config.Data {
		if ref.Mode == atelier.DataUpload && ref.Datastore == datastore && strings.HasPrefix(p, ref.Folder()) {
			return true
		}
	}
	return false
}
