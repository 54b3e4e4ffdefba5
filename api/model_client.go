package api

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"github.com/atelier-ml/atelier"
)

func modelPath(workspace, name string, parts ...string) string {
	return wsPath(workspace, append([]string{"models", url.PathEscape(name)}, parts...)...)
}

func versionPath(workspace string, ref atelier.ModelRef, parts ...string) string {
	return modelPath(workspace, ref.Name, append([]string{"versions", url.PathEscape(ref.Selector())}, parts...)...)
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
	var page atelier.ModelPage
	return &page, c.call(ctx, "GET", wsPath(workspace, "models"), q, nil, &page)
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
