package edge_test

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/atelier-ml/atelier/edge"
)

// Each request is logged once with its status, at the level its kind calls for: reads and the
// high-rate ingestion at debug, other writes at info, server failures at error, except a full
// disk (logged once an episode by the storage condition).
func TestLogRequests(t *testing.T) {
	for _, tc := range []struct {
		method, path string
		status       int
		level        string
	}{
		{"GET", "/api/v1/workspaces", 200, "DEBUG"},
		{"POST", "/api/v1/workspaces/w/runs/r/metrics", 204, "DEBUG"},
		{"POST", "/api/v1/workspaces/w/runs/r/logs/std_log.txt", 204, "DEBUG"},
		{"POST", "/api/2.0/mlflow/runs/create", 200, "INFO"},
		{"DELETE", "/api/v1/workspaces/w", 500, "ERROR"},
		{"PUT", "/api/v1/workspaces/w/datastores/d/files/x", 507, "INFO"},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			var buf bytes.Buffer
			log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
			h := edge.LogRequests(log, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(tc.status) }))
			h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(tc.method, tc.path, nil))
			line := buf.String()
			if strings.Count(line, "msg=request") != 1 || !strings.Contains(line, "level="+tc.level) ||
				!strings.Contains(line, "path="+tc.path) || !strings.Contains(line, " status="+strconv.Itoa(tc.status)) {
				t.Errorf("log = %q, want one request line at %s with status %d", line, tc.level, tc.status)
			}
		})
	}
}
