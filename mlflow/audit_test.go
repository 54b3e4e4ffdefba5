package mlflow_test

import (
	"strings"
	"testing"

	"github.com/atelier-ml/atelier"
)

// Writes through the MLflow API land in the audit log like writes through atelier's own API;
// reads do not.
func TestWritesAreAudited(t *testing.T) {
	s := MustStack(t)
	s.MustOK(t, "POST", "/api/2.0/mlflow/experiments/create", `{"name":"audited"}`)
	s.MustOK(t, "GET", "/api/2.0/mlflow/experiments/get-by-name?experiment_name=audited", "")
	// MLflow searches with POST: still a read.
	s.MustOK(t, "POST", "/api/2.0/mlflow/runs/search", `{"experiment_ids":["0"]}`)
	s.MustOK(t, "POST", "/api/2.0/mlflow/experiments/search", `{}`)
	entries, err := s.Service.ListAudit(authCtx(t, s), "", atelier.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var creates, gets int
	for _, e := range entries {
		if strings.HasSuffix(e.Path, "/experiments/create") && e.Method == "POST" && e.Status == 200 && e.Workspace == "default" {
			creates++
		}
		if strings.Contains(e.Path, "get-by-name") || strings.HasSuffix(e.Path, "/search") {
			gets++
		}
	}
	if creates != 1 || gets != 0 {
		t.Errorf("audit log %+v: want the create once and no read (searches included)", entries)
	}
}
