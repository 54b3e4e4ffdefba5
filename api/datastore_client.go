package api

import (
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
		resp, err = c.passFile(req, l.f, l.progress)
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
	resp, err := c.passFile(req, dst, progress)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var f atelier.DatastoreFile
	if err := json.NewDecoder(resp.Body).Decode(&f); err != nil {
		return nil, fmt.Errorf("downloading %s: %w", path, err)
	}
	if fi, err := dst.Stat(); err != nil || fi.Size() != f.Size {
		return nil, fmt.Errorf("downloading %s: the server wrote %d bytes, the file holds %v", path, f.Size, fileSize(fi, err))
	}
	return &f, nil
}

func fileSize(fi os.FileInfo, err error) any {
	if err != nil {
		return err
	}
	return fi.Size()
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
	return out.Files, c.call(ctx, "POST", datastorePath(workspace, name, "digests"), nil, DatastoreDigestRequest{Paths: paths}, &out)
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
