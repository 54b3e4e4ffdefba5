package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/atelier-ml/atelier"
)

func datastorePath(workspace, name string, parts ...string) string {
	return wsPath(workspace, append([]string{"datastores", url.PathEscape(name)}, parts...)...)
}

func (c *Client) RegisterDatastore(ctx context.Context, workspace string, spec atelier.DatastoreSpec) (*atelier.Datastore, error) {
	var d atelier.Datastore
	return &d, c.call(ctx, "POST", wsPath(workspace, "datastores"), nil, spec, &d)
}

func (c *Client) FindDatastore(ctx context.Context, workspace, name string) (*atelier.Datastore, error) {
	if err := atelier.ValidateName("datastore", name); err != nil {
		return nil, err
	}
	var d atelier.Datastore
	return &d, c.call(ctx, "GET", datastorePath(workspace, name), nil, nil, &d)
}

func (c *Client) ListDatastores(ctx context.Context, workspace string) ([]*atelier.Datastore, error) {
	var out DatastoreList
	return out.Datastores, c.call(ctx, "GET", wsPath(workspace, "datastores"), nil, nil, &out)
}

func (c *Client) UpdateDatastoreCredentials(ctx context.Context, workspace, name string, creds atelier.DatastoreCredentials) (*atelier.Datastore, error) {
	if err := atelier.ValidateName("datastore", name); err != nil {
		return nil, err
	}
	var d atelier.Datastore
	return &d, c.call(ctx, "PATCH", datastorePath(workspace, name), nil, creds, &d)
}

func (c *Client) SetDefaultDatastore(ctx context.Context, workspace, name string) (*atelier.Datastore, error) {
	if err := atelier.ValidateName("datastore", name); err != nil {
		return nil, err
	}
	var d atelier.Datastore
	return &d, c.call(ctx, "POST", datastorePath(workspace, name, "default"), nil, nil, &d)
}

func (c *Client) DeleteDatastore(ctx context.Context, workspace, name string, force bool) error {
	if err := atelier.ValidateName("datastore", name); err != nil {
		return err
	}
	q := url.Values{}
	if force {
		q.Set("force", "true")
	}
	return c.call(ctx, "DELETE", datastorePath(workspace, name), q, nil, nil)
}

// WriteDatastoreFile streams r; a size known from r (a LocalFile, a bytes.Reader) is sent as
// Content-Length, anything else is sent chunked. A LocalFile is sent by the kernel where the
// connection allows (see LocalFile).
func (c *Client) WriteDatastoreFile(ctx context.Context, workspace, name, path string, r io.Reader, sha256, contentType string) (*atelier.DatastoreFile, error) {
	if err := atelier.ValidateName("datastore", name); err != nil {
		return nil, err
	}
	if err := atelier.ValidatePath(path); err != nil {
		return nil, err
	}
	req, err := c.newRequest(ctx, "PUT", datastorePath(workspace, name, "files", escapePath(path)), nil, r)
	if err != nil {
		return nil, err
	}
	if sha256 != "" {
		req.Header.Set(SHA256Header, sha256)
	}
	if contentType == "" {
		contentType = "application/octet-stream"
	}
	req.Header.Set("Content-Type", contentType)
	var resp *http.Response
	l, local := r.(*LocalFile)
	switch {
	case local && c.PassesFiles():
		// The server reads the file itself; it refuses it if the file changes meanwhile.
		req.Body, req.ContentLength = http.NoBody, 0
		resp, err = c.passFiles(req, []*os.File{l.f}, l.progress)
	case local:
		req.ContentLength = l.Size()
		if l.Size() == 0 {
			req.Body = http.NoBody // a zero Content-Length with a body would be sent chunked
		}
		resp, err = c.do(req)
	default:
		resp, err = c.do(req)
	}
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var f atelier.DatastoreFile
	return &f, json.NewDecoder(resp.Body).Decode(&f)
}

// DownloadDatastoreFile writes a datastore file into dst, an empty file open for writing, and
// returns the file's attributes; progress, when set, is called with each number of bytes
// written. Over a Unix socket the server writes dst itself (passed as a descriptor); otherwise
// the content is streamed in 1 MiB reads. A short file is an error.
func (c *Client) DownloadDatastoreFile(ctx context.Context, workspace, name, path string, dst *os.File, progress func(int64)) (*atelier.DatastoreFile, error) {
	if !c.PassesFiles() {
		f, rc, err := c.OpenDatastoreFile(ctx, workspace, name, path)
		if err != nil {
			return nil, err
		}
		defer rc.Close()
		if progress == nil {
			progress = func(int64) {}
		}
		n, err := copyBuffered(dst, rc, progress)
		if err != nil {
			return nil, fmt.Errorf("downloading %s: %w", path, err)
		}
		if f.Size >= 0 && n != f.Size {
			return nil, fmt.Errorf("downloading %s: got %d of %d bytes", path, n, f.Size)
		}
		return f, nil
	}
	if err := atelier.ValidateName("datastore", name); err != nil {
		return nil, err
	}
	if err := atelier.ValidatePath(path); err != nil {
		return nil, err
	}
	req, err := c.newRequest(ctx, "GET", datastorePath(workspace, name, "files", escapePath(path)), nil, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.passFiles(req, []*os.File{dst}, progress)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var f atelier.DatastoreFile
	if err := json.NewDecoder(resp.Body).Decode(&f); err != nil {
		return nil, fmt.Errorf("downloading %s: %w", path, err)
	}
	if err := checkWritten(&f, dst); err != nil {
		return nil, err
	}
	return &f, nil
}

// checkWritten checks that dst holds what the server says it wrote there of f.
func checkWritten(f *atelier.DatastoreFile, dst *os.File) error {
	fi, err := dst.Stat()
	if err != nil {
		return fmt.Errorf("downloading %s: %w", f.Path, err)
	}
	if fi.Size() != f.Size {
		return fmt.Errorf("downloading %s: the server wrote %d bytes, the file holds %d", f.Path, f.Size, fi.Size())
	}
	return nil
}

// copyBuffered copies r to w in reads of 1 MiB (straight from the socket, where io.Copy would
// use 32 KiB), reporting each write to progress.
func copyBuffered(w io.Writer, r io.Reader, progress func(int64)) (int64, error) {
	buf := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(buf)
	var n int64
	for {
		m, err := r.Read(*buf)
		if m > 0 {
			wn, werr := w.Write((*buf)[:m])
			n += int64(wn)
			progress(int64(wn))
			if werr != nil {
				return n, werr
			}
		}
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

var copyBufs = sync.Pool{New: func() any { b := make([]byte, 1<<20); return &b }}

func (c *Client) OpenDatastoreFile(ctx context.Context, workspace, name, path string) (*atelier.DatastoreFile, io.ReadCloser, error) {
	if err := atelier.ValidateName("datastore", name); err != nil {
		return nil, nil, err
	}
	if err := atelier.ValidatePath(path); err != nil {
		return nil, nil, err
	}
	req, err := c.newRequest(ctx, "GET", datastorePath(workspace, name, "files", escapePath(path)), nil, nil)
	if err != nil {
		return nil, nil, err
	}
	resp, err := c.do(req)
	if err != nil {
		return nil, nil, err
	}
	f := &atelier.DatastoreFile{Path: path, Size: resp.ContentLength}
	if t, err := time.Parse(http.TimeFormat, resp.Header.Get("Last-Modified")); err == nil {
		f.ModifiedAt = t
	}
	return f, resp.Body, nil
}

func (c *Client) ListDatastoreFiles(ctx context.Context, workspace, name string, dq atelier.DatastoreFileQuery) (*atelier.DatastoreFilePage, error) {
	if err := atelier.ValidateName("datastore", name); err != nil {
		return nil, err
	}
	q := url.Values{}
	if dq.Prefix != "" {
		q.Set("prefix", dq.Prefix)
	}
	if dq.Recursive {
		q.Set("recursive", "true")
	}
	if dq.Limit != 0 {
		q.Set("limit", strconv.Itoa(dq.Limit))
	}
	if dq.PageToken != "" {
		q.Set("page_token", dq.PageToken)
	}
	var page atelier.DatastoreFilePage
	return &page, c.call(ctx, "GET", datastorePath(workspace, name, "files"), q, nil, &page)
}

func (c *Client) DatastoreFileDigests(ctx context.Context, workspace, name string, paths []string) ([]*atelier.DatastoreFile, error) {
	if err := atelier.ValidateName("datastore", name); err != nil {
		return nil, err
	}
	var out DatastoreDigests
	return out.Files, c.call(ctx, "POST", datastorePath(workspace, name, "digests"), nil, DatastoreDigestRequest{Paths: orEmpty(paths)}, &out)
}

func (c *Client) DeleteDatastoreFiles(ctx context.Context, workspace, name, path string, recursive bool) (int, error) {
	if err := atelier.ValidateName("datastore", name); err != nil {
		return 0, err
	}
	if err := atelier.ValidatePath(path); err != nil {
		return 0, err
	}
	q := url.Values{}
	if recursive {
		q.Set("recursive", "true")
	}
	var out DatastoreDeleted
	return out.Deleted, c.call(ctx, "DELETE", datastorePath(workspace, name, "files", escapePath(path)), q, nil, &out)
}

// DatastoreAccess checks that the caller may read the datastore's files, or with write change
// them.
func (c *Client) DatastoreAccess(ctx context.Context, workspace, name string, write bool) error {
	if err := atelier.ValidateName("datastore", name); err != nil {
		return err
	}
	q := url.Values{}
	if write {
		q.Set("write", "true")
	}
	return c.call(ctx, "GET", datastorePath(workspace, name, "access"), q, nil, nil)
}

// PassedTransfer is one file of a batch over the Unix socket: its datastore path, the local
// file (an upload's source, open for reading; a download's destination, empty and open for
// writing) and, for an upload, the sha256 to check, if known.
type PassedTransfer struct {
	Path   string
	File   *os.File
	SHA256 string
}

// UploadPassedFiles stores up to MaxPassedFiles local files in one request over the server's
// Unix socket (see PassesFiles): the server reads each file itself. It returns each file's
// attributes or error, in order; err is the request's failure.
func (c *Client) UploadPassedFiles(ctx context.Context, workspace, name string, files []PassedTransfer, progress func(int64)) ([]*atelier.DatastoreFile, []error, error) {
	return c.passBatch(ctx, workspace, name, "uploads", files, progress)
}

// DownloadPassedFiles writes up to MaxPassedFiles datastore files into the local files given
// for them, in one request over the server's Unix socket; as UploadPassedFiles.
func (c *Client) DownloadPassedFiles(ctx context.Context, workspace, name string, files []PassedTransfer, progress func(int64)) ([]*atelier.DatastoreFile, []error, error) {
	return c.passBatch(ctx, workspace, name, "downloads", files, progress)
}

func (c *Client) passBatch(ctx context.Context, workspace, name, op string, files []PassedTransfer, progress func(int64)) ([]*atelier.DatastoreFile, []error, error) {
	if !c.PassesFiles() {
		return nil, nil, atelier.Errorf(atelier.EINVALID, "files are passed only over the server's Unix socket (a unix:// server URL)")
	}
	if err := atelier.ValidateName("datastore", name); err != nil {
		return nil, nil, err
	}
	if len(files) == 0 || len(files) > MaxPassedFiles {
		return nil, nil, atelier.Errorf(atelier.EINVALID, "a batch holds 1 to %d files, not %d", MaxPassedFiles, len(files))
	}
	batch := PassedBatch{Files: make([]PassedFile, len(files))}
	fds := make([]*os.File, len(files))
	for i, f := range files {
		if err := atelier.ValidatePath(f.Path); err != nil {
			return nil, nil, err
		}
		batch.Files[i], fds[i] = PassedFile{Path: f.Path, SHA256: f.SHA256}, f.File
	}
	body, err := json.Marshal(batch)
	if err != nil {
		return nil, nil, err
	}
	req, err := c.newRequest(ctx, "POST", datastorePath(workspace, name, op), nil, bytes.NewReader(body))
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.passFiles(req, fds, progress)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	var out PassedResults
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, nil, fmt.Errorf("decoding the answer to a batch of %s: %w", op, err)
	}
	if len(out.Files) != len(files) {
		return nil, nil, fmt.Errorf("the server answered %d of a batch of %d %s", len(out.Files), len(files), op)
	}
	got, errs := make([]*atelier.DatastoreFile, len(files)), make([]error, len(files))
	for i, r := range out.Files {
		switch {
		case r.Error != nil:
			errs[i] = &atelier.Error{Code: r.Error.Code, Message: r.Error.Message}
		case r.File == nil:
			errs[i] = fmt.Errorf("the server answered nothing for %s", files[i].Path)
		case op == "downloads":
			if errs[i] = checkWritten(r.File, files[i].File); errs[i] == nil {
				got[i] = r.File
			}
		default:
			got[i] = r.File
		}
	}
	return got, errs, nil
}
