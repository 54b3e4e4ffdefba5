package api

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync"

	"github.com/atelier-ml/atelier"
)

func modelPath(workspace, name string, parts ...string) string {
	return wsPath(workspace, append([]string{"models", url.PathEscape(name)}, parts...)...)
}

func versionPath(workspace string, ref atelier.ModelRef, parts ...string) string {
	return modelPath(workspace, ref.Name, append([]string{"versions", url.PathEscape(ref.Selector())}, parts...)...)
}

// UploadModelFiles sends the files of the stream as one tar body, written straight to the
// connection as it is read; the server hashes and stores each file.
func (c *Client) UploadModelFiles(ctx context.Context, workspace string, files atelier.ModelFileStream) ([]atelier.ModelFile, error) {
	body := &tarBody{files: files, done: make(chan struct{})}
	req, err := c.newRequest(ctx, "POST", wsPath(workspace, "models", "uploads"), nil, body)
	if err != nil {
		return nil, err
	}
	// Unknown length: chunked, and no probing one-byte read, which would hide WriteTo.
	req.ContentLength = -1
	req.Header.Set("Content-Type", "application/x-tar")
	resp, err := c.do(req)
	// The transport may still be writing (it closes the body asynchronously): stop and wait, so
	// the stream is not read once this returns, and a local error (a file that cannot be read)
	// is reported rather than the broken connection it caused.
	if werr := body.finish(); werr != nil {
		if err == nil {
			resp.Body.Close()
		}
		return nil, werr
	}
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out ModelUploadResponse
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, atelier.Errorf(atelier.EUNAVAILABLE, "reading the server's answer to a model upload: %v", err)
	}
	return out.Files, nil
}

// tarBody is a request body that writes a tar stream of files. The transport copies a body
// with WriteTo when it has one, so each file's content goes from its reader to the connection
// through one buffer, in large chunks; Read is there for callers that insist on it.
type tarBody struct {
	files atelier.ModelFileStream

	mu      sync.Mutex
	started bool // WriteTo was entered; done is closed when it returns
	closed  bool
	err     error // the stream's own error, if it failed
	done    chan struct{}
	pipe    *io.PipeReader
}

func (b *tarBody) WriteTo(w io.Writer) (int64, error) {
	b.mu.Lock()
	if b.closed || b.started {
		b.mu.Unlock()
		return 0, io.ErrClosedPipe
	}
	b.started = true
	b.mu.Unlock()
	defer close(b.done)
	cw := &countWriter{w: w}
	err := b.writeTar(cw)
	if err != nil && cw.err == nil && err != io.ErrClosedPipe {
		// Not the connection: the stream failed (a file could not be read, or its content
		// was not the size it announced).
		b.fail(err)
	}
	return cw.n, err
}

func (b *tarBody) writeTar(w io.Writer) error {
	tw := tar.NewWriter(w)
	buf := make([]byte, 1<<20)
	for {
		f, err := b.files.Next()
		if err == io.EOF {
			return tw.Close()
		} else if err != nil {
			return err
		}
		if b.isClosed() {
			return io.ErrClosedPipe
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: f.Path, Size: f.Size, Mode: 0o644}); err != nil {
			return err
		}
		// struct{io.Reader} hides any WriterTo, so the copy goes through buf: 1 MiB writes.
		if _, err := io.CopyBuffer(tw, struct{ io.Reader }{b.files}, buf); err != nil {
			return err
		}
	}
}

func (b *tarBody) fail(err error) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err == nil {
		b.err = err
	}
	return err
}

func (b *tarBody) isClosed() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.closed
}

func (b *tarBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	if b.pipe == nil {
		pr, pw := io.Pipe()
		b.pipe = pr
		go func() {
			_, err := b.WriteTo(pw)
			pw.CloseWithError(err)
		}()
	}
	pr := b.pipe
	b.mu.Unlock()
	return pr.Read(p)
}

func (b *tarBody) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	if b.pipe != nil {
		b.pipe.Close()
	}
	return nil
}

// finish stops the body, waits until nothing writes it any more and returns the stream's error.
func (b *tarBody) finish() error {
	b.Close()
	b.mu.Lock()
	started := b.started
	b.mu.Unlock()
	if started {
		<-b.done
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err
}

// countWriter counts what is written and remembers a write error (the connection's).
type countWriter struct {
	w   io.Writer
	n   int64
	err error
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	if err != nil {
		c.err = err
	}
	return n, err
}

func (c *Client) RegisterModel(ctx context.Context, workspace string, req atelier.ModelRegister) (*atelier.ModelVersion, error) {
	var v atelier.ModelVersion
	return &v, c.call(ctx, "POST", wsPath(workspace, "models"), nil, req, &v)
}

func (c *Client) FindModel(ctx context.Context, workspace, name string) (*atelier.Model, error) {
	if err := atelier.ValidateModelName(name); err != nil {
		return nil, err
	}
	var m atelier.Model
	return &m, c.call(ctx, "GET", modelPath(workspace, name), nil, nil, &m)
}

func (c *Client) ListModels(ctx context.Context, workspace string, mq atelier.ModelQuery) (*atelier.ModelPage, error) {
	var page atelier.ModelPage
	return &page, c.call(ctx, "GET", wsPath(workspace, "models"), modelQueryValues(mq), nil, &page)
}

// modelQueryValues is mq as the query parameters of the GET listings.
func modelQueryValues(mq atelier.ModelQuery) url.Values {
	q := url.Values{}
	for k, v := range map[string]string{"name_contains": mq.NameContains, "order_by": mq.OrderBy, "page_token": mq.PageToken} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if mq.Limit != 0 {
		q.Set("limit", strconv.Itoa(mq.Limit))
	}
	q["tag"], q["property"] = mq.Tags, mq.Properties
	return q
}

func (c *Client) FindModelVersion(ctx context.Context, workspace string, ref atelier.ModelRef) (*atelier.ModelVersion, error) {
	if err := ref.Validate(); err != nil {
		return nil, err
	}
	var v atelier.ModelVersion
	return &v, c.call(ctx, "GET", versionPath(workspace, ref), nil, nil, &v)
}

func (c *Client) ListModelVersions(ctx context.Context, workspace string, mq atelier.ModelQuery) (*atelier.ModelVersionPage, error) {
	var page atelier.ModelVersionPage
	return &page, c.call(ctx, "POST", wsPath(workspace, "models", "search"), nil, mq, &page)
}

// ListRunModels lists the versions registered from a run (ENOTFOUND for an unknown run).
func (c *Client) ListRunModels(ctx context.Context, workspace, runID string, mq atelier.ModelQuery) (*atelier.ModelVersionPage, error) {
	var page atelier.ModelVersionPage
	return &page, c.call(ctx, "GET", wsPath(workspace, "runs", url.PathEscape(runID), "models"), modelQueryValues(mq), nil, &page)
}

func (c *Client) UpdateModelVersion(ctx context.Context, workspace string, ref atelier.ModelRef, upd atelier.ModelVersionUpdate) (*atelier.ModelVersion, error) {
	if err := ref.Validate(); err != nil {
		return nil, err
	}
	var v atelier.ModelVersion
	return &v, c.call(ctx, "PATCH", versionPath(workspace, ref), nil, upd, &v)
}

func (c *Client) SetModelAlias(ctx context.Context, workspace, name, alias string, version int64) (*atelier.ModelVersion, error) {
	if err := atelier.ValidateModelName(name); err != nil {
		return nil, err
	}
	var v atelier.ModelVersion
	return &v, c.call(ctx, "PUT", modelPath(workspace, name, "aliases", url.PathEscape(alias)), nil, ModelAliasSet{Version: version}, &v)
}

func (c *Client) DeleteModelAlias(ctx context.Context, workspace, name, alias string) error {
	if err := atelier.ValidateModelName(name); err != nil {
		return err
	}
	return c.call(ctx, "DELETE", modelPath(workspace, name, "aliases", url.PathEscape(alias)), nil, nil, nil)
}

func (c *Client) DeleteModelVersion(ctx context.Context, workspace string, ref atelier.ModelRef) error {
	if err := ref.Validate(); err != nil {
		return err
	}
	return c.deleteModel(ctx, versionPath(workspace, ref))
}

func (c *Client) DeleteModel(ctx context.Context, workspace, name string) error {
	if err := atelier.ValidateModelName(name); err != nil {
		return err
	}
	return c.deleteModel(ctx, modelPath(workspace, name))
}

// deleteModel sends a delete and turns a 409 that lists references into a *ModelInUseError.
func (c *Client) deleteModel(ctx context.Context, path string) error {
	req, err := c.newRequest(ctx, "DELETE", path, nil, nil)
	if err != nil {
		return err
	}
	resp, err := c.http().Do(req)
	if err != nil {
		return atelier.Errorf(atelier.EUNAVAILABLE, "cannot reach the atelier server at %s: %v", c.BaseURL, unwrapURLError(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode < 300 {
		io.Copy(io.Discard, resp.Body)
		return nil
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	var inUse ModelInUseResponse
	if resp.StatusCode == http.StatusConflict && json.Unmarshal(body, &inUse) == nil && len(inUse.References) > 0 {
		return &atelier.ModelInUseError{Err: &atelier.Error{Code: inUse.Code, Message: inUse.Message}, References: inUse.References}
	}
	// Anything else is handled as every other call does.
	resp.Body = io.NopCloser(bytes.NewReader(body))
	return c.errorOf(req, resp, body)
}

// errorOf turns an error response into an *atelier.Error, as do does.
func (c *Client) errorOf(req *http.Request, resp *http.Response, body []byte) error {
	var e ErrorResponse
	if json.Unmarshal(body, &e) == nil && e.Code != "" {
		return &atelier.Error{Code: e.Code, Message: e.Message}
	}
	code := atelier.EINTERNAL
	for c, st := range statusOf {
		if st == resp.StatusCode {
			code = c
		}
	}
	return atelier.Errorf(code, "%s %s: %s: %s", req.Method, req.URL.Path, resp.Status, bytes.TrimSpace(body))
}

func (c *Client) ListModelReferences(ctx context.Context, workspace string, ref atelier.ModelRef) ([]atelier.ModelReference, error) {
	if err := ref.Validate(); err != nil {
		return nil, err
	}
	path := modelPath(workspace, ref.Name, "references")
	if !ref.Latest() {
		path = versionPath(workspace, ref, "references")
	}
	var out struct{ References []atelier.ModelReference }
	return out.References, c.call(ctx, "GET", path, nil, nil, &out)
}

func (c *Client) OpenModelFile(ctx context.Context, workspace string, ref atelier.ModelRef, path string) (*atelier.ModelFile, io.ReadCloser, error) {
	if err := ref.Validate(); err != nil {
		return nil, nil, err
	}
	if err := atelier.ValidatePath(path); err != nil {
		return nil, nil, err
	}
	req, err := c.newRequest(ctx, "GET", versionPath(workspace, ref, "files", escapePath(path)), nil, nil)
	if err != nil {
		return nil, nil, err
	}
	resp, err := c.do(req)
	if err != nil {
		return nil, nil, err
	}
	return &atelier.ModelFile{Path: path, Size: resp.ContentLength, Digest: resp.Header.Get(DigestHeader)}, resp.Body, nil
}

func (c *Client) WriteModelZip(ctx context.Context, workspace string, ref atelier.ModelRef, w io.Writer) error {
	if err := ref.Validate(); err != nil {
		return err
	}
	return c.download(ctx, versionPath(workspace, ref, "zip"), w)
}
