package api

import (
	"net/http"

	"github.com/atelier-ml/atelier"
)

// vaultRoutes is the secrets vault's part of the route table. Listing is PolicyMember: a run's
// token gets no names, as it gets no values (the scheduler gives a run the secrets it names).
func (s *Server) vaultRoutes() []Route {
	return []Route{
		{Pattern: "GET " + ws + "/secrets", Policy: PolicyMember, handler: s.listSecrets},
		{Pattern: "PUT " + ws + "/secrets/{secret}", Policy: PolicyWrite, handler: s.setSecret},
		{Pattern: "DELETE " + ws + "/secrets/{secret}", Policy: PolicyWrite, handler: s.deleteSecret},
	}
}

// SecretList is the body of GET /secrets: names and dates, never values.
type SecretList struct {
	Secrets []*atelier.Secret `json:"secrets"`
}

// SecretPut is the body of PUT /secrets/{secret}. The value is never sent back.
type SecretPut struct {
	Value string `json:"value"`
}

func (s *Server) listSecrets(w http.ResponseWriter, r *http.Request) error {
	list, err := s.svc.ListSecrets(r.Context(), r.PathValue("workspace"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, SecretList{Secrets: list})
}

func (s *Server) setSecret(w http.ResponseWriter, r *http.Request) error {
	var body SecretPut
	if err := s.readJSON(w, r, &body); err != nil {
		return err
	}
	sec, err := s.svc.SetSecret(r.Context(), r.PathValue("workspace"), r.PathValue("secret"), body.Value)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, sec)
}

func (s *Server) deleteSecret(w http.ResponseWriter, r *http.Request) error {
	if err := s.svc.DeleteSecret(r.Context(), r.PathValue("workspace"), r.PathValue("secret")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
