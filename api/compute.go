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

// computeRoutes is the compute targets' part of the route table besides their list.
func (s *Server) computeRoutes() []Route {
	const ct = ws + "/compute/{compute}"
	return []Route{
		{Pattern: "POST " + ws + "/compute", Policy: PolicyWrite, handler: s.createCompute},
		{Pattern: "GET " + ct, Policy: PolicyMember, handler: s.getCompute},
		{Pattern: "DELETE " + ct, Policy: PolicyWrite, handler: s.detachCompute},
	}
}

func (s *Server) createCompute(w http.ResponseWriter, r *http.Request) error {
	var spec atelier.ComputeTargetSpec
	if err := s.readJSON(w, r, &spec); err != nil {
		return err
	}
	t, err := s.svc.CreateComputeTarget(r.Context(), r.PathValue("workspace"), spec)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, t)
}

func (s *Server) getCompute(w http.ResponseWriter, r *http.Request) error {
	t, err := s.svc.FindComputeTarget(r.Context(), r.PathValue("workspace"), r.PathValue("compute"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, t)
}

func (s *Server) detachCompute(w http.ResponseWriter, r *http.Request) error {
	if err := s.svc.DetachComputeTarget(r.Context(), r.PathValue("workspace"), r.PathValue("compute")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
