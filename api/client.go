package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"

	"github.com/atelier-ml/atelier"
)

// Client is the Go client of the REST API. It implements the same service interfaces as the
// server's service layer, so the CLI (and tests) use the API as if it were local.
type Client struct {
	BaseURL string
	Token   string
	HTTP    *http.Client
	// UserAgent names the caller in the server's logs.
	UserAgent string

	// socket is the server's Unix socket when BaseURL is unix://PATH: requests go over it, and
	// passing sends a request with an open file passed along (see LocalFileHeader).
	socket  string
	passing *http.Client
}

var _ Services = (*Client)(nil)

// UnixScheme starts the URL of a server's Unix socket: unix:///path/to/atelier.sock.
const UnixScheme = "unix://"

// NewClient returns a client of the server at baseURL: http(s)://HOST[:PORT], or unix://PATH
// for the server's Unix socket on this machine.
func NewClient(baseURL, token string) *Client {
	c := &Client{BaseURL: strings.TrimRight(baseURL, "/"), Token: token, UserAgent: "atelier-go"}
	if socket, ok := strings.CutPrefix(baseURL, UnixScheme); ok {
		shared, passing := unixTransports(socket)
		c.socket = socket
		c.HTTP = &http.Client{CheckRedirect: noRedirects, Transport: shared}
		c.passing = &http.Client{CheckRedirect: noRedirects, Transport: passing}
		return c
	}
	c.HTTP = &http.Client{CheckRedirect: noRedirects, Transport: newTransport()}
	return c
}

// PassesFiles reports whether the client reaches its server over a Unix socket, and so hands
// it files as open descriptors instead of their bytes.
func (c *Client) PassesFiles() bool { return c.socket != "" }

func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// http returns the HTTP client; redirects are never followed, so a request goes only where
// it was addressed. It does not modify c.HTTP: concurrent first calls (parallel uploads) would
// race on it.
func (c *Client) http() *http.Client {
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{}
	}
	if hc.CheckRedirect == nil {
		copied := *hc
		copied.CheckRedirect = noRedirects
		return &copied
	}
	return hc
}

func wsPath(workspace string, parts ...string) string {
	p := "/api/v1/workspaces/" + url.PathEscape(workspace)
	for _, part := range parts {
		p += "/" + part
	}
	return p
}

// escapePath escapes each element of a slash-separated path.
func escapePath(p string) string {
	els := strings.Split(p, "/")
	for i, el := range els {
		els[i] = url.PathEscape(el)
	}
	return strings.Join(els, "/")
}

func (c *Client) newRequest(ctx context.Context, method, path string, query url.Values, body io.Reader) (*http.Request, error) {
	u := c.BaseURL + path
	if c.socket != "" {
		u = "http://atelier" + path // any host: the transport dials the socket
	}
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, err
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	req.Header.Set("User-Agent", c.UserAgent)
	return req, nil
}

// do sends a request and returns the response, turning error statuses into *atelier.Error.
func (c *Client) do(req *http.Request) (*http.Response, error) { return c.doWith(c.http(), req) }

func (c *Client) doWith(hc *http.Client, req *http.Request) (*http.Response, error) {
	resp, err := hc.Do(req)
	if err != nil {
		return nil, atelier.Errorf(atelier.EUNAVAILABLE, "cannot reach the atelier server at %s: %v", c.BaseURL, unwrapURLError(err))
	}
	if resp.StatusCode < 300 {
		return resp, nil
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var e ErrorResponse
	if json.Unmarshal(body, &e) == nil && e.Code != "" {
		return nil, &atelier.Error{Code: e.Code, Message: e.Message}
	}
	code := atelier.EINTERNAL
	for c, st := range statusOf {
		if st == resp.StatusCode {
			code = c
		}
	}
	return nil, atelier.Errorf(code, "%s %s: %s: %s", req.Method, req.URL.Path, resp.Status, strings.TrimSpace(string(body)))
}

func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// call sends in (JSON) and decodes the response into out (JSON) when out is not nil.
func (c *Client) call(ctx context.Context, method, path string, query url.Values, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := c.newRequest(ctx, method, path, query, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("decoding the response of %s %s: %w", method, path, err)
	}
	return nil
}

// Health checks that the server answers.
func (c *Client) Health(ctx context.Context) (*Health, error) {
	var h Health
	return &h, c.call(ctx, "GET", "/api/v1/health", nil, nil, &h)
}

// ViaLocalSocket returns a client of the same server over its Unix socket when c reaches it
// over loopback TCP, the server reports a socket and owned says the socket is the caller's
// user's (else a listener of another user's could take the token and the files); otherwise,
// or if the socket does not answer, c. Over the socket files pass as open descriptors: a
// transfer on the server's machine then moves each byte once (see LocalFileHeader).
func (c *Client) ViaLocalSocket(ctx context.Context, owned func(path string) bool) *Client {
	if c.socket != "" || !isLoopbackURL(c.BaseURL) {
		return c
	}
	h, err := c.Health(ctx)
	if err != nil || h.Socket == "" || !owned(h.Socket) {
		return c
	}
	local := NewClient(UnixScheme+h.Socket, c.Token)
	local.UserAgent = c.UserAgent
	if _, err := local.Health(ctx); err != nil {
		return c
	}
	return local
}

// isLoopbackURL reports whether an http(s) URL names this machine by a loopback address or
// as localhost.
func isLoopbackURL(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return false
	}
	if u.Hostname() == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(u.Hostname())
	return err == nil && ip.IsLoopback()
}

func (c *Client) CreateWorkspace(ctx context.Context, ws *atelier.Workspace) error {
	return c.call(ctx, "POST", "/api/v1/workspaces", nil, WorkspaceCreate{Name: ws.Name, Description: ws.Description}, ws)
}

func (c *Client) FindWorkspace(ctx context.Context, name string) (*atelier.Workspace, error) {
	var ws atelier.Workspace
	return &ws, c.call(ctx, "GET", wsPath(name), nil, nil, &ws)
}

func (c *Client) ListWorkspaces(ctx context.Context) ([]*atelier.Workspace, error) {
	var out struct{ Workspaces []*atelier.Workspace }
	return out.Workspaces, c.call(ctx, "GET", "/api/v1/workspaces", nil, nil, &out)
}

func (c *Client) DeleteWorkspace(ctx context.Context, name string, force bool) error {
	return c.call(ctx, "DELETE", wsPath(name), url.Values{"force": {strconv.FormatBool(force)}}, nil, nil)
}

func (c *Client) FindExperiment(ctx context.Context, workspace, name string) (*atelier.Experiment, error) {
	var e atelier.Experiment
	return &e, c.call(ctx, "GET", wsPath(workspace, "experiments", url.PathEscape(name)), nil, nil, &e)
}

func (c *Client) ListExperiments(ctx context.Context, workspace string, f atelier.ExperimentFilter) ([]*atelier.Experiment, error) {
	q := url.Values{}
	if f.IncludeArchived {
		q.Set("include_archived", "true")
	}
	if f.Name != "" {
		q.Set("name", f.Name)
	}
	if f.ID != 0 {
		q.Set("id", strconv.FormatInt(f.ID, 10))
	}
	var out struct{ Experiments []*atelier.Experiment }
	return out.Experiments, c.call(ctx, "GET", wsPath(workspace, "experiments"), q, nil, &out)
}

func (c *Client) UpdateExperiment(ctx context.Context, workspace, name string, upd atelier.ExperimentUpdate) (*atelier.Experiment, error) {
	var e atelier.Experiment
	return &e, c.call(ctx, "PATCH", wsPath(workspace, "experiments", url.PathEscape(name)), nil, upd, &e)
}

func (c *Client) CreateRun(ctx context.Context, workspace string, create atelier.RunCreate) (*atelier.Run, error) {
	var run atelier.Run
	return &run, c.call(ctx, "POST", wsPath(workspace, "runs"), nil, create, &run)
}

func (c *Client) FindRun(ctx context.Context, workspace, id string) (*atelier.Run, error) {
	var run atelier.Run
	return &run, c.call(ctx, "GET", wsPath(workspace, "runs", url.PathEscape(id)), nil, nil, &run)
}

func (c *Client) ListRuns(ctx context.Context, workspace string, q atelier.RunQuery) (*atelier.RunPage, error) {
	var page atelier.RunPage
	return &page, c.call(ctx, "POST", wsPath(workspace, "runs", "search"), nil, q, &page)
}

func (c *Client) UpdateRunStatus(ctx context.Context, workspace, id string, upd atelier.RunStatusUpdate) (*atelier.Run, error) {
	var run atelier.Run
	return &run, c.call(ctx, "POST", wsPath(workspace, "runs", url.PathEscape(id), "status"), nil, upd, &run)
}

func (c *Client) LogParams(ctx context.Context, workspace, id string, params map[string]string) error {
	return c.call(ctx, "POST", wsPath(workspace, "runs", url.PathEscape(id), "params"), nil, KeyValues{Params: params}, nil)
}

func (c *Client) SetTags(ctx context.Context, workspace, id string, tags map[string]string) error {
	return c.call(ctx, "POST", wsPath(workspace, "runs", url.PathEscape(id), "tags"), nil, KeyValues{Tags: tags}, nil)
}

func (c *Client) DeleteTag(ctx context.Context, workspace, id, key string) error {
	return c.call(ctx, "DELETE", wsPath(workspace, "runs", url.PathEscape(id), "tags", url.PathEscape(key)), nil, nil, nil)
}

func (c *Client) AddProperties(ctx context.Context, workspace, id string, props map[string]string) error {
	return c.call(ctx, "POST", wsPath(workspace, "runs", url.PathEscape(id), "properties"), nil, KeyValues{Properties: props}, nil)
}

func (c *Client) LogMetrics(ctx context.Context, workspace, runID string, batch *atelier.MetricBatch) error {
	if batch != nil && batch.Points == nil { // the document's metrics is an array, never null
		b := *batch
		b.Points = []atelier.MetricPoint{}
		batch = &b
	}
	return c.call(ctx, "POST", wsPath(workspace, "runs", url.PathEscape(runID), "metrics"), nil, batch, nil)
}

func (c *Client) ListMetrics(ctx context.Context, workspace, runID string) ([]*atelier.MetricSummary, error) {
	var out struct{ Metrics []*atelier.MetricSummary }
	return out.Metrics, c.call(ctx, "GET", wsPath(workspace, "runs", url.PathEscape(runID), "metrics"), nil, nil, &out)
}

func (c *Client) MetricHistory(ctx context.Context, workspace, runID, name string, hq atelier.HistoryQuery) (*atelier.Series, error) {
	q := url.Values{"name": {name}}
	if hq.MinStep != nil {
		q.Set("min_step", strconv.FormatInt(*hq.MinStep, 10))
	}
	if hq.MaxStep != nil {
		q.Set("max_step", strconv.FormatInt(*hq.MaxStep, 10))
	}
	if hq.MaxPoints > 0 {
		q.Set("max_points", strconv.Itoa(hq.MaxPoints))
	}
	var s atelier.Series
	return &s, c.call(ctx, "GET", wsPath(workspace, "runs", url.PathEscape(runID), "metric-history"), q, nil, &s)
}

func (c *Client) MetricRecords(ctx context.Context, workspace, runID, name string) ([]*atelier.MetricRecord, error) {
	var out struct{ Records []*atelier.MetricRecord }
	return out.Records, c.call(ctx, "GET", wsPath(workspace, "runs", url.PathEscape(runID), "metric-records"), url.Values{"name": {name}}, nil, &out)
}

func (c *Client) UploadFile(ctx context.Context, workspace, runID, path string, r io.Reader, digest string) (*atelier.File, error) {
	if err := atelier.ValidatePath(path); err != nil {
		return nil, err
	}
	req, err := c.newRequest(ctx, "PUT", wsPath(workspace, "runs", url.PathEscape(runID), "files", escapePath(path)), nil, r)
	if err != nil {
		return nil, err
	}
	if digest != "" {
		req.Header.Set(DigestHeader, digest)
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := c.do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var f atelier.File
	return &f, json.NewDecoder(resp.Body).Decode(&f)
}

func (c *Client) ListFiles(ctx context.Context, workspace, runID, prefix string) ([]*atelier.File, error) {
	var out struct{ Files []*atelier.File }
	q := url.Values{}
	if prefix != "" {
		q.Set("prefix", prefix)
	}
	return out.Files, c.call(ctx, "GET", wsPath(workspace, "runs", url.PathEscape(runID), "files"), q, nil, &out)
}

func (c *Client) OpenFile(ctx context.Context, workspace, runID, path string) (*atelier.File, io.ReadCloser, error) {
	if err := atelier.ValidatePath(path); err != nil {
		return nil, nil, err
	}
	req, err := c.newRequest(ctx, "GET", wsPath(workspace, "runs", url.PathEscape(runID), "files", escapePath(path)), nil, nil)
	if err != nil {
		return nil, nil, err
	}
	resp, err := c.do(req)
	if err != nil {
		return nil, nil, err
	}
	f := &atelier.File{Path: path, Size: resp.ContentLength, Digest: resp.Header.Get(DigestHeader)}
	return f, resp.Body, nil
}

func (c *Client) AppendLog(ctx context.Context, workspace, runID, path string, data []byte) error {
	if err := atelier.ValidatePath(path); err != nil {
		return err
	}
	req, err := c.newRequest(ctx, "POST", wsPath(workspace, "runs", url.PathEscape(runID), "logs", escapePath(path)), nil, bytes.NewReader(data))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "text/plain")
	resp, err := c.do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

func (c *Client) ReadLog(ctx context.Context, workspace, runID, path string, offset, limit int64) (*atelier.LogChunk, error) {
	rc, err := c.FollowLog(ctx, workspace, runID, path, offset, false)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	var r io.Reader = rc
	if limit > 0 {
		r = io.LimitReader(rc, limit)
	}
	data, err := io.ReadAll(r)
	return &atelier.LogChunk{Data: data, Offset: offset}, err
}

// FollowLog streams a log from offset; with follow it goes on until the run ends.
func (c *Client) FollowLog(ctx context.Context, workspace, runID, path string, offset int64, follow bool) (io.ReadCloser, error) {
	q := url.Values{"offset": {strconv.FormatInt(offset, 10)}}
	if follow {
		q.Set("follow", "true")
	}
	req, err := c.newRequest(ctx, "GET", wsPath(workspace, "runs", url.PathEscape(runID), "logs", escapePath(path)), q, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.do(req)
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

func (c *Client) MissingObjects(ctx context.Context, workspace string, digests []string) ([]string, error) {
	var out MissingResponse
	return out.Missing, c.call(ctx, "POST", wsPath(workspace, "objects", "missing"), nil, MissingRequest{Digests: orEmpty(digests)}, &out)
}

func (c *Client) UploadObject(ctx context.Context, workspace string, r io.Reader, digest string) (atelier.Object, error) {
	var obj atelier.Object
	req, err := c.newRequest(ctx, "PUT", wsPath(workspace, "objects", url.PathEscape(digest)), nil, r)
	if err != nil {
		return obj, err
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := c.do(req)
	if err != nil {
		return obj, err
	}
	defer resp.Body.Close()
	return obj, json.NewDecoder(resp.Body).Decode(&obj)
}

func (c *Client) CreateSnapshot(ctx context.Context, workspace string, entries []atelier.SnapshotEntry) (*atelier.Snapshot, error) {
	var s atelier.Snapshot
	return &s, c.call(ctx, "POST", wsPath(workspace, "snapshots"), nil, SnapshotCreate{Entries: orEmpty(entries)}, &s)
}

func (c *Client) UploadSnapshotZip(ctx context.Context, workspace string, r io.Reader) (*atelier.Snapshot, error) {
	req, err := c.newRequest(ctx, "POST", wsPath(workspace, "snapshots"), nil, r)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/zip")
	resp, err := c.do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var s atelier.Snapshot
	return &s, json.NewDecoder(resp.Body).Decode(&s)
}

func (c *Client) FindSnapshot(ctx context.Context, workspace, id string) (*atelier.Snapshot, error) {
	var s atelier.Snapshot
	return &s, c.call(ctx, "GET", wsPath(workspace, "snapshots", url.PathEscape(id)), nil, nil, &s)
}

func (c *Client) WriteSnapshotZip(ctx context.Context, workspace, id string, w io.Writer) error {
	return c.download(ctx, wsPath(workspace, "snapshots", url.PathEscape(id), "zip"), w)
}

// WriteRunSnapshotZip streams the snapshot of a run as a zip.
func (c *Client) WriteRunSnapshotZip(ctx context.Context, workspace, runID string, w io.Writer) error {
	return c.download(ctx, wsPath(workspace, "runs", url.PathEscape(runID), "snapshot"), w)
}

func (c *Client) download(ctx context.Context, path string, w io.Writer) error {
	req, err := c.newRequest(ctx, "GET", path, nil, nil)
	if err != nil {
		return err
	}
	resp, err := c.do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, err = io.Copy(w, resp.Body)
	return err
}

func (c *Client) ListActivities(ctx context.Context, workspace string, f atelier.ActivityFilter) ([]*atelier.Activity, error) {
	q := url.Values{}
	if f.Kind != "" {
		q.Set("kind", f.Kind)
	}
	if f.Target != "" {
		q.Set("target", f.Target)
	}
	if f.Active {
		q.Set("active", "true")
	}
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	var out struct{ Activities []*atelier.Activity }
	return out.Activities, c.call(ctx, "GET", wsPath(workspace, "activities"), q, nil, &out)
}

func (c *Client) FindActivity(ctx context.Context, workspace, id string) (*atelier.Activity, error) {
	var a atelier.Activity
	return &a, c.call(ctx, "GET", wsPath(workspace, "activities", url.PathEscape(id)), nil, nil, &a)
}

// Subscribe reads the server's event stream. The channel closes when ctx ends or the stream
// breaks.
func (c *Client) Subscribe(ctx context.Context, workspace string, f atelier.EventFilter) (<-chan *atelier.Event, error) {
	q := url.Values{}
	if f.RunID != "" {
		q.Set("run_id", f.RunID)
	}
	if len(f.Types) > 0 {
		q.Set("types", strings.Join(f.Types, ","))
	}
	req, err := c.newRequest(ctx, "GET", wsPath(workspace, "events"), q, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := c.do(req)
	if err != nil {
		return nil, err
	}
	ch := make(chan *atelier.Event, 64)
	go func() {
		defer close(ch)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 64<<10), 16<<20)
		for sc.Scan() {
			data, ok := strings.CutPrefix(sc.Text(), "data: ")
			if !ok {
				continue
			}
			var e atelier.Event
			if json.Unmarshal([]byte(data), &e) != nil {
				continue
			}
			select {
			case ch <- &e:
			case <-ctx.Done():
				return
			}
		}
	}()
	return ch, nil
}

func (c *Client) SubmitRun(ctx context.Context, workspace string, sub atelier.RunSubmit) (*atelier.Run, error) {
	var run atelier.Run
	return &run, c.call(ctx, "POST", wsPath(workspace, "runs", "submit"), nil, sub, &run)
}

func (c *Client) CancelRun(ctx context.Context, workspace, id string) (*atelier.Run, error) {
	var run atelier.Run
	return &run, c.call(ctx, "POST", wsPath(workspace, "runs", url.PathEscape(id), "cancel"), nil, nil, &run)
}

func (c *Client) ListComputeTargets(ctx context.Context, workspace string) ([]*atelier.ComputeTarget, error) {
	var out struct{ Compute []*atelier.ComputeTarget }
	return out.Compute, c.call(ctx, "GET", wsPath(workspace, "compute"), nil, nil, &out)
}

// orEmpty returns list, or an empty list for nil: the document's arrays are never null, and a
// nil slice encodes as null.
func orEmpty[T any](list []T) []T {
	if list == nil {
		return []T{}
	}
	return list
}
