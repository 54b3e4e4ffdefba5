package service

import (
	"context"

	"github.com/atelier-ml/atelier"
)

// RegisterDataset registers a dataset version: Contributors (and Owners, administrators) may.
// Every path's datastore must exist and hold something at the path (its folder or file up to
// the first glob element), or the registration is EINVALID naming the path.
func (s *Data) RegisterDataset(ctx context.Context, workspace string, req atelier.DatasetRegister) (*atelier.Dataset, error) {
	// A run's script registers what its run produced: its token may, with its run's id.
	if err := s.authorizeWrite(ctx, workspace, req.RunID); err != nil {
		return nil, err
	}
	if err := req.Validate(); err != nil {
		return nil, err
	}
	if req.RunID != "" {
		if _, err := s.store.FindRun(ctx, workspace, req.RunID); atelier.ErrorCode(err) == atelier.ENOTFOUND {
			return nil, atelier.Errorf(atelier.EINVALID, "run_id: run %q not found in workspace %q", req.RunID, workspace)
		} else if err != nil {
			return nil, err
		}
	}
	latest, err := s.store.FindDataset(ctx, workspace, req.Name, 0)
	switch {
	case err == nil && req.SameDefinition(latest):
		// An unchanged definition keeps its version, as Azure ML does.
		return latest, nil
	case err == nil && !req.CreateNewVersion:
		return nil, atelier.Errorf(atelier.ECONFLICT, "dataset %q already exists (version %d): set create_new_version to add a version", req.Name, latest.Version)
	case err != nil && atelier.ErrorCode(err) != atelier.ENOTFOUND:
		return nil, err
	}
	for i, p := range req.Paths {
		if err := s.checkDatasetPath(ctx, workspace, i, p); err != nil {
			return nil, err
		}
	}
	d := &atelier.Dataset{Workspace: workspace, Name: req.Name, Type: req.Type, Paths: req.Paths, Format: req.Format,
		Transforms: req.Transforms, Description: req.Description, Tags: req.Tags, RunID: req.RunID}
	if p := atelier.PrincipalFromContext(ctx); p != nil {
		d.CreatedBy = p.Name
	}
	if err := s.store.CreateDatasetVersion(ctx, d); err != nil {
		return nil, err
	}
	return d, nil
}

// checkDatasetPath checks that path i of a registration names something that exists.
func (s *Data) checkDatasetPath(ctx context.Context, workspace string, i int, p atelier.DatasetPath) error {
	if _, err := s.findDatastore(ctx, workspace, p.Datastore); atelier.ErrorCode(err) == atelier.ENOTFOUND {
		return atelier.Errorf(atelier.EINVALID, "paths[%d].datastore: datastore %q not found in workspace %q (see 'atelier datastore list')", i, p.Datastore, workspace)
	} else if err != nil {
		return err
	}
	base := p.Base()
	if base == "" {
		return nil
	}
	b, err := s.openDatastore(ctx, workspace, p.Datastore)
	if err != nil {
		return err
	}
	defer b.Close()
	page, err := b.List(ctx, atelier.DatastoreFileQuery{Prefix: base + "/", Recursive: true, Limit: 1})
	if err == nil && len(page.Files) > 0 {
		return nil
	}
	if err != nil && atelier.ErrorCode(err) != atelier.ENOTFOUND && atelier.ErrorCode(err) != atelier.EINVALID {
		return err
	}
	page, err = b.List(ctx, atelier.DatastoreFileQuery{Prefix: base, Limit: 100})
	if err == nil {
		for _, f := range page.Files {
			if f.Path == base {
				return nil
			}
		}
	} else if atelier.ErrorCode(err) != atelier.ENOTFOUND && atelier.ErrorCode(err) != atelier.EINVALID {
		return err
	}
	return atelier.Errorf(atelier.EINVALID, "paths[%d].path: datastore %q has no file or folder %q", i, p.Datastore, base)
}

// FindDataset returns a version (0: the latest).
func (s *Data) FindDataset(ctx context.Context, workspace, name string, version int) (*atelier.Dataset, error) {
	if err := s.authorizeWorkspace(ctx, workspace); err != nil {
		return nil, err
	}
	return s.store.FindDataset(ctx, workspace, name, version)
}

// ListDatasets returns the latest version of each dataset.
func (s *Data) ListDatasets(ctx context.Context, workspace string) ([]*atelier.Dataset, error) {
	if err := s.authorizeWorkspace(ctx, workspace); err != nil {
		return nil, err
	}
	return s.store.ListDatasets(ctx, workspace)
}

// ListDatasetVersions returns a dataset's versions.
func (s *Data) ListDatasetVersions(ctx context.Context, workspace, name string) ([]*atelier.Dataset, error) {
	if err := s.authorizeWorkspace(ctx, workspace); err != nil {
		return nil, err
	}
	return s.store.ListDatasetVersions(ctx, workspace, name)
}

// UpdateDataset changes a version's description and tags.
func (s *Data) UpdateDataset(ctx context.Context, workspace, name string, version int, upd atelier.DatasetUpdate) (*atelier.Dataset, error) {
	if err := s.authorizeWrite(ctx, workspace, ""); err != nil {
		return nil, err
	}
	if upd.Description != nil && len(*upd.Description) > atelier.MaxDatasetDescription {
		return nil, atelier.Errorf(atelier.EINVALID, "description: at most %d bytes", atelier.MaxDatasetDescription)
	}
	if err := atelier.ValidateKeyValues("tag", upd.Tags, atelier.MaxTagValue); err != nil {
		return nil, err
	}
	return s.store.UpdateDataset(ctx, workspace, name, version, upd)
}

// DeleteDataset deletes a version, or all versions with version 0.
func (s *Data) DeleteDataset(ctx context.Context, workspace, name string, version int) error {
	if err := s.authorizeWrite(ctx, workspace, ""); err != nil {
		return err
	}
	return s.store.DeleteDataset(ctx, workspace, name, version)
}

// RecordDatasetRun records lineage: who may change the run (its token included) may say which
// dataset versions it consumed.
func (s *Data) RecordDatasetRun(ctx context.Context, workspace string, use atelier.DatasetRun) error {
	if use.RunID == "" {
		return atelier.Errorf(atelier.EINVALID, "run_id is required")
	}
	if err := s.authorizeWrite(ctx, workspace, use.RunID); err != nil {
		return err
	}
	return s.store.RecordDatasetRun(ctx, workspace, use)
}

// DatasetRuns lists lineage (see atelier.DatasetStore).
func (s *Data) DatasetRuns(ctx context.Context, workspace, name string, version int, runID string) ([]*atelier.DatasetRun, error) {
	authorize := s.authorizeWorkspace
	if runID != "" {
		authorize = func(ctx context.Context, workspace string) error { return s.authorizeRunRead(ctx, workspace, runID) }
	}
	if err := authorize(ctx, workspace); err != nil {
		return nil, err
	}
	return s.store.DatasetRuns(ctx, workspace, name, version, runID)
}
