package service

import (
	"context"
	"io"

	"github.com/atelier-ml/atelier"
)

var _ atelier.LoggedModelService = (*Service)(nil)

// Logged models are written by members who may change the workspace and by the token of the
// run that made them (their source run, or one of its descendants); a run's token reads only
// the models of its run tree.

// writableModel returns a live model the caller may change.
func (s *Models) writableModel(ctx context.Context, workspace, id string) (*atelier.LoggedModel, error) {
	if err := s.authorizeWorkspace(ctx, workspace); err != nil {
		return nil, err
	}
	m, err := s.store.FindLoggedModel(ctx, workspace, id)
	if err != nil {
		return nil, err
	}
	if err := s.authorizeWrite(ctx, workspace, m.SourceRunID); err != nil {
		return nil, err
	}
	if m.Deleted {
		return nil, atelier.Errorf(atelier.ENOTFOUND, "logged model %q not found", id)
	}
	return m, nil
}

// CreateLoggedModel creates a Pending logged model.
func (s *Models) CreateLoggedModel(ctx context.Context, workspace string, c atelier.LoggedModelCreate) (*atelier.LoggedModel, error) {
	if err := s.authorizeWrite(ctx, workspace, c.SourceRunID); err != nil {
		return nil, err
	}
	return s.store.CreateLoggedModel(ctx, workspace, c, atelier.PrincipalName(ctx))
}

// FindLoggedModel returns a logged model, deleted or not.
func (s *Models) FindLoggedModel(ctx context.Context, workspace, id string) (*atelier.LoggedModel, error) {
	if err := s.authorizeWorkspace(ctx, workspace); err != nil {
		return nil, err
	}
	m, err := s.store.FindLoggedModel(ctx, workspace, id)
	if err != nil {
		return nil, err
	}
	return m, s.authorizeModelRead(ctx, workspace, m)
}

// UpdateLoggedModel finalizes a model or changes its params and tags.
func (s *Models) UpdateLoggedModel(ctx context.Context, workspace, id string, upd atelier.LoggedModelUpdate) (*atelier.LoggedModel, error) {
	if _, err := s.writableModel(ctx, workspace, id); err != nil {
		return nil, err
	}
	return s.store.UpdateLoggedModel(ctx, workspace, id, upd)
}

// DeleteLoggedModel marks a model deleted.
func (s *Models) DeleteLoggedModel(ctx context.Context, workspace, id string) error {
	if _, err := s.writableModel(ctx, workspace, id); err != nil {
		return err
	}
	return s.store.DeleteLoggedModel(ctx, workspace, id)
}

// ListLoggedModels searches logged models; a run's token searches its run's experiment.
func (s *Models) ListLoggedModels(ctx context.Context, workspace string, q atelier.LoggedModelQuery) (*atelier.LoggedModelPage, error) {
	if err := s.authorizeWorkspace(ctx, workspace); err != nil {
		return nil, err
	}
	if p := runPrincipal(ctx); p != nil {
		exp, err := s.runExperiment(ctx, p)
		if err != nil {
			return nil, err
		}
		keep := len(q.Experiments) == 0
		for _, e := range q.Experiments {
			keep = keep || e == exp
		}
		if !keep {
			return &atelier.LoggedModelPage{Models: []*atelier.LoggedModel{}}, nil
		}
		q.Experiments = []string{exp}
	}
	return s.store.ListLoggedModels(ctx, workspace, q)
}

// LogLoggedModelMetrics records metrics measured on a model.
func (s *Models) LogLoggedModelMetrics(ctx context.Context, workspace, id string, metrics []*atelier.LoggedModelMetric) error {
	if _, err := s.writableModel(ctx, workspace, id); err != nil {
		return err
	}
	return s.store.LogLoggedModelMetrics(ctx, workspace, id, metrics)
}

// AddRunModels links runs the caller may change to models they produced or used.
func (s *Models) AddRunModels(ctx context.Context, workspace string, links []atelier.RunModel) error {
	for _, l := range links {
		if err := s.authorizeWrite(ctx, workspace, l.RunID); err != nil {
			return err
		}
	}
	return s.store.AddRunModels(ctx, workspace, links)
}

// ListRunModels lists the models a run produced or used.
func (s *Models) ListRunModels(ctx context.Context, workspace, runID string) ([]atelier.RunModel, error) {
	if err := s.authorizeRunRead(ctx, workspace, runID); err != nil {
		return nil, err
	}
	return s.store.ListRunModels(ctx, workspace, runID)
}

// UploadLoggedModelFile streams a file into the object store and records it under the model;
// the model is checked first, so a bad id stores nothing.
func (s *Models) UploadLoggedModelFile(ctx context.Context, workspace, id, path string, r io.Reader) (*atelier.File, error) {
	if err := atelier.ValidatePath(path); err != nil {
		return nil, err
	}
	if _, err := s.writableModel(ctx, workspace, id); err != nil {
		return nil, err
	}
	obj, err := s.putObject(ctx, workspace, r, "")
	if err != nil {
		return nil, err
	}
	f := &atelier.File{Path: path, Size: obj.Size, Digest: obj.Digest}
	return f, s.store.PutLoggedModelFile(ctx, workspace, id, f)
}

// ListLoggedModelFiles lists a model's files at prefix.
func (s *Models) ListLoggedModelFiles(ctx context.Context, workspace, id, prefix string) ([]*atelier.File, error) {
	if _, err := s.FindLoggedModel(ctx, workspace, id); err != nil {
		return nil, err
	}
	return s.store.ListLoggedModelFiles(ctx, workspace, id, prefix)
}

// OpenLoggedModelFile opens one of a model's files for streaming.
func (s *Models) OpenLoggedModelFile(ctx context.Context, workspace, id, path string) (*atelier.File, io.ReadCloser, error) {
	if _, err := s.FindLoggedModel(ctx, workspace, id); err != nil {
		return nil, nil, err
	}
	f, err := s.store.FindLoggedModelFile(ctx, workspace, id, path)
	if err != nil {
		return nil, nil, err
	}
	rc, err := s.objects.OpenObject(ctx, f.Digest)
	if err != nil {
		return nil, nil, err
	}
	return f, rc, nil
}
