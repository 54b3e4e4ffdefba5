package api

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
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
	if l, ok := r.(*LocalFile); ok {
		req.ContentLength = l.Size()
		if l.Size() == 0 {
			req.Body = http.NoBody // a zero Content-Length with a body would be sent chunked
		}
	}
	if sha256 != "" {
		req.Header.Set(SHA256Header, sha256)
	}
	if contentType == "" {
		contentType = "application/octet-stream"
	}
	req.Header.Set("Content-Type", contentType)
	resp, err := c.do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var f atelier.DatastoreFile
	return &f, json.NewDecoder(resp.Body).Decode(&f)
}

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
