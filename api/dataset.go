package api

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	"github.com/atelier-ml/atelier"
)

// datasetRoutes is the datasets' part of the route table (dataset.go). {version} is a version
// number or "latest".
func (s *Server) datasetRoutes() []Route {
	const d = ws + "/datasets/{dataset}"
	return []Route{
		{Pattern: "GET " + ws + "/datasets", Policy: PolicyRead, handler: s.listDatasets},
		{Pattern: "POST " + ws + "/datasets", Policy: PolicyWrite, handler: s.registerDataset},
		{Pattern: "GET " + d, Policy: PolicyRead, handler: s.getDataset},
		{Pattern: "DELETE " + d, Policy: PolicyWrite, handler: s.deleteDataset},
		{Pattern: "GET " + d + "/versions", Policy: PolicyRead, handler: s.listDatasetVersions},
		{Pattern: "GET " + d + "/versions/{version}", Policy: PolicyRead, handler: s.getDataset},
		{Pattern: "PATCH " + d + "/versions/{version}", Policy: PolicyWrite, handler: s.updateDataset},
		{Pattern: "DELETE " + d + "/versions/{version}", Policy: PolicyWrite, handler: s.deleteDataset},
		{Pattern: "GET " + d + "/versions/{version}/runs", Policy: PolicyRead, handler: s.listDatasetRuns},
		{Pattern: "POST " + ws + "/runs/{run}/datasets", Policy: PolicyRun, handler: s.recordRunDataset},
		{Pattern: "GET " + ws + "/runs/{run}/datasets", Policy: PolicyRunRead, handler: s.listRunDatasets},
	}
}

// ParseDatasetVersion reads a version: a number from 1, or "latest" (0); "" is the latest.
func ParseDatasetVersion(v string) (int, error) {
	if v == "" || v == "latest" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, atelier.Errorf(atelier.EINVALID, "version: %q is not a version number (1, 2, ...) or \"latest\"", v)
	}
	return n, nil
}

func datasetSel(r *http.Request) (string, int, error) {
	name := r.PathValue("dataset")
	if err := atelier.ValidateDatasetName(name); err != nil {
		return "", 0, err
	}
	v, err := ParseDatasetVersion(r.PathValue("version"))
	return name, v, err
}

func (s *Server) listDatasets(w http.ResponseWriter, r *http.Request) error {
	list, err := s.svc.ListDatasets(r.Context(), r.PathValue("workspace"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]any{"datasets": list})
}

func (s *Server) registerDataset(w http.ResponseWriter, r *http.Request) error {
	var req atelier.DatasetRegister
	if err := s.readJSON(w, r, &req); err != nil {
		return err
	}
	d, err := s.svc.RegisterDataset(r.Context(), r.PathValue("workspace"), req)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, d)
}

func (s *Server) getDataset(w http.ResponseWriter, r *http.Request) error {
	name, v, err := datasetSel(r)
	if err != nil {
		return err
	}
	d, err := s.svc.FindDataset(r.Context(), r.PathValue("workspace"), name, v)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, d)
}

func (s *Server) listDatasetVersions(w http.ResponseWriter, r *http.Request) error {
	name, _, err := datasetSel(r)
	if err != nil {
		return err
	}
	list, err := s.svc.ListDatasetVersions(r.Context(), r.PathValue("workspace"), name)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]any{"versions": list})
}

func (s *Server) updateDataset(w http.ResponseWriter, r *http.Request) error {
	name, v, err := datasetSel(r)
	if err != nil {
		return err
	}
	var upd atelier.DatasetUpdate
	if err := s.readJSON(w, r, &upd); err != nil {
		return err
	}
	d, err := s.svc.UpdateDataset(r.Context(), r.PathValue("workspace"), name, v, upd)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, d)
}

func (s *Server) deleteDataset(w http.ResponseWriter, r *http.Request) error {
	name, v, err := datasetSel(r)
	if err != nil {
		return err
	}
	if r.PathValue("version") == "latest" {
		d, err := s.svc.FindDataset(r.Context(), r.PathValue("workspace"), name, 0)
		if err != nil {
			return err
		}
		v = d.Version
	}
	if err := s.svc.DeleteDataset(r.Context(), r.PathValue("workspace"), name, v); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) listDatasetRuns(w http.ResponseWriter, r *http.Request) error {
	name, v, err := datasetSel(r)
	if err != nil {
		return err
	}
	if v == 0 {
		d, err := s.svc.FindDataset(r.Context(), r.PathValue("workspace"), name, 0)
		if err != nil {
			return err
		}
		v = d.Version
	}
	list, err := s.svc.DatasetRuns(r.Context(), r.PathValue("workspace"), name, v, "")
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]any{"runs": list})
}

// RunDatasetUse is the body of POST .../runs/{run}/datasets: a dataset version the run consumed.
type RunDatasetUse struct {
	Name    string `json:"name"`
	Version int    `json:"version"`
	Input   string `json:"input,omitempty"`
}

func (s *Server) recordRunDataset(w http.ResponseWriter, r *http.Request) error {
	var req RunDatasetUse
	if err := s.readJSON(w, r, &req); err != nil {
		return err
	}
	if err := atelier.ValidateDatasetName(req.Name); err != nil {
		return err
	}
	if req.Version < 1 {
		return atelier.Errorf(atelier.EINVALID, "version: a version number from 1")
	}
	if len(req.Input) > 255 {
		return atelier.Errorf(atelier.EINVALID, "input: at most 255 bytes")
	}
	use := atelier.DatasetRun{Name: req.Name, Version: req.Version, RunID: r.PathValue("run"), Input: req.Input}
	if err := s.svc.RecordDatasetRun(r.Context(), r.PathValue("workspace"), use); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) listRunDatasets(w http.ResponseWriter, r *http.Request) error {
	list, err := s.svc.DatasetRuns(r.Context(), r.PathValue("workspace"), "", 0, r.PathValue("run"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]any{"datasets": list})
}

// The Go client's datasets.

func datasetPath(workspace, name string, version int, tail ...string) string {
	parts := []string{"datasets", url.PathEscape(name)}
	if version > 0 {
		parts = append(parts, "versions", strconv.Itoa(version))
	}
	return wsPath(workspace, append(parts, tail...)...)
}

func (c *Client) RegisterDataset(ctx context.Context, workspace string, req atelier.DatasetRegister) (*atelier.Dataset, error) {
	var d atelier.Dataset
	err := c.call(ctx, "POST", wsPath(workspace, "datasets"), nil, req, &d)
	return &d, err
}

func (c *Client) FindDataset(ctx context.Context, workspace, name string, version int) (*atelier.Dataset, error) {
	var d atelier.Dataset
	err := c.call(ctx, "GET", datasetPath(workspace, name, version), nil, nil, &d)
	return &d, err
}

func (c *Client) ListDatasets(ctx context.Context, workspace string) ([]*atelier.Dataset, error) {
	var out struct {
		Datasets []*atelier.Dataset `json:"datasets"`
	}
	err := c.call(ctx, "GET", wsPath(workspace, "datasets"), nil, nil, &out)
	return out.Datasets, err
}

func (c *Client) ListDatasetVersions(ctx context.Context, workspace, name string) ([]*atelier.Dataset, error) {
	var out struct {
		Versions []*atelier.Dataset `json:"versions"`
	}
	err := c.call(ctx, "GET", datasetPath(workspace, name, 0, "versions"), nil, nil, &out)
	return out.Versions, err
}

func (c *Client) UpdateDataset(ctx context.Context, workspace, name string, version int, upd atelier.DatasetUpdate) (*atelier.Dataset, error) {
	var d atelier.Dataset
	if version <= 0 {
		return nil, atelier.Errorf(atelier.EINVALID, "version: give a version number")
	}
	err := c.call(ctx, "PATCH", datasetPath(workspace, name, version), nil, upd, &d)
	return &d, err
}

func (c *Client) DeleteDataset(ctx context.Context, workspace, name string, version int) error {
	return c.call(ctx, "DELETE", datasetPath(workspace, name, version), nil, nil, nil)
}

func (c *Client) RecordDatasetRun(ctx context.Context, workspace string, use atelier.DatasetRun) error {
	return c.call(ctx, "POST", wsPath(workspace, "runs", url.PathEscape(use.RunID), "datasets"), nil,
		RunDatasetUse{Name: use.Name, Version: use.Version, Input: use.Input}, nil)
}

func (c *Client) DatasetRuns(ctx context.Context, workspace, name string, version int, runID string) ([]*atelier.DatasetRun, error) {
	if name == "" {
		var out struct {
			Datasets []*atelier.DatasetRun `json:"datasets"`
		}
		err := c.call(ctx, "GET", wsPath(workspace, "runs", url.PathEscape(runID), "datasets"), nil, nil, &out)
		return out.Datasets, err
	}
	if version <= 0 {
		version = 0
	}
	p := datasetPath(workspace, name, version, "runs")
	if version == 0 {
		p = wsPath(workspace, "datasets", url.PathEscape(name), "versions", "latest", "runs")
	}
	var out struct {
		Runs []*atelier.DatasetRun `json:"runs"`
	}
	err := c.call(ctx, "GET", p, nil, nil, &out)
	return out.Runs, err
}
