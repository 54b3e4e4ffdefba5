package api_test

import (
	"context"
	"database/sql"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/api"
	"github.com/atelier-ml/atelier/service"
)

// diesAfterRequest is the service of a server that dies as a request ends: whatever the edge
// would record once the handler has answered (the audit entry's final status, an entry no
// write took) is lost.
type diesAfterRequest struct{ *service.Service }

func (diesAfterRequest) RecordAudit(context.Context, *atelier.AuditEntry) {}

// TestAuditInWriteTransaction: a REST write's audit entry is stored in the write's own
// transaction, so a server that dies right after the write leaves both the write and its
// entry, and a write whose commit fails leaves neither (the commit is made to fail after the
// write and its entry are staged, by a deferred foreign key a trigger breaks).
func TestAuditInWriteTransaction(t *testing.T) {
	for _, tc := range []struct {
		name      string
		workspace string
		dies      bool
		stored    bool // the write commits
		audited   bool // an entry for it is in the log
	}{
		{"write commits, server dies", "kept", true, true, true},
		{"commit fails, server dies", "doomed", true, false, false},
		{"commit fails, server lives", "doomed", false, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := MustStack(t)
			raw, err := sql.Open("sqlite", "file:"+filepath.Join(s.Dir, "atelier.db")+"?_pragma=busy_timeout(10000)")
			if err != nil {
				t.Fatal(err)
			}
			defer raw.Close()
			for _, q := range []string{
				`CREATE TABLE test_nothing (id INTEGER PRIMARY KEY)`,
				`CREATE TABLE test_fails_at_commit (ref INTEGER REFERENCES test_nothing(id) DEFERRABLE INITIALLY DEFERRED)`,
				`CREATE TRIGGER test_doom AFTER INSERT ON workspaces WHEN NEW.name = 'doomed'
					BEGIN INSERT INTO test_fails_at_commit (ref) VALUES (1); END`,
			} {
				if _, err := raw.Exec(q); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
			if tc.dies {
				srv := httptest.NewServer(api.NewServer(diesAfterRequest{s.Service}, s.Service, nil))
				t.Cleanup(srv.Close)
				s.URL = srv.URL
			}
			resp := s.MustDo(t, Request{Method: "POST", Path: "/api/v1/workspaces", Body: `{"name":"` + tc.workspace + `"}`})
			if ok := resp.Status == 201; ok != tc.stored {
				t.Fatalf("creating workspace %s: %d %s", tc.workspace, resp.Status, resp.Body)
			}
			var workspaces, entries int
			if err := raw.QueryRow(`SELECT count(*) FROM workspaces WHERE name = ?`, tc.workspace).Scan(&workspaces); err != nil {
				t.Fatal(err)
			}
			var status int
			err = raw.QueryRow(`SELECT count(*), coalesce(max(status), 0) FROM audit WHERE method = 'POST' AND path = '/api/v1/workspaces'`).Scan(&entries, &status)
			if err != nil {
				t.Fatal(err)
			}
			if (workspaces == 1) != tc.stored || (entries == 1) != tc.audited || entries > 1 {
				t.Errorf("workspace %s stored %d times, its audit entry %d times; want stored %v, audited %v", tc.workspace, workspaces, entries, tc.stored, tc.audited)
			}
			if entries == 1 && (status < 300) != tc.stored {
				t.Errorf("the audit entry of a write that stored=%v says %d", tc.stored, status)
			}
		})
	}
}
