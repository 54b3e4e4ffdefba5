package service

import (
	"context"
	"io"

	"github.com/atelier-ml/atelier"
)

var _ atelier.BaseImageService = (*Service)(nil)

// baseImporter is the builder's base import, or a refusal when it has none.
func (s *Images) baseImporter() (atelier.BaseImporter, error) {
	if b, ok := s.Builder.(atelier.BaseImporter); ok {
		return b, nil
	}
	return nil, atelier.Errorf(atelier.EINVALID, "this server's image builder imports no base images (it has no workspace image registry)")
}

// ImportBaseImage stores an uploaded base image in the workspace registry (Contributors; with
// setDefault, Owners, as it changes what the workspace's images are built on).
func (s *Images) ImportBaseImage(ctx context.Context, workspace, ref string, setDefault bool, r io.Reader) (*atelier.BaseImage, error) {
	var err error
	if setDefault {
		err = s.authorizeOwner(ctx, workspace)
	} else {
		err = s.authorizeWrite(ctx, workspace, "")
	}
	if err != nil {
		return nil, err
	}
	name, tag, err := atelier.ParseBaseRef(ref)
	if err != nil {
		return nil, err
	}
	imp, err := s.baseImporter()
	if err != nil {
		return nil, err
	}
	b, err := imp.ImportBase(ctx, workspace, name, tag, r)
	if err != nil {
		return nil, err
	}
	if setDefault {
		if err := imp.SetDefaultBase(ctx, workspace, name+":"+tag); err != nil {
			return nil, err
		}
		b.Default = true
	}
	return b, nil
}

// ListBaseImages lists the workspace's imported bases and its default base (its members).
func (s *Images) ListBaseImages(ctx context.Context, workspace string) (*atelier.BaseImageList, error) {
	if err := s.authorize(ctx, workspace); err != nil {
		return nil, err
	}
	imp, err := s.baseImporter()
	if err != nil {
		return nil, err
	}
	list, err := imp.ListBases(ctx, workspace)
	if err != nil {
		return nil, err
	}
	def, err := imp.DefaultBase(ctx, workspace)
	if err != nil {
		return nil, err
	}
	return &atelier.BaseImageList{Bases: list, Default: def}, nil
}

// SetDefaultBaseImage sets the workspace's default base (Owners); the base must be one an
// image can be built on now.
func (s *Images) SetDefaultBaseImage(ctx context.Context, workspace, base string) error {
	if err := s.authorizeOwner(ctx, workspace); err != nil {
		return err
	}
	imp, err := s.baseImporter()
	if err != nil {
		return err
	}
	return imp.SetDefaultBase(ctx, workspace, base)
}

// CollectRegistryGarbage runs the registry's garbage collection now (administrators).
func (s *Images) CollectRegistryGarbage(ctx context.Context) (*atelier.RegistryGCReport, error) {
	if err := s.authorizeAdmin(ctx); err != nil {
		return nil, err
	}
	imp, err := s.baseImporter()
	if err != nil {
		return nil, err
	}
	return imp.CollectGarbage(ctx)
}

// defaultBase is the base of an image that names none: the workspace's default, else "" (the
// server's).
func (s *Images) defaultBase(ctx context.Context, workspace string) (string, error) {
	imp, ok := s.Builder.(atelier.BaseImporter)
	if !ok {
		return "", nil
	}
	return imp.DefaultBase(ctx, workspace)
}
