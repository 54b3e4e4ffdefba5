package slurm_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/compute/slurm"
	"github.com/atelier-ml/atelier/compute/slurm/slurmtest"
)

// TestStateOfRecordedJobs maps slurmrestd's answers to GET /slurm/v0.0.38/jobs and job/{id}, recorded
// from Slurm 22.05.8 (testdata/job-*.json: a running job, one pending for Resources, one
// held by scontrol hold), onto job states: a PENDING job is Running and Queued with Slurm's
// reason in its Detail; a RUNNING one is Running, not Queued. No cluster is needed.
func TestStateOfRecordedJobs(t *testing.T) {
	read := func(name string) map[string]any {
		b, err := os.ReadFile("testdata/" + name)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	withReason := func(m map[string]any, reason string) map[string]any {
		b, _ := json.Marshal(m)
		var c map[string]any
		json.Unmarshal(b, &c)
		c["jobs"].([]any)[0].(map[string]any)["state_reason"] = reason
		return c
	}
	resources := read("job-pending-resources.json")
	for _, tc := range []struct {
		name   string
		answer map[string]any
		queued bool
		want   []string
	}{
		{"Running", read("job-running.json"), false, []string{"Slurm job 1 is RUNNING on localhost"}},
		{"PendingResources", resources, true, []string{"waiting in Slurm's queue: Resources", "in use", "Slurm job 2 is PENDING"}},
		{"Held", read("job-pending-held.json"), true, []string{"waiting in Slurm's queue: JobHeldAdmin", "administrator holds it"}},
		{"Priority", withReason(resources, "Priority"), true, []string{"waiting in Slurm's queue: Priority", "higher priority"}},
		{"ReqNodeNotAvail", withReason(resources, "ReqNodeNotAvail, UnavailableNodes:node[1-2]"), true,
			[]string{"waiting in Slurm's queue: ReqNodeNotAvail, UnavailableNodes:node[1-2]", "down, drained or reserved"}},
		{"UnknownReason", withReason(resources, "AssocGrpCpuLimit"), true, []string{"waiting in Slurm's queue: AssocGrpCpuLimit; Slurm job 2 is PENDING"}},
		{"NoReason", withReason(resources, "None"), true, []string{"waiting in Slurm's queue: None (Slurm's scheduler has not looked at it yet)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := int(tc.answer["jobs"].([]any)[0].(map[string]any)["job_id"].(float64))
			// The driver reads the cluster's jobs (GET jobs); a job not among them is read alone.
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				switch r.URL.Path {
				case "/slurm/v0.0.38/jobs":
					if id%2 == 0 {
						json.NewEncoder(w).Encode(map[string]any{"jobs": []any{}}) // not there: read alone
						return
					}
				case "/slurm/v0.0.38/job/" + itoa(id):
				default:
					http.NotFound(w, r)
					return
				}
				json.NewEncoder(w).Encode(tc.answer)
			}))
			defer srv.Close()
			tg := &atelier.ComputeTarget{Name: "hpc", Kind: atelier.ComputeSlurm, Workspace: atelier.DefaultWorkspace, Slurm: &atelier.SlurmCompute{URL: srv.URL}}
			creds := atelier.ComputeCredentials{Token: slurmtest.SignToken([]byte("k"), "root", time.Now().Add(time.Hour))}
			d := slurm.New("/nonexistent", "/nonexistent", func(context.Context, string, string) (*atelier.ComputeTarget, atelier.ComputeCredentials, error) {
				return tg, creds, nil
			})
			h, _ := json.Marshal(map[string]any{"workspace": tg.Workspace, "target": "hpc", "url": srv.URL, "job_id": id, "dir": t.TempDir()})
			st, err := d.Status(context.Background(), string(h))
			if err != nil {
				t.Fatal(err)
			}
			if st.Phase != atelier.JobRunning || st.Queued != tc.queued {
				t.Errorf("state %+v, want Running with Queued %v", st, tc.queued)
			}
			for _, w := range tc.want {
				if !strings.Contains(st.Detail, w) {
					t.Errorf("Detail %q does not say %q", st.Detail, w)
				}
			}
		})
	}
}
