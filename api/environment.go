package api

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	"github.com/atelier-ml/atelier"
)

// environmentRoutes is the environments' part of the route table (environment.go). {version}
// is a version number or "latest".
func (s *Server) environmentRoutes() []Route {
	const e = ws + "/environments/{environment}"
	return []Route{
		{Pattern: "GET " + ws + "/environments", Policy: PolicyRead, handler: s.listEnvironments},
		{Pattern: "POST " + ws + "/environments", Policy: PolicyWrite, handler: s.registerEnvironment},
		{Pattern: "GET " + e, Policy: PolicyRead, handler: s.getEnvironment},
		{Pattern: "DELETE " + e, Policy: PolicyWrite, handler: s.deleteEnvironment},
		{Pattern: "GET " + e + "/versions", Policy: PolicyRead, handler: s.listEnvironmentVersions},
		{Pattern: "GET " + e + "/versions/{version}", Policy: PolicyRead, handler: s.getEnvironment},
		{Pattern: "DELETE " + e + "/versions/{version}", Policy: PolicyWrite, handler: s.deleteEnvironment},
	}
}

func environmentSel(r *http.Request) (string, int, error) {
	name := r.PathValue("environment")
	if !datasetNameOK(name) {
		return "", 0, atelier.Errorf(atelier.EINVALID, "invalid environment name %q", name)
	}
	v, err := ParseDatasetVersion(r.PathValue("version"))
	return name, v, err
}

func datasetNameOK(name string) bool { return atelier.ValidateDatasetName(name) == nil }

func (s *Server) listEnvironments(w http.ResponseWriter, r *http.Request) error {
	list, err := s.svc.ListEnvironments(r.Context(), r.PathValue("workspace"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]any{"environments": list})
}

func (s *Server) registerEnvironment(w http.ResponseWriter, r *http.Request) error {
	var req atelier.EnvironmentRegister
	if err := s.readJSON(w, r, &req); err != nil {
		return err
	}
	e, err := s.svc.RegisterEnvironment(r.Context(), r.PathValue("workspace"), req)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, e)
}

func (s *Server) getEnvironment(w http.ResponseWriter, r *http.Request) error {
	name, v, err := environmentSel(r)
	if err != nil {
		return err
	}
	e, err := s.svc.FindEnvironment(r.Context(), r.PathValue("workspace"), name, v)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, e)
}

func (s *Server) listEnvironmentVersions(w http.ResponseWriter, r *http.Request) error {
	name, _, err := environmentSel(r)
	if err != nil {
		return err
	}
	list, err := s.svc.ListEnvironmentVersions(r.Context(), r.PathValue("workspace"), name)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]any{"versions": list})
}

func (s *Server) deleteEnvironment(w http.ResponseWriter, r *http.Request) error {
	name, v, err := environmentSel(r)
	if err != nil {
		return err
	}
	if r.PathValue("version") == "latest" {
		e, err := s.svc.FindEnvironment(r.Context(), r.PathValue("workspace"), name, 0)
		if err != nil {
			return err
		}
		v = e.Version
	}
	if err := s.svc.DeleteEnvironment(r.Context(), r.PathValue("workspace"), name, v); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// The Go client's environments.

func environmentPath(workspace, name string, version int) string {
	if version > 0 {
		return wsPath(workspace, "environments", url.PathEscape(name), "versions", strconv.Itoa(version))
	}
	return wsPath(workspace, "environments", url.PathEscape(name))
}

func (c *Client) RegisterEnvironment(ctx context.Context, workspace string, req atelier.EnvironmentRegister) (*atelier.Environment, error) {
	var e atelier.Environment
	err := c.call(ctx, "POST", wsPath(workspace, "environments"), nil, req, &e)
	return &e, err
}

func (c *Client) FindEnvironment(ctx context.Context, workspace, name string, version int) (*atelier.Environment, error) {
	var e atelier.Environment
	err := c.call(ctx, "GET", environmentPath(workspace, name, version), nil, nil, &e)
	return &e, err
}

func (c *Client) ListEnvironments(ctx context.Context, workspace string) ([]*atelier.Environment, error) {
	var out struct {
		Environments []*atelier.Environment `json:"environments"`
	}
	err := c.call(ctx, "GET", wsPath(workspace, "environments"), nil, nil, &out)
	return out.Environments, err
}

func (c *Client) ListEnvironmentVersions(ctx context.Context, workspace, name string) ([]*atelier.Environment, error) {
	var out struct {
		Versions []*atelier.Environment `json:"versions"`
	}
	err := c.call(ctx, "GET", environmentPath(workspace, name, 0)+"/versions", nil, nil, &out)
	return out.Versions, err
}

func (c *Client) DeleteEnvironment(ctx context.Context, workspace, name string, version int) error {
	return c.call(ctx, "DELETE", environmentPath(workspace, name, version), nil, nil, nil)
}
