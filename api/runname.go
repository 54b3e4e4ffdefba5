package api

import (
	"context"
	"net/http"
	"net/url"

	"github.com/atelier-ml/atelier"
)

func (s *Server) renameRun(w http.ResponseWriter, r *http.Request) error {
	var req atelier.RunRename
	if err := s.readJSON(w, r, &req); err != nil {
		return err
	}
	if req.Name == nil {
		return atelier.Errorf(atelier.EINVALID, "name is required: the run's new display name")
	}
	run, err := s.svc.RenameRun(r.Context(), r.PathValue("workspace"), r.PathValue("run"), *req.Name)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, run)
}

// RenameRun sets a run's display name.
func (c *Client) RenameRun(ctx context.Context, workspace, id, name string) (*atelier.Run, error) {
	var run atelier.Run
	err := c.call(ctx, "PATCH", wsPath(workspace, "runs", url.PathEscape(id)), nil, atelier.RunRename{Name: &name}, &run)
	return &run, err
}
