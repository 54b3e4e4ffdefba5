package mlflow_test

import (
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// createRunInfo creates a run in experiment eid with the extra JSON fields and returns its info.
func createRunInfo(t *testing.T, s *Stack, eid, extra string) map[string]any {
	t.Helper()
	return s.MustOK(t, "POST", api+"runs/create", `{"experiment_id":"`+eid+`"`+extra+`}`)["run"].(map[string]any)["info"].(map[string]any)
}

func millis(t *testing.T, v any) int64 {
	t.Helper()
	switch v := v.(type) {
	case float64:
		return int64(v)
	case string:
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			t.Fatalf("time %q is not an integer", v)
		}
		return n
	}
	t.Fatalf("time %v (%T) is not a number", v, v)
	return 0
}

// TestRunStartAndEndTimes: runs/create keeps start_time and runs/update keeps end_time, as
// mlflow server stores them (0 or absent is the server's clock); bounds are 400s.
func TestRunStartAndEndTimes(t *testing.T) {
	s := MustStack(t)
	eid := str(s.MustOK(t, "POST", api+"experiments/create", `{"name":"times"}`)["experiment_id"])

	info := createRunInfo(t, s, eid, `,"start_time":1700000000123`)
	id := str(info["run_id"])
	if info["status"] != "RUNNING" || millis(t, info["start_time"]) != 1700000000123 {
		t.Fatalf("run created with start_time 1700000000123: %v", info)
	}
	got := s.MustOK(t, "GET", api+"runs/get?run_id="+id, "")["run"].(map[string]any)["info"].(map[string]any)
	if millis(t, got["start_time"]) != 1700000000123 {
		t.Fatalf("runs/get start_time %v, want 1700000000123", got["start_time"])
	}
	upd := s.MustOK(t, "POST", api+"runs/update", `{"run_id":"`+id+`","status":"FINISHED","end_time":"1700000060456"}`)
	if ri := upd["run_info"].(map[string]any); ri["status"] != "FINISHED" || millis(t, ri["end_time"]) != 1700000060456 {
		t.Fatalf("run_info after update with end_time 1700000060456: %v", ri)
	}
	got = s.MustOK(t, "GET", api+"runs/get?run_id="+id, "")["run"].(map[string]any)["info"].(map[string]any)
	if millis(t, got["end_time"]) != 1700000060456 {
		t.Fatalf("runs/get end_time %v, want 1700000060456", got["end_time"])
	}

	// 0 or absent: the server's clock, for the start and the end.
	for _, extra := range []string{``, `,"start_time":0`} {
		before := time.Now().Add(-time.Minute).UnixMilli()
		info := createRunInfo(t, s, eid, extra)
		if st := millis(t, info["start_time"]); st < before || st > time.Now().Add(time.Minute).UnixMilli() {
			t.Errorf("run created with %q starts at %d, want about now", extra, st)
		}
		ri := s.MustOK(t, "POST", api+"runs/update", `{"run_id":"`+str(info["run_id"])+`","status":"FAILED","end_time":0}`)["run_info"].(map[string]any)
		if et := millis(t, ri["end_time"]); et < before {
			t.Errorf("run ended with end_time 0 ends at %d, want about now", et)
		}
	}

	far := time.Now().Add(48 * time.Hour).UnixMilli()
	for _, tc := range []struct{ name, body, want string }{
		{"negative start", `,"start_time":-1`, "start_time"},
		{"start in microseconds", fmt.Sprintf(`,"start_time":%d`, time.Now().UnixMicro()), "after the server's clock"},
		{"start two days ahead", fmt.Sprintf(`,"start_time":%d`, far), "after the server's clock"},
	} {
		r := s.Do(t, "POST", api+"runs/create", `{"experiment_id":"`+eid+`"`+tc.body+`}`)
		MustError(t, r, http.StatusBadRequest, "INVALID_PARAMETER_VALUE")
		if !strings.Contains(string(r.Body), tc.want) {
			t.Errorf("%s: %s, want a message naming %q", tc.name, r.Body, tc.want)
		}
	}
	live := str(createRunInfo(t, s, eid, ``)["run_id"])
	for _, end := range []string{"-5", fmt.Sprint(far)} {
		r := s.Do(t, "POST", api+"runs/update", `{"run_id":"`+live+`","status":"FINISHED","end_time":`+end+`}`)
		MustError(t, r, http.StatusBadRequest, "INVALID_PARAMETER_VALUE")
	}
	if ri := s.MustOK(t, "GET", api+"runs/get?run_id="+live, "")["run"].(map[string]any)["info"].(map[string]any); ri["status"] != "RUNNING" {
		t.Errorf("a refused end_time ended the run: %v", ri)
	}
}

// TestEqualStartTimesOrderByRunID: runs that start in the same millisecond are ordered by run
// id ascending (MLflow's tie order), the same on every page.
func TestEqualStartTimesOrderByRunID(t *testing.T) {
	s := MustStack(t)
	eid := str(s.MustOK(t, "POST", api+"experiments/create", `{"name":"ties"}`)["experiment_id"])
	var ids []string
	for range 5 {
		ids = append(ids, str(createRunInfo(t, s, eid, `,"start_time":1700000000000`)["run_id"]))
	}
	first := str(createRunInfo(t, s, eid, `,"start_time":1700000001000`)["run_id"])
	sort.Strings(ids)
	want := append([]string{first}, ids...)
	var got []string
	token := ""
	for range len(want) + 1 {
		page := s.MustOK(t, "POST", api+"runs/search", `{"experiment_ids":["`+eid+`"],"max_results":2,"page_token":"`+token+`"}`)
		runs, _ := page["runs"].([]any)
		for _, r := range runs {
			got = append(got, str(r.(map[string]any)["info"].(map[string]any)["run_id"]))
		}
		token, _ = page["next_page_token"].(string)
		if token == "" {
			break
		}
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("runs by start time desc in pages of 2:\n got %v\nwant %v", got, want)
	}
}
