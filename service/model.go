package service

import (
	"context"
	"io"
	"path"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/archive"
)

var _ atelier.ModelService = (*Service)(nil)

// RegisterModel registers a new version of a model. From a run, the version references the
// run's stored objects (no byte is copied, so a 1 GB folder registers in milliseconds); from
// uploaded files, every object must already be held by the workspace. A run's token may register
// from its own run tree only.
func (s *Models) RegisterModel(ctx context.Context, workspace string, req atelier.ModelRegister) (*atelier.ModelVersion, error) {
	if err := s.authorizeWrite(ctx, workspace, req.RunID); err != nil {
		return nil, err
	}
	if err := req.Validate(); err != nil {
		return nil, err
	}
	v := &atelier.ModelVersion{Name: req.Name, Description: req.Description, Tags: req.Tags, Properties: req.Properties,
		Framework: req.Framework, FrameworkVersion: req.FrameworkVersion, RunID: req.RunID, Path: req.Path, Datasets: req.Datasets,
		Source: req.Source}
	var err error
	switch {
	case req.Source != "":
		// A reference: the files stay where the source says; nothing is copied or held.
	case req.Path != "":
		v.Files, err = s.runModelFiles(ctx, workspace, req.RunID, req.Path)
	default:
		v.Files, err = s.uploadedModelFiles(ctx, workspace, req.Files)
	}
	if err != nil {
		return nil, err
	}
	if err := s.store.CreateModelVersion(ctx, workspace, v); err != nil {
		return nil, err
	}
	return v, nil
}

// runModelFiles lists the run's stored files at p (a file, or a directory and everything under
// it) as model files named from p's last element: outputs/model.pkl gives model.pkl, and
// outputs/model/weights.pt gives model/weights.pt. Logs have no stored content and are left out.
func (s *Models) runModelFiles(ctx context.Context, workspace, runID, p string) ([]atelier.ModelFile, error) {
	list, err := s.store.ListFiles(ctx, workspace, runID, p)
	if err != nil {
		return nil, err
	}
	base := path.Base(p)
	var files []atelier.ModelFile
	for _, f := range list {
		if f.Log || f.Digest == "" {
			continue
		}
		files = append(files, atelier.ModelFile{Path: base + f.Path[len(p):], Digest: f.Digest, Size: f.Size})
	}
	if len(files) == 0 {
		return nil, atelier.Errorf(atelier.ENOTFOUND, "run %s has no file or directory %q", runID, p)
	}
	return files, nil
}

// uploadedModelFiles checks that the workspace holds every object of a manifest, at its size.
func (s *Models) uploadedModelFiles(ctx context.Context, workspace string, files []atelier.ModelFile) ([]atelier.ModelFile, error) {
	digests := make([]string, 0, len(files))
	seen := map[string]bool{}
	for _, f := range files {
		if !seen[f.Digest] {
			seen[f.Digest] = true
			digests = append(digests, f.Digest)
		}
	}
	missing, err := s.store.MissingObjects(ctx, workspace, digests)
	if err != nil {
		return nil, err
	}
	if len(missing) > 0 {
		for _, f := range files {
			if f.Digest == missing[0] {
				return nil, atelier.Errorf(atelier.EINVALID, "model file %q: object %s was not uploaded", f.Path, f.Digest)
			}
		}
	}
	sizes := map[string]int64{}
	for _, d := range digests {
		obj, err := s.objects.StatObject(ctx, d)
		if err != nil {
			return nil, err
		}
		sizes[d] = obj.Size
	}
	for _, f := range files {
		if sizes[f.Digest] != f.Size {
			return nil, atelier.Errorf(atelier.EINVALID, "model file %q: size %d does not match the stored object's %d", f.Path, f.Size, sizes[f.Digest])
		}
	}
	return files, nil
}

// UploadModelFiles stores the files of an upload, each hashed as it is written (blob.Store's
// PutObject without a digest), so registering local files reads every byte once on each side.
// The workspace holds the objects only once the whole stream is stored and valid: an upload that
// fails part way leaves nothing the workspace can see (the objects already written are unheld
// content, as after any aborted upload).
func (s *Models) UploadModelFiles(ctx context.Context, workspace string, files atelier.ModelFileStream) ([]atelier.ModelFile, error) {
	if err := s.authorizeWrite(ctx, workspace, ""); err != nil {
		return nil, err
	}
	if _, err := s.store.FindWorkspace(ctx, workspace); err != nil {
		return nil, err
	}
	var out []atelier.ModelFile
	var objs []atelier.Object
	for {
		f, err := files.Next()
		if err == io.EOF {
			break
		} else if err != nil {
			return nil, err
		}
		if len(out) == atelier.MaxModelFiles {
			return nil, atelier.Errorf(atelier.EINVALID, "a model may hold at most %d files", atelier.MaxModelFiles)
		}
		if err := atelier.ValidatePath(f.Path); err != nil {
			return nil, err
		}
		obj, err := s.objects.PutObject(ctx, files, "")
		if err != nil {
			return nil, err
		}
		if obj.Size != f.Size {
			return nil, atelier.Errorf(atelier.EINVALID, "model file %q: %d bytes received, %d announced", f.Path, obj.Size, f.Size)
		}
		out = append(out, atelier.ModelFile{Path: f.Path, Digest: obj.Digest, Size: obj.Size})
		objs = append(objs, obj)
	}
	if len(out) == 0 {
		return nil, atelier.Errorf(atelier.EINVALID, "the upload holds no files")
	}
	// Duplicate paths, or a file that is also a directory, would fail at registration: say so now.
	if err := atelier.ValidateModelFiles(out); err != nil {
		return nil, err
	}
	if err := s.store.HoldObjects(ctx, workspace, objs); err != nil {
		return nil, err
	}
	return out, nil
}

// FindModel returns a model's summary.
func (s *Models) FindModel(ctx context.Context, workspace, name string) (*atelier.Model, error) {
	if err := s.authorizeWorkspace(ctx, workspace); err != nil {
		return nil, err
	}
	return s.store.FindModel(ctx, workspace, name)
}

// ListModels lists model names.
func (s *Models) ListModels(ctx context.Context, workspace string, q atelier.ModelQuery) (*atelier.ModelPage, error) {
	if err := s.authorizeWorkspace(ctx, workspace); err != nil {
		return nil, err
	}
	return s.store.ListModels(ctx, workspace, q)
}

// FindModelVersion resolves a reference (name, name:version or name@alias) to a version.
func (s *Models) FindModelVersion(ctx context.Context, workspace string, ref atelier.ModelRef) (*atelier.ModelVersion, error) {
	if err := s.authorizeWorkspace(ctx, workspace); err != nil {
		return nil, err
	}
	return s.store.FindModelVersion(ctx, workspace, ref)
}

// ListModelVersions searches model versions.
func (s *Models) ListModelVersions(ctx context.Context, workspace string, q atelier.ModelQuery) (*atelier.ModelVersionPage, error) {
	if err := s.authorizeWorkspace(ctx, workspace); err != nil {
		return nil, err
	}
	return s.store.ListModelVersions(ctx, workspace, q)
}

// UpdateModelVersion changes a version's description and tags and adds properties.
func (s *Models) UpdateModelVersion(ctx context.Context, workspace string, ref atelier.ModelRef, upd atelier.ModelVersionUpdate) (*atelier.ModelVersion, error) {
	if err := s.authorizeWrite(ctx, workspace, ""); err != nil {
		return nil, err
	}
	return s.store.UpdateModelVersion(ctx, workspace, ref, upd)
}

// SetModelAlias points an alias at a version.
func (s *Models) SetModelAlias(ctx context.Context, workspace, name, alias string, version int64) (*atelier.ModelVersion, error) {
	if err := s.authorizeWrite(ctx, workspace, ""); err != nil {
		return nil, err
	}
	if err := atelier.ValidateModelName(name); err != nil {
		return nil, err
	}
	return s.store.SetModelAlias(ctx, workspace, name, alias, version)
}

// DeleteModelAlias removes an alias.
func (s *Models) DeleteModelAlias(ctx context.Context, workspace, name, alias string) error {
	if err := s.authorizeWrite(ctx, workspace, ""); err != nil {
		return err
	}
	if err := atelier.ValidateModelName(name); err != nil {
		return err
	}
	return s.store.DeleteModelAlias(ctx, workspace, name, alias)
}

// DeleteModelVersion deletes a version that nothing uses. The objects stay: other versions,
// runs or snapshots may hold the same content.
func (s *Models) DeleteModelVersion(ctx context.Context, workspace string, ref atelier.ModelRef) error {
	if err := s.authorizeWrite(ctx, workspace, ""); err != nil {
		return err
	}
	return s.store.DeleteModelVersion(ctx, workspace, ref)
}

// DeleteModel deletes every version of a model, if nothing uses any of them.
func (s *Models) DeleteModel(ctx context.Context, workspace, name string) error {
	if err := s.authorizeWrite(ctx, workspace, ""); err != nil {
		return err
	}
	return s.store.DeleteModel(ctx, workspace, name)
}

// CreateModel creates a model with no version. A run's token may, as it may register versions;
// only members change or rename models.
func (s *Models) CreateModel(ctx context.Context, workspace string, c atelier.ModelCreate) (*atelier.Model, error) {
	runID := ""
	if p := runPrincipal(ctx); p != nil {
		runID = p.RunID
	}
	if err := s.authorizeWrite(ctx, workspace, runID); err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return s.store.CreateModel(ctx, workspace, c)
}

// UpdateModel changes a model's own description and tags.
func (s *Models) UpdateModel(ctx context.Context, workspace, name string, upd atelier.ModelUpdate) (*atelier.Model, error) {
	if err := s.authorizeWrite(ctx, workspace, ""); err != nil {
		return nil, err
	}
	return s.store.UpdateModel(ctx, workspace, name, upd)
}

// RenameModel renames a model with its versions, aliases and references, in one transaction.
func (s *Models) RenameModel(ctx context.Context, workspace, name, newName string) (*atelier.Model, error) {
	if err := s.authorizeWrite(ctx, workspace, ""); err != nil {
		return nil, err
	}
	return s.store.RenameModel(ctx, workspace, name, newName)
}

// ListModelReferences lists what uses a version (or any version of a model, for a bare name).
func (s *Models) ListModelReferences(ctx context.Context, workspace string, ref atelier.ModelRef) ([]atelier.ModelReference, error) {
	if err := s.authorizeWorkspace(ctx, workspace); err != nil {
		return nil, err
	}
	return s.store.ListModelReferences(ctx, workspace, ref)
}

// OpenModelFile opens one file of a version.
func (s *Models) OpenModelFile(ctx context.Context, workspace string, ref atelier.ModelRef, p string) (*atelier.ModelFile, io.ReadCloser, error) {
	v, err := s.FindModelVersion(ctx, workspace, ref)
	if err != nil {
		return nil, nil, err
	}
	if v.IsReference() {
		return nil, nil, v.NotStored()
	}
	for i := range v.Files {
		if f := &v.Files[i]; f.Path == p {
			rc, err := s.objects.OpenObject(ctx, f.Digest)
			if err != nil {
				return nil, nil, err
			}
			return f, rc, nil
		}
	}
	return nil, nil, atelier.Errorf(atelier.ENOTFOUND, "model %s:%d has no file %q", v.Name, v.Version, p)
}

// WriteModelZip streams a version's files as a deterministic zip.
func (s *Models) WriteModelZip(ctx context.Context, workspace string, ref atelier.ModelRef, w io.Writer) error {
	v, err := s.FindModelVersion(ctx, workspace, ref)
	if err != nil {
		return err
	}
	return s.writeModelZip(ctx, v, w)
}

func (s *Models) writeModelZip(ctx context.Context, v *atelier.ModelVersion, w io.Writer) error {
	if v.IsReference() {
		return v.NotStored()
	}
	entries := make([]atelier.SnapshotEntry, len(v.Files))
	for i, f := range v.Files {
		entries[i] = atelier.SnapshotEntry{Path: f.Path, Digest: f.Digest, Size: f.Size}
	}
	return archive.WriteZip(w, entries, func(e atelier.SnapshotEntry) (io.ReadCloser, error) {
		return s.objects.OpenObject(ctx, e.Digest)
	})
}
