package mlflow_test

import (
	"context"
	"database/sql"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/mlflow"
	"github.com/atelier-ml/atelier/service"
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

// diesAfterRequest is the service of a server that dies as a request ends: whatever the edge
// would record once the handler has answered is lost.
type diesAfterRequest struct{ *service.Service }

func (diesAfterRequest) RecordAudit(context.Context, *atelier.AuditEntry) {}

// TestAuditInWriteTransaction: an MLflow write and its audit entry commit together, as REST's
// do (the same edge): a server that dies right after the write keeps both, a write whose
// commit fails (a deferred foreign key a trigger breaks) leaves neither.
func TestAuditInWriteTransaction(t *testing.T) {
	for _, name := range []string{"kept", "doomed"} {
		t.Run(name, func(t *testing.T) {
			s := MustStack(t)
			raw, err := sql.Open("sqlite", "file:"+filepath.Join(s.Dir, "atelier.db")+"?_pragma=busy_timeout(10000)")
			if err != nil {
				t.Fatal(err)
			}
			defer raw.Close()
			if _, err := raw.Exec(`CREATE TABLE test_nothing (id INTEGER PRIMARY KEY);
				CREATE TABLE test_fails_at_commit (ref INTEGER REFERENCES test_nothing(id) DEFERRABLE INITIALLY DEFERRED);
				CREATE TRIGGER test_doom AFTER INSERT ON experiments WHEN NEW.name = 'doomed'
					BEGIN INSERT INTO test_fails_at_commit (ref) VALUES (1); END`); err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewServer(mlflow.NewHandler(diesAfterRequest{s.Service}, s.Service, nil))
			t.Cleanup(srv.Close)
			s.URL = srv.URL
			resp := s.Do(t, "POST", "/api/2.0/mlflow/experiments/create", `{"name":"`+name+`"}`)
			if stored := resp.Status == 200; stored != (name == "kept") {
				t.Fatalf("creating experiment %s: %d %s", name, resp.Status, resp.Body)
			}
			var experiments, entries int
			if err := raw.QueryRow(`SELECT count(*) FROM experiments WHERE name = ?`, name).Scan(&experiments); err != nil {
				t.Fatal(err)
			}
			if err := raw.QueryRow(`SELECT count(*) FROM audit WHERE path LIKE '%/experiments/create'`).Scan(&entries); err != nil {
				t.Fatal(err)
			}
			if experiments != entries || entries > 1 {
				t.Errorf("experiment %s stored %d times, its audit entry %d times: want both or neither", name, experiments, entries)
			}
		})
	}
}
