package service

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync"

	"github.com/atelier-ml/atelier"
)

var _ atelier.DatastoreService = (*Service)(nil)

// maxRecursiveDelete bounds one recursive delete, so a request cannot run for hours.
const maxRecursiveDelete = 100000

// ensureDefaultDatastore creates the workspace's built-in datastore on first use: a folder in
// the server's data directory.
func (s *Data) ensureDefaultDatastore(ctx context.Context, workspace string) error {
	_, err := s.store.FindDatastore(ctx, workspace, atelier.DefaultDatastore)
	if atelier.ErrorCode(err) != atelier.ENOTFOUND {
		return err
	}
	if _, werr := s.store.FindWorkspace(ctx, workspace); werr != nil {
		return werr
	}
	err = s.store.CreateDatastore(ctx, workspace, &atelier.Datastore{Name: atelier.DefaultDatastore, Kind: atelier.DatastoreFiles, CreatedBy: "system"})
	if atelier.ErrorCode(err) == atelier.ECONFLICT {
		return nil // created meanwhile
	}
	return err
}

// sealAAD binds sealed credentials to their datastore.
func sealAAD(workspace, name string) []byte {
	return []byte("atelier datastore\x00" + workspace + "\x00" + name)
}

func (s *Data) sealCredentials(workspace, name string, creds atelier.DatastoreCredentials) ([]byte, error) {
	if len(creds.Names()) == 0 {
		return nil, nil
	}
	if s.Secrets == nil {
		return nil, atelier.Errorf(atelier.EUNAVAILABLE, "the server has no master key, so it cannot store credentials")
	}
	plain, err := json.Marshal(creds)
	if err != nil {
		return nil, err
	}
	return s.Secrets.Seal(plain, sealAAD(workspace, name))
}

func (s *Data) openCredentials(d *atelier.Datastore) (atelier.DatastoreCredentials, error) {
	var creds atelier.DatastoreCredentials
	if len(d.Sealed) == 0 {
		return creds, nil
	}
	if s.Secrets == nil {
		return creds, atelier.Errorf(atelier.EUNAVAILABLE, "the server has no master key, so it cannot use the credentials of datastore %q", d.Name)
	}
	plain, err := s.Secrets.Open(d.Sealed, sealAAD(d.Workspace, d.Name))
	if err != nil {
		s.log.Error("opening datastore credentials", "workspace", d.Workspace, "datastore", d.Name, "err", err)
		return creds, atelier.Errorf(atelier.EUNAVAILABLE, "the credentials of datastore %q cannot be decrypted (was the server's master key changed?): register them again with 'atelier datastore update'", d.Name)
	}
	if err := json.Unmarshal(plain, &creds); err != nil {
		return creds, err
	}
	return creds, nil
}

// checkFilesPath refuses a files datastore inside (or around) the server's data directory,
// which holds the database, the master key and every workspace's objects.
func (s *Data) checkFilesPath(p string) (string, error) {
	clean := filepath.Clean(p)
	if real, err := filepath.EvalSymlinks(clean); err == nil {
		clean = real
	}
	for _, dir := range []struct{ path, what string }{{s.DataDir, "data directory"}, {s.ArtifactDir, "artifact folder"}} {
		if dir.path == "" {
			continue
		}
		data := filepath.Clean(dir.path)
		if real, err := filepath.EvalSymlinks(data); err == nil {
			data = real
		}
		if within(clean, data) || within(data, clean) {
			return "", atelier.Errorf(atelier.EINVALID, "path %q overlaps the server's %s: choose another folder", p, dir.what)
		}
	}
	return clean, nil
}

func within(p, dir string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

// public is a datastore as users see it: without its sealed credentials, and the built-in one
// where it really lives when that is the server's cloud bucket.
func (s *Data) public(d *atelier.Datastore) *atelier.Datastore {
	d.Sealed = nil
	if loc := s.BuiltInLocation; loc != nil && isBuiltIn(d) {
		d.Kind, d.Endpoint, d.Region, d.Bucket, d.Account, d.Container, d.PathStyle =
			loc.Kind, loc.Endpoint, loc.Region, loc.Bucket, loc.Account, loc.Container, loc.PathStyle
		d.Prefix = strings.TrimLeft(strings.TrimRight(loc.Prefix, "/")+"/"+d.Workspace+"/", "/")
	}
	return d
}

// isBuiltIn reports whether d is a workspace's built-in datastore, as stored.
func isBuiltIn(d *atelier.Datastore) bool {
	return d.Name == atelier.DefaultDatastore && d.Kind == atelier.DatastoreFiles && d.Path == ""
}

// RegisterDatastore registers a datastore; its credentials are sealed before they are stored.
func (s *Data) RegisterDatastore(ctx context.Context, workspace string, spec atelier.DatastoreSpec) (*atelier.Datastore, error) {
	if err := s.authorizeManage(ctx, workspace); err != nil {
		return nil, err
	}
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	if spec.Kind == atelier.DatastoreFiles {
		// A folder of the server's disk: only its administrator may expose one.
		if err := s.authorizeAdmin(ctx); err != nil {
			return nil, atelier.Errorf(atelier.EFORBIDDEN, "only a server administrator may register a files datastore (a folder of the server)")
		}
		p, err := s.checkFilesPath(spec.Path)
		if err != nil {
			return nil, err
		}
		spec.Path = p
	}
	if err := s.ensureDefaultDatastore(ctx, workspace); err != nil {
		return nil, err
	}
	d := spec.Datastore()
	sealed, err := s.sealCredentials(workspace, spec.Name, spec.Credentials())
	if err != nil {
		return nil, err
	}
	d.Sealed = sealed
	if err := s.store.CreateDatastore(ctx, workspace, d); err != nil {
		return nil, err
	}
	return s.public(d), nil
}

// FindDatastore returns a datastore's configuration (never its credentials).
func (s *Data) FindDatastore(ctx context.Context, workspace, name string) (*atelier.Datastore, error) {
	d, err := s.findDatastore(ctx, workspace, name)
	if err != nil {
		return nil, err
	}
	return s.public(d), nil
}

func (s *Data) findDatastore(ctx context.Context, workspace, name string) (*atelier.Datastore, error) {
	if err := s.authorizeWorkspace(ctx, workspace); err != nil {
		return nil, err
	}
	if err := atelier.ValidateName("datastore", name); err != nil {
		return nil, err
	}
	if name == atelier.DefaultDatastore {
		if err := s.ensureDefaultDatastore(ctx, workspace); err != nil {
			return nil, err
		}
	}
	return s.store.FindDatastore(ctx, workspace, name)
}

// ListDatastores lists a workspace's datastores.
func (s *Data) ListDatastores(ctx context.Context, workspace string) ([]*atelier.Datastore, error) {
	if err := s.authorizeWorkspace(ctx, workspace); err != nil {
		return nil, err
	}
	if err := s.ensureDefaultDatastore(ctx, workspace); err != nil {
		return nil, err
	}
	list, err := s.store.ListDatastores(ctx, workspace)
	for _, d := range list {
		s.public(d)
	}
	return list, err
}

// UpdateDatastoreCredentials replaces a datastore's credentials.
func (s *Data) UpdateDatastoreCredentials(ctx context.Context, workspace, name string, creds atelier.DatastoreCredentials) (*atelier.Datastore, error) {
	if err := s.authorizeManage(ctx, workspace); err != nil {
		return nil, err
	}
	d, err := s.findDatastore(ctx, workspace, name)
	if err != nil {
		return nil, err
	}
	if isBuiltIn(d) {
		return nil, atelier.Errorf(atelier.EINVALID, "datastore %q is the workspace's built-in datastore: it uses the server's own storage and credentials", name)
	}
	if d.Kind == atelier.DatastoreFiles {
		return nil, atelier.Errorf(atelier.EINVALID, "datastore %q is a files datastore: it has no credentials", name)
	}
	if err := creds.Validate(d.Kind); err != nil {
		return nil, err
	}
	sealed, err := s.sealCredentials(workspace, name, creds)
	if err != nil {
		return nil, err
	}
	d, err = s.store.UpdateDatastoreCredentials(ctx, workspace, name, sealed, creds.Names())
	s.datastores.drop(datastoreKey(workspace, name))
	if err != nil {
		return nil, err
	}
	return s.public(d), nil
}

// SetDefaultDatastore makes a datastore the workspace's default.
func (s *Data) SetDefaultDatastore(ctx context.Context, workspace, name string) (*atelier.Datastore, error) {
	if err := s.authorizeManage(ctx, workspace); err != nil {
		return nil, err
	}
	if err := atelier.ValidateName("datastore", name); err != nil {
		return nil, err
	}
	if err := s.ensureDefaultDatastore(ctx, workspace); err != nil {
		return nil, err
	}
	d, err := s.store.SetDefaultDatastore(ctx, workspace, name)
	if err != nil {
		return nil, err
	}
	return s.public(d), nil
}

// DeleteDatastore forgets a datastore; the data stays in its storage. The built-in datastore
// stays; deleting the default needs force and makes the built-in one the default again.
func (s *Data) DeleteDatastore(ctx context.Context, workspace, name string, force bool) error {
	if err := s.authorizeManage(ctx, workspace); err != nil {
		return err
	}
	if err := atelier.ValidateName("datastore", name); err != nil {
		return err
	}
	if name == atelier.DefaultDatastore {
		return atelier.Errorf(atelier.ECONFLICT, "the built-in datastore %q cannot be deleted", name)
	}
	if err := s.ensureDefaultDatastore(ctx, workspace); err != nil {
		return err
	}
	if !force {
		if _, err := s.store.FindDatastore(ctx, workspace, name); err != nil {
			return err
		}
		// Runs' lineage names it: deleting it would leave them pointing at nothing.
		ids, total, err := s.store.DatastoreRuns(ctx, workspace, name, 3)
		if err != nil {
			return err
		}
		if total > 0 {
			more := ""
			if total > len(ids) {
				more = fmt.Sprintf(" and %d more", total-len(ids))
			}
			return atelier.Errorf(atelier.ECONFLICT, "datastore %q is referenced by runs %s%s: delete it with force to forget it anyway",
				name, strings.Join(ids, ", "), more)
		}
	}
	err := s.store.DeleteDatastore(ctx, workspace, name, force, atelier.DefaultDatastore)
	s.datastores.drop(datastoreKey(workspace, name))
	return err
}

// openBucket opens a datastore found in the store, without authorization (the callers checked).
func (s *Data) openBucket(ctx context.Context, d *atelier.Datastore) (atelier.DatastoreBucket, error) {
	if s.Datastores == nil {
		return nil, atelier.Errorf(atelier.EUNAVAILABLE, "this server cannot open datastores")
	}
	creds, err := s.openCredentials(d)
	if err != nil {
		return nil, err
	}
	return s.Datastores.OpenDatastore(ctx, d, creds)
}

// DatastoreAccess checks that the caller may read the datastore's files, or with write change
// them.
func (s *Data) DatastoreAccess(ctx context.Context, workspace, name string, write bool) error {
	if write {
		if err := s.authorizeManage(ctx, workspace); err != nil {
			return err
		}
	}
	if s.datastores.has(datastoreKey(workspace, name), s.now()) {
		// Open, so it exists: no need to read the registry.
		return s.authorizeWorkspace(ctx, workspace)
	}
	_, err := s.findDatastore(ctx, workspace, name) // authorizes too
	return err
}

// WriteDatastoreFile streams r into a datastore file; a given sha256 is checked before the
// file becomes visible.
func (s *Data) WriteDatastoreFile(ctx context.Context, workspace, name, p string, r io.Reader, sha256, contentType string) (*atelier.DatastoreFile, error) {
	if err := atelier.ValidatePath(p); err != nil {
		return nil, err
	}
	if !s.runnerUploads(ctx, workspace, name, p) {
		if err := s.authorizeManage(ctx, workspace); err != nil {
			return nil, err
		}
	}
	b, err := s.openDatastore(ctx, workspace, name)
	if err != nil {
		return nil, err
	}
	defer b.Close()
	f, err := b.Write(ctx, p, r, sha256, contentType)
	if err == nil && f.ETag != "" && f.SHA256 != "" {
		// A digest the object could not carry (see atelier.DatastoreDigest). The file is
		// stored either way: without the digest, a later upload only sends it again.
		if err := s.store.SaveDatastoreDigest(ctx, workspace, name, f.Path, atelier.DatastoreDigest{ETag: f.ETag, SHA256: f.SHA256}); err != nil {
			s.log.Warn("keeping a datastore file's digest", "workspace", workspace, "datastore", name, "path", f.Path, "err", err)
		}
	}
	return f, err
}

// OpenDatastoreFile opens a datastore file for reading.
func (s *Data) OpenDatastoreFile(ctx context.Context, workspace, name, p string) (*atelier.DatastoreFile, io.ReadCloser, error) {
	if err := atelier.ValidatePath(p); err != nil {
		return nil, nil, err
	}
	b, err := s.openDatastore(ctx, workspace, name)
	if err != nil {
		return nil, nil, err
	}
	f, rc, err := b.Open(ctx, p)
	if err != nil {
		b.Close()
		return nil, nil, err
	}
	return f, &closeBoth{ReadCloser: rc, b: b}, nil
}

type closeBoth struct {
	io.ReadCloser
	b atelier.DatastoreBucket
}

// WriteTo keeps the reader's own WriteTo (a folder's file, sent by the kernel) within reach of
// io.Copy.
func (c *closeBoth) WriteTo(w io.Writer) (int64, error) {
	if wt, ok := c.ReadCloser.(io.WriterTo); ok {
		return wt.WriteTo(w)
	}
	return io.Copy(w, struct{ io.Reader }{c.ReadCloser})
}

func (c *closeBoth) Close() error {
	err := c.ReadCloser.Close()
	c.b.Close()
	return err
}

// ListDatastoreFiles lists one page of a datastore's files.
func (s *Data) ListDatastoreFiles(ctx context.Context, workspace, name string, q atelier.DatastoreFileQuery) (*atelier.DatastoreFilePage, error) {
	if err := q.Validate(); err != nil {
		return nil, err
	}
	b, err := s.openDatastore(ctx, workspace, name)
	if err != nil {
		return nil, err
	}
	defer b.Close()
	return b.List(ctx, q)
}

// DatastoreFileDigests returns the files at paths with their sha256 where it is known without
// sending the content (see atelier.DatastoreBucket.Digest), in the order asked; a path with no
// file is left out. A client compares them with its own files to skip unchanged ones.
func (s *Data) DatastoreFileDigests(ctx context.Context, workspace, name string, paths []string) ([]*atelier.DatastoreFile, error) {
	if len(paths) > atelier.MaxDatastoreDigests {
		return nil, atelier.Errorf(atelier.ETOOLARGE, "%d paths: ask for at most %d digests at a time", len(paths), atelier.MaxDatastoreDigests)
	}
	for _, p := range paths {
		if err := atelier.ValidatePath(p); err != nil {
			return nil, err
		}
	}
	b, err := s.openDatastore(ctx, workspace, name)
	if err != nil {
		return nil, err
	}
	defer b.Close()
	files := make([]*atelier.DatastoreFile, len(paths))
	// A few at a time: each may be a metadata request to the storage, or a read of the file.
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for i, p := range paths {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			f, err := b.Digest(ctx, p)
			switch {
			case atelier.ErrorCode(err) == atelier.ENOTFOUND:
				// Gone (or its bucket is): no digest, and the upload that follows says which.
			case err != nil:
				cancel(err)
			default:
				files[i] = f
			}
		}()
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return nil, err
	}
	out := files[:0]
	var unknown []string // cloud objects without a digest of their own
	for _, f := range files {
		if f != nil {
			out = append(out, f)
			if f.SHA256 == "" && f.ETag != "" {
				unknown = append(unknown, f.Path)
			}
		}
	}
	if len(unknown) > 0 {
		kept, err := s.store.DatastoreDigests(ctx, workspace, name, unknown)
		if err != nil {
			return nil, err
		}
		for _, f := range out {
			if d, ok := kept[f.Path]; ok && f.SHA256 == "" && d.ETag == f.ETag {
				f.SHA256 = d.SHA256
			}
		}
	}
	return out, nil
}

// DeleteDatastoreFiles deletes a file, or with recursive the folder p and everything under it.
func (s *Data) DeleteDatastoreFiles(ctx context.Context, workspace, name, p string, recursive bool) (int, error) {
	if err := s.authorizeManage(ctx, workspace); err != nil {
		return 0, err
	}
	if err := atelier.ValidatePath(p); err != nil {
		return 0, err
	}
	b, err := s.openDatastore(ctx, workspace, name)
	if err != nil {
		return 0, err
	}
	defer b.Close()
	if !recursive {
		if err := b.Delete(ctx, p); err != nil {
			if page, lerr := b.List(ctx, atelier.DatastoreFileQuery{Prefix: p + "/", Limit: 1}); lerr == nil && len(page.Files) > 0 {
				return 0, atelier.Errorf(atelier.EINVALID, "datastore %q: %s is a folder: delete it recursively", name, p)
			}
			return 0, err
		}
		return 1, nil
	}
	n := 0
	// p itself, when it is a file. A failure to stat is left to the listing below to report.
	if f, err := b.Stat(ctx, p); err == nil && !f.Dir {
		if err := b.Delete(ctx, p); err != nil && atelier.ErrorCode(err) != atelier.ENOTFOUND {
			return 0, err
		}
		n++
	}
	// Collect first, then delete: deleting while paging could skip entries on some backends.
	var paths []string
	q := atelier.DatastoreFileQuery{Prefix: p + "/", Recursive: true}
	for {
		page, err := b.List(ctx, q)
		if err != nil {
			return n, err
		}
		for _, f := range page.Files {
			paths = append(paths, f.Path)
		}
		if len(paths) > maxRecursiveDelete {
			return n, atelier.Errorf(atelier.ETOOLARGE, "datastore %q: %s holds more than %d files: delete it in parts", name, p, maxRecursiveDelete)
		}
		if page.NextPageToken == "" {
			break
		}
		q.PageToken = page.NextPageToken
	}
	for _, fp := range paths {
		if err := b.Delete(ctx, fp); err != nil && atelier.ErrorCode(err) != atelier.ENOTFOUND {
			return n, err
		}
		n++
	}
	if n == 0 {
		return 0, atelier.Errorf(atelier.ENOTFOUND, "datastore %q: %s: no such file or folder", name, p)
	}
	return n, nil
}
