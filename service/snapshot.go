package service

import (
	"context"
	"io"
	"os"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/archive"
)

// MissingObjects returns the digests the workspace does not hold yet.
func (s *Runs) MissingObjects(ctx context.Context, workspace string, digests []string) ([]string, error) {
	if err := s.authorize(ctx, workspace); err != nil {
		return nil, err
	}
	if len(digests) > 100000 {
		return nil, atelier.Errorf(atelier.EINVALID, "too many digests in one request: %d (limit 100000)", len(digests))
	}
	for _, d := range digests {
		if err := atelier.ValidateDigest(d); err != nil {
			return nil, err
		}
	}
	return s.store.MissingObjects(ctx, workspace, digests)
}

// UploadObject stores one object of a snapshot (or any content-addressed upload).
func (s *Runs) UploadObject(ctx context.Context, workspace string, r io.Reader, digest string) (atelier.Object, error) {
	if err := s.authorizeWrite(ctx, workspace, ""); err != nil {
		return atelier.Object{}, err
	}
	if err := atelier.ValidateDigest(digest); err != nil {
		return atelier.Object{}, err
	}
	return s.putObject(ctx, workspace, r, digest)
}

// CreateSnapshot records a manifest whose objects are all stored.
func (s *Runs) CreateSnapshot(ctx context.Context, workspace string, entries []atelier.SnapshotEntry) (*atelier.Snapshot, error) {
	if err := s.authorizeWrite(ctx, workspace, ""); err != nil {
		return nil, err
	}
	snap, err := s.checkSnapshot(workspace, entries)
	if err != nil {
		return nil, err
	}
	digests := make([]string, len(entries))
	for i, e := range entries {
		digests[i] = e.Digest
	}
	missing, err := s.store.MissingObjects(ctx, workspace, digests)
	if err != nil {
		return nil, err
	}
	if len(missing) > 0 {
		for _, e := range entries {
			if e.Digest == missing[0] {
				return nil, atelier.Errorf(atelier.EINVALID, "snapshot entry %q: object %s was not uploaded", e.Path, e.Digest)
			}
		}
	}
	for _, e := range entries {
		obj, err := s.objects.StatObject(ctx, e.Digest)
		if err != nil {
			return nil, err
		}
		if obj.Size != e.Size {
			return nil, atelier.Errorf(atelier.EINVALID, "snapshot entry %q: size %d does not match the stored object's %d", e.Path, e.Size, obj.Size)
		}
	}
	if err := s.store.PutSnapshot(ctx, snap); err != nil {
		return nil, err
	}
	return snap, nil
}

func (s *Runs) checkSnapshot(workspace string, entries []atelier.SnapshotEntry) (*atelier.Snapshot, error) {
	if len(entries) > s.SnapshotMaxFiles {
		return nil, atelier.Errorf(atelier.ETOOLARGE, "snapshot has %d files, above the limit of %d", len(entries), s.SnapshotMaxFiles)
	}
	id, size, err := atelier.NormalizeSnapshot(entries)
	if err != nil {
		return nil, err
	}
	if size > s.SnapshotMaxBytes {
		return nil, atelier.Errorf(atelier.ETOOLARGE, "snapshot holds %d bytes, above the limit of %d", size, s.SnapshotMaxBytes)
	}
	return &atelier.Snapshot{ID: id, Workspace: workspace, Size: size, FileCount: len(entries), Entries: entries}, nil
}

// UploadSnapshotZip stores a zipped directory: the zip is spooled to disk (zip readers need
// random access), every entry is checked before any is stored, then stored by content.
func (s *Runs) UploadSnapshotZip(ctx context.Context, workspace string, r io.Reader) (*atelier.Snapshot, error) {
	if err := s.authorizeWrite(ctx, workspace, ""); err != nil {
		return nil, err
	}
	if _, err := s.store.FindWorkspace(ctx, workspace); err != nil {
		return nil, err
	}
	tmp, err := os.CreateTemp(s.TempDir, "snapshot-*.zip")
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	// A zip is never much larger than what it holds, so the byte limit bounds the spool too.
	n, err := io.Copy(tmp, io.LimitReader(r, s.SnapshotMaxBytes+1<<20))
	if err != nil {
		return nil, err
	}
	if n > s.SnapshotMaxBytes+1<<20-1 {
		return nil, atelier.Errorf(atelier.ETOOLARGE, "snapshot zip is larger than the limit of %d bytes", s.SnapshotMaxBytes)
	}
	opt := archive.Options{MaxBytes: s.SnapshotMaxBytes, MaxFiles: s.SnapshotMaxFiles}
	// First pass checks every name and size; the second stores. Nothing is stored for a bad zip.
	if err := archive.ReadZip(tmp, n, opt, func(string, bool, io.Reader) error { return nil }); err != nil {
		return nil, err
	}
	var entries []atelier.SnapshotEntry
	err = archive.ReadZip(tmp, n, opt, func(path string, executable bool, rc io.Reader) error {
		obj, err := s.putObject(ctx, workspace, rc, "")
		if err != nil {
			return err
		}
		entries = append(entries, atelier.SnapshotEntry{Path: path, Digest: obj.Digest, Size: obj.Size, Executable: executable})
		return nil
	})
	if err != nil {
		return nil, err
	}
	snap, err := s.checkSnapshot(workspace, entries)
	if err != nil {
		return nil, err
	}
	if err := s.store.PutSnapshot(ctx, snap); err != nil {
		return nil, err
	}
	return snap, nil
}

// FindSnapshot returns a snapshot with its manifest.
func (s *Runs) FindSnapshot(ctx context.Context, workspace, id string) (*atelier.Snapshot, error) {
	if err := s.authorizeSnapshot(ctx, workspace, id); err != nil {
		return nil, err
	}
	return s.store.FindSnapshot(ctx, workspace, id)
}

// WriteSnapshotZip streams a snapshot as a zip.
func (s *Runs) WriteSnapshotZip(ctx context.Context, workspace, id string, w io.Writer) error {
	snap, err := s.FindSnapshot(ctx, workspace, id)
	if err != nil {
		return err
	}
	return archive.WriteZip(w, snap.Entries, func(e atelier.SnapshotEntry) (io.ReadCloser, error) {
		return s.objects.OpenObject(ctx, e.Digest)
	})
}
