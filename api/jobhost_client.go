package api

import (
	"archive/zip"
	"context"
	"io"
	"os"
	"path"
	"strings"
	"sync"

	"github.com/atelier-ml/atelier"
)

var _ atelier.JobHost = (*JobHost)(nil)

// maxDataFiles bounds the files of one data reference, as the server's own job host does: a
// reference to the root of a huge bucket fails clearly instead of listing for hours.
const maxDataFiles = 100000

// JobHost is what an executor needs from the server, over the REST API with the run's own
// token: the portable in-job runner (atelier job exec) runs a job where its script runs, and
// the server only sees what that token may do.
type JobHost struct {
	c *Client
	// snap is the run's snapshot manifest: OpenObject finds a digest's file in it.
	snap *atelier.Snapshot
	// workspace and runID name the run whose snapshot is downloaded.
	workspace, runID string
	// tempDir holds the snapshot's zip while the job runs.
	tempDir string

	mu      sync.Mutex
	zipPath string
	zip     *zip.ReadCloser
	byPath  map[string]*zip.File
}

// NewJobHost returns the job host of a run through c (a client with the run's token). The
// run's snapshot is downloaded once, as a zip in tempDir, the first time the executor opens
// one of its files: the API serves a run's snapshot, not the objects it is made of.
func NewJobHost(c *Client, run *atelier.Run, snap *atelier.Snapshot, tempDir string) *JobHost {
	return &JobHost{c: c, snap: snap, workspace: run.Workspace, runID: run.ID, tempDir: tempDir}
}

// Close removes the downloaded snapshot.
func (h *JobHost) Close() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.zip != nil {
		h.zip.Close()
		h.zip = nil
	}
	if h.zipPath != "" {
		os.Remove(h.zipPath)
		h.zipPath = ""
	}
	return nil
}

// snapshotFiles downloads the run's snapshot the first time and returns its files by path.
func (h *JobHost) snapshotFiles(ctx context.Context) (map[string]*zip.File, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.byPath != nil {
		return h.byPath, nil
	}
	f, err := os.CreateTemp(h.tempDir, "snapshot-*.zip")
	if err != nil {
		return nil, err
	}
	h.zipPath = f.Name()
	err = h.c.WriteRunSnapshotZip(ctx, h.workspace, h.runID, f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, atelier.Wrap(err, "downloading the snapshot of run %s", h.runID)
	}
	z, err := zip.OpenReader(h.zipPath)
	if err != nil {
		return nil, atelier.Errorf(atelier.EUNAVAILABLE, "the snapshot of run %s is not a readable zip: %v", h.runID, err)
	}
	h.zip = z
	h.byPath = make(map[string]*zip.File, len(z.File))
	for _, zf := range z.File {
		h.byPath[zf.Name] = zf
	}
	return h.byPath, nil
}

// OpenObject opens a file of the run's snapshot by its digest (the zip checks each file's CRC).
func (h *JobHost) OpenObject(ctx context.Context, digest string) (io.ReadCloser, error) {
	var name string
	if h.snap != nil {
		for _, e := range h.snap.Entries {
			if e.Digest == digest {
				name = e.Path
				break
			}
		}
	}
	if name == "" {
		return nil, atelier.Errorf(atelier.ENOTFOUND, "object %s is not a file of the snapshot of run %s", digest, h.runID)
	}
	files, err := h.snapshotFiles(ctx)
	if err != nil {
		return nil, err
	}
	zf := files[name]
	if zf == nil {
		return nil, atelier.Errorf(atelier.ENOTFOUND, "the snapshot zip of run %s has no file %s", h.runID, name)
	}
	return zf.Open()
}

// SetStatus records Preparing, Running and Finalizing. A status the run already has (the
// scheduler claims runs as Preparing) or a cancel request in progress is not an error: the
// runner learns of a cancel by watching the status.
func (h *JobHost) SetStatus(ctx context.Context, job *atelier.Job, status atelier.RunStatus) error {
	_, err := h.c.UpdateRunStatus(ctx, job.Run.Workspace, job.Run.ID, atelier.RunStatusUpdate{Status: status})
	if atelier.ErrorCode(err) != atelier.ECONFLICT {
		return err
	}
	// Over REST a refused transition is a conflict without its cause: read where the run is.
	run, ferr := h.c.FindRun(ctx, job.Run.Workspace, job.Run.ID)
	if ferr == nil && (run.Status == status || run.Status == atelier.StatusCancelRequested) {
		return nil
	}
	return err
}

func (h *JobHost) AppendLog(ctx context.Context, job *atelier.Job, path string, data []byte) error {
	return h.c.AppendLog(ctx, job.Run.Workspace, job.Run.ID, path, data)
}

func (h *JobHost) UploadFile(ctx context.Context, job *atelier.Job, path string, r io.Reader) error {
	_, err := h.c.UploadFile(ctx, job.Run.Workspace, job.Run.ID, path, r, "")
	return err
}

// declared reports whether ref is one of the job's references: the run reads and writes only
// what its configuration (and so its lineage) says, as on the server.
func declared(job *atelier.Job, ref atelier.DataReference) bool {
	for _, r := range job.Config.Data {
		if r == ref {
			return true
		}
	}
	return false
}

// insideRef reports whether the datastore path p belongs to the reference.
func insideRef(ref atelier.DataReference, p string) bool {
	return p == strings.TrimSuffix(ref.Path, "/") || strings.HasPrefix(p, ref.Folder())
}

func (h *JobHost) ListData(ctx context.Context, job *atelier.Job, ref atelier.DataReference) ([]*atelier.DatastoreFile, error) {
	if !declared(job, ref) {
		return nil, atelier.Errorf(atelier.EFORBIDDEN, "data %q is not a reference of run %s", ref.Name, job.Run.ID)
	}
	ws := job.Run.Workspace
	// A path without a trailing slash names a file when its folder lists it as one.
	if p := ref.Path; p != "" && !strings.HasSuffix(p, "/") {
		parent := path.Dir(p) + "/"
		if parent == "./" {
			parent = ""
		}
		f, err := h.find(ctx, ws, ref.Datastore, parent, p)
		if err != nil {
			return nil, err
		}
		if f != nil {
			return []*atelier.DatastoreFile{f}, nil
		}
	}
	var files []*atelier.DatastoreFile
	err := h.list(ctx, ws, ref.Datastore, atelier.DatastoreFileQuery{Prefix: ref.Folder(), Recursive: true}, func(f *atelier.DatastoreFile) bool {
		if !f.Dir {
			files = append(files, f)
		}
		return len(files) <= maxDataFiles
	})
	if err != nil {
		return nil, err
	}
	if len(files) > maxDataFiles {
		return nil, atelier.Errorf(atelier.ETOOLARGE, "data %q: %s:%s holds more than %d files", ref.Name, ref.Datastore, ref.Path, maxDataFiles)
	}
	return files, nil
}

// find returns the file p of the folder parent, or nil when it holds none (or p is a folder).
func (h *JobHost) find(ctx context.Context, workspace, datastore, parent, p string) (*atelier.DatastoreFile, error) {
	var found *atelier.DatastoreFile
	err := h.list(ctx, workspace, datastore, atelier.DatastoreFileQuery{Prefix: parent}, func(f *atelier.DatastoreFile) bool {
		if strings.TrimSuffix(f.Path, "/") == p {
			if !f.Dir {
				found = f
			}
			return false
		}
		return true
	})
	return found, err
}

// list calls each with every file of the query, page after page, until it returns false.
func (h *JobHost) list(ctx context.Context, workspace, datastore string, q atelier.DatastoreFileQuery, each func(*atelier.DatastoreFile) bool) error {
	for {
		page, err := h.c.ListDatastoreFiles(ctx, workspace, datastore, q)
		if err != nil {
			return err
		}
		for _, f := range page.Files {
			if !each(f) {
				return nil
			}
		}
		if page.NextPageToken == "" {
			return nil
		}
		q.PageToken = page.NextPageToken
	}
}

func (h *JobHost) OpenData(ctx context.Context, job *atelier.Job, ref atelier.DataReference, p string) (io.ReadCloser, error) {
	if !declared(job, ref) {
		return nil, atelier.Errorf(atelier.EFORBIDDEN, "data %q is not a reference of run %s", ref.Name, job.Run.ID)
	}
	if !insideRef(ref, p) {
		return nil, atelier.Errorf(atelier.EINVALID, "data %q: %s is outside %s:%s", ref.Name, p, ref.Datastore, ref.Path)
	}
	_, rc, err := h.c.OpenDatastoreFile(ctx, job.Run.Workspace, ref.Datastore, p)
	return rc, err
}

// WriteData stores a file of an upload reference. The datastore's REST route takes writes of
// the workspace's Contributors only: with a run's token it is refused until the API lets a
// run write to the references it declares.
func (h *JobHost) WriteData(ctx context.Context, job *atelier.Job, ref atelier.DataReference, p string, r io.Reader) error {
	if !declared(job, ref) {
		return atelier.Errorf(atelier.EFORBIDDEN, "data %q is not a reference of run %s", ref.Name, job.Run.ID)
	}
	if ref.Mode != atelier.DataUpload {
		return atelier.Errorf(atelier.EFORBIDDEN, "data %q is not an upload reference", ref.Name)
	}
	if !strings.HasPrefix(p, ref.Folder()) {
		return atelier.Errorf(atelier.EINVALID, "data %q: %s is outside %s:%s", ref.Name, p, ref.Datastore, ref.Folder())
	}
	_, err := h.c.WriteDatastoreFile(ctx, job.Run.Workspace, ref.Datastore, p, r, "", "")
	return err
}
