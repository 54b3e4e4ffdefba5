package service

import (
	"context"

	"github.com/atelier-ml/atelier"
)

// RegisterEnvironment registers an environment version: Contributors may. A spec equal to the
// name's latest version (by its canonical hash) gives that version back.
func (s *Images) RegisterEnvironment(ctx context.Context, workspace string, req atelier.EnvironmentRegister) (*atelier.Environment, error) {
	if err := s.authorizeWrite(ctx, workspace, ""); err != nil {
		return nil, err
	}
	hash, err := req.Validate()
	if err != nil {
		return nil, err
	}
	latest, err := s.store.FindEnvironment(ctx, workspace, req.Name, 0)
	if err == nil && latest.SpecHash == hash {
		return latest, nil
	} else if err != nil && atelier.ErrorCode(err) != atelier.ENOTFOUND {
		return nil, err
	}
	e := &atelier.Environment{Workspace: workspace, Name: req.Name, Spec: req.Spec, SpecHash: hash,
		Description: req.Description, Tags: req.Tags}
	if p := atelier.PrincipalFromContext(ctx); p != nil {
		e.CreatedBy = p.Name
	}
	if err := s.store.CreateEnvironmentVersion(ctx, e); err != nil {
		return nil, err
	}
	return e, nil
}

// FindEnvironment returns a version (0: the latest).
func (s *Images) FindEnvironment(ctx context.Context, workspace, name string, version int) (*atelier.Environment, error) {
	if err := s.authorizeWorkspace(ctx, workspace); err != nil {
		return nil, err
	}
	return s.store.FindEnvironment(ctx, workspace, name, version)
}

// ListEnvironments returns the latest version of each environment.
func (s *Images) ListEnvironments(ctx context.Context, workspace string) ([]*atelier.Environment, error) {
	if err := s.authorizeWorkspace(ctx, workspace); err != nil {
		return nil, err
	}
	return s.store.ListEnvironments(ctx, workspace)
}

// ListEnvironmentVersions returns an environment's versions.
func (s *Images) ListEnvironmentVersions(ctx context.Context, workspace, name string) ([]*atelier.Environment, error) {
	if err := s.authorizeWorkspace(ctx, workspace); err != nil {
		return nil, err
	}
	return s.store.ListEnvironmentVersions(ctx, workspace, name)
}

// DeleteEnvironment deletes a version, or all versions with version 0.
func (s *Images) DeleteEnvironment(ctx context.Context, workspace, name string, version int) error {
	if err := s.authorizeWrite(ctx, workspace, ""); err != nil {
		return err
	}
	return s.store.DeleteEnvironment(ctx, workspace, name, version)
}
