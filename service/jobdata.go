package service

import (
	"context"
	"io"
	"strings"

	"github.com/atelier-ml/atelier"
)

// maxDataFiles bounds the files of one data reference, so a reference to the root of a huge
// bucket fails clearly instead of listing for hours.
const maxDataFiles = 100000

// bucket returns the job's opened datastore, opening it the first time: one set of clients per
// datastore and job, however many files it moves.
func (h *jobHost) bucket(ctx context.Context, job *atelier.Job, ref atelier.DataReference) (atelier.DatastoreBucket, error) {
	if !h.declared(job, ref) {
		return nil, atelier.Errorf(atelier.EFORBIDDEN, "data %q is not a reference of run %s", ref.Name, job.Run.ID)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if b := h.buckets[ref.Datastore]; b != nil {
		return b, nil
	}
	ws := job.Run.Workspace
	if ref.Datastore == atelier.DefaultDatastore {
		if err := h.s.data.ensureDefaultDatastore(ctx, ws); err != nil {
			return nil, err
		}
	}
	d, err := h.s.store.FindDatastore(ctx, ws, ref.Datastore)
	if err != nil {
		return nil, err
	}
	b, err := h.s.data.openBucket(ctx, d)
	if err != nil {
		return nil, err
	}
	if h.buckets == nil {
		h.buckets = map[string]atelier.DatastoreBucket{}
	}
	h.buckets[ref.Datastore] = b
	return b, nil
}

// declared reports whether ref is one of the job's references: the run reads and writes only
// what its configuration (and so its lineage) says.
func (h *jobHost) declared(job *atelier.Job, ref atelier.DataReference) bool {
	for _, r := range job.Config.Data {
		if r == ref {
			return true
		}
	}
	return false
}

// close closes the datastores the job opened.
func (h *jobHost) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, b := range h.buckets {
		b.Close()
	}
	h.buckets = nil
}

// inside reports whether the datastore path p belongs to the reference.
func inside(ref atelier.DataReference, p string) bool {
	return p == strings.TrimSuffix(ref.Path, "/") || strings.HasPrefix(p, ref.Folder())
}

func (h *jobHost) ListData(ctx context.Context, job *atelier.Job, ref atelier.DataReference) ([]*atelier.DatastoreFile, error) {
	b, err := h.bucket(ctx, job, ref)
	if err != nil {
		return nil, err
	}
	if p := ref.Path; p != "" && !strings.HasSuffix(p, "/") {
		if f, err := b.Stat(ctx, p); err == nil && !f.Dir {
			f.Path = p
			return []*atelier.DatastoreFile{f}, nil
		} else if err != nil && atelier.ErrorCode(err) != atelier.ENOTFOUND {
			return nil, err
		}
	}
	var files []*atelier.DatastoreFile
	q := atelier.DatastoreFileQuery{Prefix: ref.Folder(), Recursive: true}
	for {
		page, err := b.List(ctx, q)
		if err != nil {
			return nil, err
		}
		for _, f := range page.Files {
			if !f.Dir {
				files = append(files, f)
			}
		}
		if len(files) > maxDataFiles {
			return nil, atelier.Errorf(atelier.ETOOLARGE, "data %q: %s:%s holds more than %d files", ref.Name, ref.Datastore, ref.Path, maxDataFiles)
		}
		if page.NextPageToken == "" {
			return files, nil
		}
		q.PageToken = page.NextPageToken
	}
}

func (h *jobHost) OpenData(ctx context.Context, job *atelier.Job, ref atelier.DataReference, p string) (io.ReadCloser, error) {
	if !inside(ref, p) {
		return nil, atelier.Errorf(atelier.EINVALID, "data %q: %s is outside %s:%s", ref.Name, p, ref.Datastore, ref.Path)
	}
	b, err := h.bucket(ctx, job, ref)
	if err != nil {
		return nil, err
	}
	_, rc, err := b.Open(ctx, p)
	return rc, err
}

func (h *jobHost) WriteData(ctx context.Context, job *atelier.Job, ref atelier.DataReference, p string, r io.Reader) error {
	if ref.Mode != atelier.DataUpload {
		return atelier.Errorf(atelier.EFORBIDDEN, "data %q is not an upload reference", ref.Name)
	}
	if !strings.HasPrefix(p, ref.Folder()) {
		return atelier.Errorf(atelier.EINVALID, "data %q: %s is outside %s:%s", ref.Name, p, ref.Datastore, ref.Folder())
	}
	b, err := h.bucket(ctx, job, ref)
	if err != nil {
		return err
	}
	_, err = b.Write(ctx, p, r, "", "")
	return err
}
