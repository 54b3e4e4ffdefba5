package api

import (
	"net/http"

	"github.com/atelier-ml/atelier"
)

func (s *Server) submitRun(w http.ResponseWriter, r *http.Request) error {
	var sub atelier.RunSubmit
	if err := s.readJSON(w, r, &sub); err != nil {
		return err
	}
	run, err := s.svc.SubmitRun(r.Context(), r.PathValue("workspace"), sub)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, run)
}

func (s *Server) cancelRun(w http.ResponseWriter, r *http.Request) error {
	run, err := s.svc.CancelRun(r.Context(), r.PathValue("workspace"), r.PathValue("run"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, run)
}

func (s *Server) listCompute(w http.ResponseWriter, r *http.Request) error {
	list, err := s.svc.ListComputeTargets(r.Context(), r.PathValue("workspace"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]any{"compute": list})
}
