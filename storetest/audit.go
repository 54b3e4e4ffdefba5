package storetest

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"

	"github.com/atelier-ml/atelier"
)

// testPendingAudit: a request's pending audit entry ends up in the log exactly once, with the status
// the request ended with, whether the store wrote it with the request's write or the
// transport recorded it afterwards, as the transports do (see mlflow.Handler.ServeHTTP).
func testPendingAudit(t *testing.T, open func(t *testing.T) atelier.Store) {
	s := open(t)
	ctx := Context(t)
	MustCreateWorkspace(t, s, "ws")
	entry := func(path string) atelier.AuditEntry {
		return atelier.AuditEntry{Workspace: "ws", User: "tester", Kind: atelier.PrincipalAdmin, Method: "POST", Path: path,
			Status: http.StatusOK, Remote: "127.0.0.1"}
	}
	// finish is the transport's part.
	finish := func(t *testing.T, p *atelier.PendingAudit, status int) (stored bool) {
		t.Helper()
		e, stored := p.Finish()
		if !stored || e.Status != status {
			e.Status = status
			mustOK(t, s.AppendAudit(ctx, &e), "AppendAudit(%s)", e.Path)
		}
		return stored
	}
	logged := func(t *testing.T, path string) []*atelier.AuditEntry {
		t.Helper()
		all, err := s.ListAudit(ctx, "ws", atelier.AuditFilter{})
		mustOK(t, err, "ListAudit")
		var list []*atelier.AuditEntry
		for _, e := range all {
			if e.Path == path {
				list = append(list, e)
			}
		}
		return list
	}

	for _, tc := range []struct {
		name   string
		write  func(ctx2 context.Context) error
		status int
	}{
		{"one write", func(c context.Context) error {
			_, err := s.CreateRun(c, "ws", atelier.RunCreate{Experiment: "audited"})
			return err
		}, http.StatusOK},
		{"two writes", func(c context.Context) error {
			run, err := s.CreateRun(c, "ws", atelier.RunCreate{Experiment: "audited"})
			if err != nil {
				return err
			}
			return s.SetTags(c, "ws", run.ID, map[string]string{"k": "v"})
		}, http.StatusOK},
		{"a write, then a failure", func(c context.Context) error {
			if _, err := s.CreateRun(c, "ws", atelier.RunCreate{Experiment: "audited"}); err != nil {
				return err
			}
			return nil
		}, http.StatusInternalServerError},
		{"a failed write", func(c context.Context) error {
			if _, err := s.CreateRun(c, "missing", atelier.RunCreate{Experiment: "audited"}); atelier.ErrorCode(err) != atelier.ENOTFOUND {
				return fmt.Errorf("CreateRun(missing workspace) = %v, want ENOTFOUND", err)
			}
			return nil
		}, http.StatusNotFound},
		{"no write", func(context.Context) error { return nil }, http.StatusBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := "/audit/" + tc.name
			p := atelier.NewPendingAudit(entry(path))
			mustOK(t, tc.write(atelier.NewContextWithAudit(ctx, p)), "writes")
			finish(t, p, tc.status)
			if got := logged(t, path); len(got) != 1 || got[0].Status != tc.status || got[0].User != "tester" || got[0].Time.IsZero() {
				t.Errorf("audit entries of %s = %v, want one with status %d", path, got, tc.status)
			}
		})
	}

	t.Run("WriteAfterFinish", func(t *testing.T) {
		// A write that outlives its request (work it started) does not store the entry again.
		p := atelier.NewPendingAudit(entry("/audit/late"))
		finish(t, p, http.StatusOK)
		if _, err := s.CreateRun(atelier.NewContextWithAudit(ctx, p), "ws", atelier.RunCreate{Experiment: "audited"}); err != nil {
			t.Fatal(err)
		}
		if got := logged(t, "/audit/late"); len(got) != 1 {
			t.Errorf("audit entries = %d, want 1", len(got))
		}
	})

	t.Run("Concurrent", func(t *testing.T) {
		// Concurrent writes (which a store may commit together) each store their own entry.
		const n = 16
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				p := atelier.NewPendingAudit(entry(fmt.Sprintf("/audit/concurrent/%d", i)))
				if _, err := s.CreateRun(atelier.NewContextWithAudit(ctx, p), "ws", atelier.RunCreate{Experiment: "audited"}); err != nil {
					t.Error(err)
				}
				finish(t, p, http.StatusOK)
			}()
		}
		wg.Wait()
		for i := range n {
			if got := logged(t, fmt.Sprintf("/audit/concurrent/%d", i)); len(got) != 1 {
				t.Errorf("request %d: %d audit entries, want 1", i, len(got))
			}
		}
	})
}
