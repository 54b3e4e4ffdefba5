package api

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"github.com/atelier-ml/atelier"
)

// webServiceRoutes is the web services' part of the route table. Reads are PolicyMember (a
// run's token reads no services); keys are for Contributors (the service checks).
func (s *Server) webServiceRoutes() []Route {
	const svc = ws + "/services/{service}"
	return []Route{
		{Pattern: "GET " + ws + "/services", Policy: PolicyMember, handler: s.listWebServices},
		{Pattern: "POST " + ws + "/services", Policy: PolicyWrite, handler: s.deployWebService},
		{Pattern: "GET " + svc, Policy: PolicyMember, handler: s.getWebService},
		{Pattern: "PATCH " + svc, Policy: PolicyWrite, handler: s.updateWebService},
		{Pattern: "DELETE " + svc, Policy: PolicyWrite, handler: s.deleteWebService},
		{Pattern: "GET " + svc + "/keys", Policy: PolicyWrite, handler: s.webServiceKeys},
		{Pattern: "POST " + svc + "/keys", Policy: PolicyWrite, handler: s.regenerateWebServiceKey},
		{Pattern: "GET " + svc + "/log", Policy: PolicyMember, handler: s.webServiceLog},
	}
}

// WebServiceList is the answer to GET /services.
type WebServiceList struct {
	Services []*atelier.WebService `json:"services"`
}

// RegenerateKey asks for a service key to be replaced.
type RegenerateKey struct {
	Key string `json:"key"` // primary or secondary
}

func (s *Server) listWebServices(w http.ResponseWriter, r *http.Request) error {
	list, err := s.svc.ListWebServices(r.Context(), r.PathValue("workspace"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, WebServiceList{Services: list})
}

func (s *Server) deployWebService(w http.ResponseWriter, r *http.Request) error {
	var d atelier.WebServiceDeploy
	if err := s.readJSON(w, r, &d); err != nil {
		return err
	}
	svc, err := s.svc.DeployWebService(r.Context(), r.PathValue("workspace"), d)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, svc)
}

func (s *Server) getWebService(w http.ResponseWriter, r *http.Request) error {
	svc, err := s.svc.FindWebService(r.Context(), r.PathValue("workspace"), r.PathValue("service"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, svc)
}

func (s *Server) updateWebService(w http.ResponseWriter, r *http.Request) error {
	var d atelier.WebServiceDeploy
	if err := s.readJSON(w, r, &d); err != nil {
		return err
	}
	if d.Name != "" && d.Name != r.PathValue("service") {
		return atelier.Errorf(atelier.EINVALID, "name %q differs from the service in the path (%q): a service cannot be renamed", d.Name, r.PathValue("service"))
	}
	d.Name = r.PathValue("service")
	svc, err := s.svc.UpdateWebService(r.Context(), r.PathValue("workspace"), d)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, svc)
}

func (s *Server) deleteWebService(w http.ResponseWriter, r *http.Request) error {
	if err := s.svc.DeleteWebService(r.Context(), r.PathValue("workspace"), r.PathValue("service")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) webServiceKeys(w http.ResponseWriter, r *http.Request) error {
	k, err := s.svc.WebServiceKeys(r.Context(), r.PathValue("workspace"), r.PathValue("service"), "")
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, k)
}

func (s *Server) regenerateWebServiceKey(w http.ResponseWriter, r *http.Request) error {
	var rk RegenerateKey
	if err := s.readJSON(w, r, &rk); err != nil {
		return err
	}
	if rk.Key == "" {
		return atelier.Errorf(atelier.EINVALID, "key is required: primary or secondary")
	}
	k, err := s.svc.WebServiceKeys(r.Context(), r.PathValue("workspace"), r.PathValue("service"), rk.Key)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, k)
}

func (s *Server) webServiceLog(w http.ResponseWriter, r *http.Request) error {
	offset, err := queryInt(r, "offset")
	if err != nil {
		return err
	}
	var off int64
	if offset != nil {
		if *offset < 0 {
			return atelier.Errorf(atelier.EINVALID, "offset=%d: give an offset from 0", *offset)
		}
		off = *offset
	}
	ws, name := r.PathValue("workspace"), r.PathValue("service")
	// The offset after the log is known only once it is written: check access first, so an
	// error is still a JSON answer.
	if _, err := s.svc.FindWebService(r.Context(), ws, name); err != nil {
		return err
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, err = s.svc.WebServiceLog(r.Context(), ws, name, off, w)
	return err
}

func servicePath(workspace, name string, parts ...string) string {
	return wsPath(workspace, append([]string{"services", url.PathEscape(name)}, parts...)...)
}

func (c *Client) DeployWebService(ctx context.Context, workspace string, d atelier.WebServiceDeploy) (*atelier.WebService, error) {
	var svc atelier.WebService
	return &svc, c.call(ctx, "POST", wsPath(workspace, "services"), nil, d, &svc)
}

func (c *Client) UpdateWebService(ctx context.Context, workspace string, d atelier.WebServiceDeploy) (*atelier.WebService, error) {
	var svc atelier.WebService
	return &svc, c.call(ctx, "PATCH", servicePath(workspace, d.Name), nil, d, &svc)
}

func (c *Client) FindWebService(ctx context.Context, workspace, name string) (*atelier.WebService, error) {
	var svc atelier.WebService
	return &svc, c.call(ctx, "GET", servicePath(workspace, name), nil, nil, &svc)
}

func (c *Client) ListWebServices(ctx context.Context, workspace string) ([]*atelier.WebService, error) {
	var list WebServiceList
	return list.Services, c.call(ctx, "GET", wsPath(workspace, "services"), nil, nil, &list)
}

func (c *Client) DeleteWebService(ctx context.Context, workspace, name string) error {
	return c.call(ctx, "DELETE", servicePath(workspace, name), nil, nil, nil)
}

func (c *Client) WebServiceKeys(ctx context.Context, workspace, name, regenerate string) (atelier.ServiceKeys, error) {
	var k atelier.ServiceKeys
	if regenerate != "" {
		return k, c.call(ctx, "POST", servicePath(workspace, name, "keys"), nil, RegenerateKey{Key: regenerate}, &k)
	}
	return k, c.call(ctx, "GET", servicePath(workspace, name, "keys"), nil, nil, &k)
}

func (c *Client) WebServiceLog(ctx context.Context, workspace, name string, offset int64, w io.Writer) (int64, error) {
	req, err := c.newRequest(ctx, "GET", servicePath(workspace, name, "log"), url.Values{"offset": {strconv.FormatInt(offset, 10)}}, nil)
	if err != nil {
		return offset, err
	}
	resp, err := c.do(req)
	if err != nil {
		return offset, err
	}
	defer resp.Body.Close()
	n, err := io.Copy(w, resp.Body)
	return offset + n, err
}

// Score sends body to a web service's path (/score) with the given Authorization header value
// ("" for none) and returns the service's answer as it is: status, headers and body.
func (c *Client) Score(ctx context.Context, workspace, name, path, authorization string, body io.Reader) (*http.Response, error) {
	req, err := c.newRequest(ctx, "POST", "/services/"+url.PathEscape(workspace)+"/"+url.PathEscape(name)+path, nil, body)
	if err != nil {
		return nil, err
	}
	req.Header.Del("Authorization")
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http().Do(req)
	if err != nil {
		return nil, atelier.Errorf(atelier.EUNAVAILABLE, "cannot reach the atelier server at %s: %v", c.BaseURL, unwrapURLError(err))
	}
	return resp, nil
}
