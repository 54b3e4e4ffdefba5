package mlflow

import (
	"testing"

	"github.com/atelier-ml/atelier"
)

func TestTranslateFilter(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"metrics.rmse < 1 and params.alpha = '0.1'", "metrics.rmse < 1 and params.alpha = '0.1'"},
		{"tags.x = 'y' and attributes.status = 'FINISHED'", "tags.x = 'y' and status in ('Completed')"},
		{"attributes.status = 'RUNNING'", "status in ('Preparing', 'Running', 'Finalizing', 'CancelRequested')"},
		{"status != 'SCHEDULED'", "status not in ('NotStarted', 'Queued')"},
		{"attribute.status IN ('FAILED','KILLED')", "status in ('Failed', 'Canceled')"},
		{"attributes.status NOT IN ('FINISHED')", "status not in ('Completed')"},
		{"attributes.status = 'Completed'", "status in ('Completed')"},
		{"attributes.start_time > 1700000000000", "started_at > 1700000000000"},
		{"attributes.end_time <= 5", "ended_at <= 5"},
		{"attributes.created >= 5", "started_at >= 5"},
		{"attributes.run_name LIKE 'r%'", "name LIKE 'r%'"},
		{"attributes.run_id IN ('a', 'b')", "id IN ( 'a' , 'b' )"},
		{"attributes.user_id = 'ada'", "created_by = 'ada'"},
		{"metrics.`my metric` >= 0.5", "metrics.`my metric` >= 0.5"},
		{`tags."mlflow.runName" = 'it''s'`, `tags."mlflow.runName" = 'it''s'`},
		{"metrics.rmse<-1", "metrics.rmse < -1"},
		{"params.lr = \"0.1\"", "params.lr = \"0.1\""},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := translateFilter(tc.in)
			if err != nil {
				t.Fatalf("translateFilter(%q): %v", tc.in, err)
			}
			if got != tc.want {
				t.Fatalf("translateFilter(%q) = %q, want %q", tc.in, got, tc.want)
			}
			if _, err := atelier.ParseFilter(got); err != nil {
				t.Fatalf("atelier does not parse %q: %v", got, err)
			}
		})
	}
}

func TestTranslateFilterErrors(t *testing.T) {
	for _, in := range []string{
		"attributes.status = 'DONE'",
		"attributes.status > 'FINISHED'",
		"attributes.status = FINISHED",
		"params.a = 'unterminated",
	} {
		t.Run(in, func(t *testing.T) {
			if _, err := translateFilter(in); atelier.ErrorCode(err) != atelier.EINVALID {
				t.Fatalf("translateFilter(%q): error %v, want an EINVALID error", in, err)
			}
		})
	}
}

func TestTranslateOrderBy(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want string
	}{
		{nil, ""},
		{[]string{"metrics.rmse ASC"}, "metrics.rmse ASC"},
		{[]string{"metrics.rmse", "attributes.start_time DESC"}, "metrics.rmse, started_at DESC"},
		{[]string{"attributes.run_name"}, "name"},
		{[]string{"params.`batch size` desc"}, "params.`batch size` desc"},
		{[]string{"attributes.end_time"}, "ended_at"},
	} {
		got, err := translateOrderBy(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("translateOrderBy(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
		if _, err := atelier.ParseOrderBy(got); err != nil {
			t.Errorf("atelier does not parse %q: %v", got, err)
		}
	}
}

func TestStatusMapping(t *testing.T) {
	want := map[atelier.RunStatus]string{
		atelier.StatusNotStarted: "SCHEDULED", atelier.StatusQueued: "SCHEDULED",
		atelier.StatusPreparing: "RUNNING", atelier.StatusRunning: "RUNNING", atelier.StatusFinalizing: "RUNNING",
		atelier.StatusCancelRequested: "RUNNING", atelier.StatusCompleted: "FINISHED",
		atelier.StatusFailed: "FAILED", atelier.StatusCanceled: "KILLED",
	}
	for _, s := range atelier.RunStatuses {
		if got := mlflowStatus(s); got != want[s] {
			t.Errorf("mlflowStatus(%s) = %s, want %s", s, got, want[s])
		}
	}
	for name, st := range map[string]atelier.RunStatus{"RUNNING": atelier.StatusRunning, "SCHEDULED": atelier.StatusQueued,
		"FINISHED": atelier.StatusCompleted, "FAILED": atelier.StatusFailed, "KILLED": atelier.StatusCanceled, "3": atelier.StatusCompleted} {
		got, err := atelierStatus(name)
		if err != nil || got != st {
			t.Errorf("atelierStatus(%s) = %s, %v; want %s", name, got, err, st)
		}
		if name != "3" && mlflowStatus(got) != name {
			t.Errorf("status %s does not round-trip: %s", name, mlflowStatus(got))
		}
	}
	if _, err := atelierStatus("DONE"); atelier.ErrorCode(err) != atelier.EINVALID {
		t.Errorf("atelierStatus(DONE): %v, want EINVALID", err)
	}
}

func TestErrorMapping(t *testing.T) {
	for code, want := range map[string]struct {
		status int
		code   string
	}{
		atelier.EINVALID:      {400, "INVALID_PARAMETER_VALUE"},
		atelier.ECONFLICT:     {400, "INVALID_PARAMETER_VALUE"},
		atelier.ENOTFOUND:     {404, "RESOURCE_DOES_NOT_EXIST"},
		atelier.EUNAUTHORIZED: {401, "UNAUTHENTICATED"},
		atelier.EFORBIDDEN:    {403, "PERMISSION_DENIED"},
		atelier.ETOOLARGE:     {413, "INVALID_PARAMETER_VALUE"},
		atelier.EUNAVAILABLE:  {503, "TEMPORARILY_UNAVAILABLE"},
		atelier.EINTERNAL:     {500, "INTERNAL_ERROR"},
		atelier.ENOSPACE:      {507, "RESOURCE_EXHAUSTED"},
	} {
		status, body := mapError(atelier.Errorf(code, "boom"))
		if status != want.status || body.ErrorCode != want.code || body.Message != "boom" {
			t.Errorf("%s: got %d %+v, want %d %s", code, status, body, want.status, want.code)
		}
	}
}

// The statuses MLflow's client retries, with backoff, for minutes (_TRANSIENT_FAILURE_RESPONSE_CODES
// in mlflow/utils/request_utils.py): only what a retry can cure may answer them.
var mlflowRetries = map[int]bool{408: true, 429: true, 500: true, 502: true, 503: true, 504: true}

func TestErrorsRetried(t *testing.T) {
	for code, m := range errorCodes {
		retried := code == atelier.EUNAVAILABLE || code == atelier.EINTERNAL
		if mlflowRetries[m.status] != retried {
			t.Errorf("%s answers %d, which MLflow's client retries: %v, want %v", code, m.status, mlflowRetries[m.status], retried)
		}
	}
}

func TestHandles(t *testing.T) {
	for path, want := range map[string]bool{
		"/api/2.0/mlflow/runs/get":                  true,
		"/api/3.0/mlflow/server-info":               true,
		"/ajax-api/2.0/mlflow/runs/search":          true,
		"/api/2.0/mlflow-artifacts/artifacts/0/a/b": true,
		"/workspaces/team/mlflow/api/2.0/mlflow/x":  true,
		"/workspaces/team/other":                    false,
		"/api/v1/workspaces/default/runs":           false,
		"/api/2.0/mlflowx":                          false,
	} {
		if got := Handles(path); got != want {
			t.Errorf("Handles(%q) = %v, want %v", path, got, want)
		}
	}
}

func TestLikeMatch(t *testing.T) {
	for _, tc := range []struct {
		s, p string
		want bool
	}{{"search-exp", "search%", true}, {"search", "s_arch", true}, {"x", "%y%", false}, {"", "%", true}} {
		if got := likeMatch(tc.s, tc.p); got != tc.want {
			t.Errorf("likeMatch(%q, %q) = %v", tc.s, tc.p, got)
		}
	}
}
