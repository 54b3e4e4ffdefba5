package api

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"syscall"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/edge"
)

// SHA256Header carries the sha256 (hex) an uploaded datastore file must have.
const SHA256Header = "X-Content-Sha256"

// datastoreRoutes is the datastores' part of the route table.
func (s *Server) datastoreRoutes() []Route {
	const ds = ws + "/datastores/{datastore}"
	return []Route{
		{Pattern: "GET " + ws + "/datastores", Policy: PolicyRead, handler: s.listDatastores},
		{Pattern: "POST " + ws + "/datastores", Policy: PolicyWrite, handler: s.registerDatastore},
		{Pattern: "GET " + ds, Policy: PolicyRead, handler: s.getDatastore},
		{Pattern: "PATCH " + ds, Policy: PolicyWrite, handler: s.updateDatastore},
		{Pattern: "DELETE " + ds, Policy: PolicyWrite, handler: s.deleteDatastore},
		{Pattern: "POST " + ds + "/default", Policy: PolicyWrite, handler: s.setDefaultDatastore},
		{Pattern: "GET " + ds + "/files", Policy: PolicyRead, handler: s.listDatastoreFiles},
		{Pattern: "POST " + ds + "/digests", Policy: PolicyRead, handler: s.datastoreFileDigests},
		{Pattern: "GET " + ds + "/access", Policy: PolicyRead, handler: s.datastoreAccess},
		{Pattern: "PUT " + ds + "/files/{path...}", Policy: PolicyWrite, handler: s.uploadDatastoreFile},
		{Pattern: "GET " + ds + "/files/{path...}", Policy: PolicyRead, handler: s.downloadDatastoreFile},
		{Pattern: "DELETE " + ds + "/files/{path...}", Policy: PolicyWrite, handler: s.deleteDatastoreFile},
		{Pattern: "POST " + ds + "/uploads", Policy: PolicyWrite, handler: s.uploadPassedFiles},
		{Pattern: "POST " + ds + "/downloads", Policy: PolicyRead, handler: s.downloadPassedFiles},
	}
}

// DatastoreList is the body of GET /datastores.
type DatastoreList struct {
	Datastores []*atelier.Datastore `json:"datastores"`
}

// DatastoreDigestRequest and DatastoreDigests are the bodies of POST .../digests.
type DatastoreDigestRequest struct {
	Paths []string `json:"paths"`
}

type DatastoreDigests struct {
	Files []*atelier.DatastoreFile `json:"files"`
}

// PassedBatch is the body of POST .../uploads and .../downloads, sent over the server's Unix
// socket with one descriptor per file, in order (see LocalFileHeader): many small files in
// one request, instead of a request each.
type PassedBatch struct {
	Files []PassedFile `json:"files"`
}

// PassedFile is a datastore file of a batch; SHA256, for an upload, is checked before the
// file is stored.
type PassedFile struct {
	Path   string `json:"path"`
	SHA256 string `json:"sha256,omitempty"`
}

// PassedResults answers a batch: each file's attributes or its error, in order.
type PassedResults struct {
	Files []PassedResult `json:"files"`
}

type PassedResult struct {
	File  *atelier.DatastoreFile `json:"file,omitempty"`
	Error *ErrorResponse         `json:"error,omitempty"`
}

// DatastoreDeleted answers a delete of datastore files.
type DatastoreDeleted struct {
	Deleted int `json:"deleted"`
}

func (s *Server) listDatastores(w http.ResponseWriter, r *http.Request) error {
	list, err := s.svc.ListDatastores(r.Context(), r.PathValue("workspace"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, DatastoreList{Datastores: list})
}

func (s *Server) registerDatastore(w http.ResponseWriter, r *http.Request) error {
	var spec atelier.DatastoreSpec
	if err := s.readJSON(w, r, &spec); err != nil {
		return err
	}
	d, err := s.svc.RegisterDatastore(r.Context(), r.PathValue("workspace"), spec)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, d)
}

func (s *Server) getDatastore(w http.ResponseWriter, r *http.Request) error {
	d, err := s.svc.FindDatastore(r.Context(), r.PathValue("workspace"), r.PathValue("datastore"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, d)
}

func (s *Server) updateDatastore(w http.ResponseWriter, r *http.Request) error {
	var creds atelier.DatastoreCredentials
	if err := s.readJSON(w, r, &creds); err != nil {
		return err
	}
	d, err := s.svc.UpdateDatastoreCredentials(r.Context(), r.PathValue("workspace"), r.PathValue("datastore"), creds)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, d)
}

func (s *Server) deleteDatastore(w http.ResponseWriter, r *http.Request) error {
	force, err := queryBool(r, "force")
	if err != nil {
		return err
	}
	if err := s.svc.DeleteDatastore(r.Context(), r.PathValue("workspace"), r.PathValue("datastore"), force); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) setDefaultDatastore(w http.ResponseWriter, r *http.Request) error {
	d, err := s.svc.SetDefaultDatastore(r.Context(), r.PathValue("workspace"), r.PathValue("datastore"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, d)
}

func (s *Server) listDatastoreFiles(w http.ResponseWriter, r *http.Request) error {
	q := atelier.DatastoreFileQuery{Prefix: r.URL.Query().Get("prefix"), PageToken: r.URL.Query().Get("page_token")}
	var err error
	if q.Recursive, err = queryBool(r, "recursive"); err != nil {
		return err
	}
	if q.Limit, err = queryLimit(r); err != nil {
		return err
	}
	page, err := s.svc.ListDatastoreFiles(r.Context(), r.PathValue("workspace"), r.PathValue("datastore"), q)
	if err != nil {
		return err
	}
	if page.Files == nil {
		page.Files = []*atelier.DatastoreFile{} // an array, as documented, not null
	}
	return writeJSON(w, http.StatusOK, page)
}

func (s *Server) datastoreFileDigests(w http.ResponseWriter, r *http.Request) error {
	var req DatastoreDigestRequest
	if err := s.readJSON(w, r, &req); err != nil {
		return err
	}
	files, err := s.svc.DatastoreFileDigests(r.Context(), r.PathValue("workspace"), r.PathValue("datastore"), req.Paths)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, DatastoreDigests{Files: files})
}

func (s *Server) datastoreAccess(w http.ResponseWriter, r *http.Request) error {
	write, err := queryBool(r, "write")
	if err != nil {
		return err
	}
	if err := s.svc.DatastoreAccess(r.Context(), r.PathValue("workspace"), r.PathValue("datastore"), write); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) uploadDatastoreFile(w http.ResponseWriter, r *http.Request) error {
	ctype := r.Header.Get("Content-Type")
	if mt, _, err := mime.ParseMediaType(ctype); err != nil || len(ctype) > 256 {
		ctype = ""
	} else {
		ctype = mt
	}
	var body io.Reader = r.Body
	if r.Header.Get(LocalFileHeader) != "" {
		if err := s.svc.DatastoreAccess(r.Context(), r.PathValue("workspace"), r.PathValue("datastore"), true); err != nil {
			return err
		}
		src, err := passedFile(r, false)
		if err != nil {
			return err
		}
		defer src.Close()
		release, err := s.startPassing(r.Context())
		if err != nil {
			return err
		}
		defer release()
		body = src
	}
	digest, err := digestHeader(r) // SHA256Header is DigestHeader
	if err != nil {
		return err
	}
	f, err := s.svc.WriteDatastoreFile(r.Context(), r.PathValue("workspace"), r.PathValue("datastore"), r.PathValue("path"), body,
		digest, ctype)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, f)
}

func (s *Server) downloadDatastoreFile(w http.ResponseWriter, r *http.Request) error {
	if r.Header.Get(LocalFileHeader) != "" {
		// The client passed its file: written here, and the answer is the file's attributes.
		if err := s.svc.DatastoreAccess(r.Context(), r.PathValue("workspace"), r.PathValue("datastore"), false); err != nil {
			return err
		}
		dst, err := passedFile(r, true)
		if err != nil {
			return err
		}
		defer dst.Close()
		release, err := s.startPassing(r.Context())
		if err != nil {
			return err
		}
		defer release()
		f, err := s.copyToPassed(r, r.PathValue("path"), dst)
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, f)
	}
	f, rc, err := s.svc.OpenDatastoreFile(r.Context(), r.PathValue("workspace"), r.PathValue("datastore"), r.PathValue("path"))
	if err != nil {
		return err
	}
	defer rc.Close()
	w.Header().Set("Last-Modified", f.ModifiedAt.UTC().Format(http.TimeFormat))
	if err := streamFile(w, &atelier.File{Path: f.Path, Size: f.Size}, rc); err != nil {
		// The status is sent: a failure now can only cut the body short, which the client sees
		// as a short read against Content-Length.
		s.log.Warn("streaming a datastore file", "datastore", r.PathValue("datastore"), "path", f.Path, "err", err)
	}
	return nil
}

// readPassedBatch reads a batch of uploads, or of downloads, and takes its descriptors.
// The caller must call done when it is through with the files.
func (s *Server) readPassedBatch(w http.ResponseWriter, r *http.Request, download bool) (batch *PassedBatch, files []*os.File, done func(), err error) {
	// Who may, before what is sent: a caller without access learns nothing of the input.
	if err := s.svc.DatastoreAccess(r.Context(), r.PathValue("workspace"), r.PathValue("datastore"), !download); err != nil {
		return nil, nil, nil, err
	}
	var b PassedBatch
	if err := s.readJSON(w, r, &b); err != nil {
		return nil, nil, nil, err
	}
	if len(b.Files) == 0 || len(b.Files) > MaxPassedFiles {
		return nil, nil, nil, atelier.Errorf(atelier.EINVALID, "a batch holds 1 to %d files, not %d", MaxPassedFiles, len(b.Files))
	}
	for _, f := range b.Files {
		if err := atelier.ValidatePath(f.Path); err != nil {
			return nil, nil, nil, err
		}
	}
	files, err = passedFiles(r, len(b.Files), download, func(i int) string { return b.Files[i].Path })
	if err != nil {
		return nil, nil, nil, err
	}
	release, err := s.startPassing(r.Context())
	if err != nil {
		closeAll(files)
		return nil, nil, nil, err
	}
	return &b, files, func() { closeAll(files); release() }, nil
}

// uploadPassedFiles stores each passed file under its path: one failure does not stop the
// others, and each is reported in the answer.
func (s *Server) uploadPassedFiles(w http.ResponseWriter, r *http.Request) error {
	batch, files, done, err := s.readPassedBatch(w, r, false)
	if err != nil {
		return err
	}
	defer done()
	// The files' audit entries are recorded together (one transaction rather than one a
	// file), also when the client leaves halfway: each file written is in the log.
	var audits []*atelier.AuditEntry
	defer func() {
		if len(audits) > 0 {
			s.audit.RecordAudits(r.Context(), audits)
		}
	}()
	out := PassedResults{Files: make([]PassedResult, len(files))}
	for i, f := range files {
		if err := r.Context().Err(); err != nil {
			return err // the client is gone
		}
		file, err := s.svc.WriteDatastoreFile(r.Context(), r.PathValue("workspace"), r.PathValue("datastore"), batch.Files[i].Path, f,
			batch.Files[i].SHA256, "")
		out.Files[i] = s.passedResult(r, file, err)
		status := http.StatusCreated
		if err != nil {
			status = edge.StatusOf(statusOf, err)
		}
		if e := s.fileAudit(r, batch.Files[i].Path, status); e != nil {
			audits = append(audits, e)
		}
	}
	return writeJSON(w, http.StatusOK, out)
}

// downloadPassedFiles writes each datastore file into the file passed for it.
func (s *Server) downloadPassedFiles(w http.ResponseWriter, r *http.Request) error {
	batch, files, done, err := s.readPassedBatch(w, r, true)
	if err != nil {
		return err
	}
	defer done()
	out := PassedResults{Files: make([]PassedResult, len(files))}
	for i, dst := range files {
		if err := r.Context().Err(); err != nil {
			return err // the client is gone
		}
		file, err := s.copyToPassed(r, batch.Files[i].Path, dst)
		out.Files[i] = s.passedResult(r, file, err)
	}
	return writeJSON(w, http.StatusOK, out)
}

// passedResult is a batch's answer for one file; internal errors are logged, not told.
func (s *Server) passedResult(r *http.Request, f *atelier.DatastoreFile, err error) PassedResult {
	if err == nil {
		return PassedResult{File: f}
	}
	err = atelier.StorageFull(err)
	code := atelier.ErrorCode(err)
	if code == atelier.EINTERNAL {
		s.log.Error("batch file failed", "path", r.URL.Path, "err", err)
	} else if code == atelier.ENOSPACE && s.Storage != nil {
		s.Storage.Observe(err)
	}
	return PassedResult{Error: &ErrorResponse{Code: code, Message: atelier.ErrorMessage(err)}}
}

// copyToPassed writes the datastore file at path into dst, a file the client passed (by the
// kernel from a files datastore).
func (s *Server) copyToPassed(r *http.Request, path string, dst *os.File) (*atelier.DatastoreFile, error) {
	f, rc, err := s.svc.OpenDatastoreFile(r.Context(), r.PathValue("workspace"), r.PathValue("datastore"), path)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	n, err := io.Copy(dst, rc)
	switch {
	case err == nil:
	case atelier.ErrorCode(err) != atelier.EINTERNAL:
		return nil, err // the datastore's, already saying what and where
	case errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) || errors.Is(err, syscall.EFBIG):
		return nil, atelier.Errorf(atelier.EINVALID, "datastore %q: %s: no room to write it into the passed file", r.PathValue("datastore"), f.Path)
	default:
		return nil, fmt.Errorf("datastore %q: %s: copying into the passed file: %w", r.PathValue("datastore"), f.Path, err)
	}
	if n != f.Size {
		return nil, fmt.Errorf("datastore %q: %s: copied %d of %d bytes", r.PathValue("datastore"), f.Path, n, f.Size)
	}
	return f, nil
}

func (s *Server) deleteDatastoreFile(w http.ResponseWriter, r *http.Request) error {
	recursive, err := queryBool(r, "recursive")
	if err != nil {
		return err
	}
	n, err := s.svc.DeleteDatastoreFiles(r.Context(), r.PathValue("workspace"), r.PathValue("datastore"), r.PathValue("path"), recursive)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, DatastoreDeleted{Deleted: n})
}
