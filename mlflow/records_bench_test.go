package mlflow_test

import (
	"fmt"
	"net/url"
	"testing"
)

// BenchmarkRecordSearch is bench/mlflow_search_scale.py's record searches on the real stack
// (SQLite, service, listener) in one process, for profiling:
//
//	go test -run '^$' -bench RecordSearch -cpuprofile /tmp/cpu.out ./mlflow/
//
// 1,000 experiments, registered models and logged models, each tagged group=g(i%7), the logged
// models with a param and a metric measured on a data set; the first page of 100.
func BenchmarkRecordSearch(b *testing.B) {
	s := MustStack(b)
	exp := makeRecords(b, s, 1000)
	rm := func(filter string) string {
		return "/api/2.0/mlflow/registered-models/search?max_results=100&filter=" + url.QueryEscape(filter)
	}
	for _, c := range []struct{ name, method, path, body, key string }{
		{"experiments/tag", "POST", "/api/2.0/mlflow/experiments/search", `{"filter": "tags.group = 'g3'", "max_results": 100}`, "experiments"},
		{"experiments/name", "POST", "/api/2.0/mlflow/experiments/search", `{"filter": "name = 'exp-17'", "max_results": 100}`, "experiments"},
		{"experiments/none", "POST", "/api/2.0/mlflow/experiments/search", `{"filter": "tags.group = 'none'", "max_results": 100}`, "experiments"},
		{"registered-models/tag", "GET", rm("tags.group = 'g3'"), "", "registered_models"},
		{"registered-models/like", "GET", rm("name LIKE 'model-1%'"), "", "registered_models"},
		{"registered-models/none", "GET", rm("tags.group = 'none'"), "", "registered_models"},
		{"logged-models/param-order", "POST", "/api/2.0/mlflow/logged-models/search", `{"experiment_ids": ["` + exp +
			`"], "filter": "params.alpha = '0.1'", "max_results": 100, "order_by": [{"field_name": "metrics.acc", "ascending": false}]}`, "models"},
		{"logged-models/datasets", "POST", "/api/2.0/mlflow/logged-models/search", `{"experiment_ids": ["` + exp +
			`"], "max_results": 100, "datasets": [{"dataset_name": "eval-1"}]}`, "models"},
	} {
		b.Run(c.name, func(b *testing.B) {
			var r Response
			cpu0 := cpuTime()
			for b.Loop() {
				if r = s.Do(b, c.method, c.path, c.body); r.Status != 200 {
					b.Fatalf("status %d: %s", r.Status, r.Body)
				}
			}
			reportCPU(b, cpu0)
			list, _ := r.JSON(b)[c.key].([]any)
			b.ReportMetric(float64(len(list)), "found")
		})
	}
}

// makeRecords makes n experiments, registered models and logged models (these in one
// experiment, whose id it returns, measured by one run) through the API.
func makeRecords(tb testing.TB, s *Stack, n int) string {
	exp := s.MustOK(tb, "POST", "/api/2.0/mlflow/experiments/create", `{"name": "lm-home"}`)["experiment_id"].(string)
	run := s.MustOK(tb, "POST", "/api/2.0/mlflow/runs/create", `{"experiment_id": "`+exp+`", "start_time": 1000}`)["run"].(map[string]any)
	rid := run["info"].(map[string]any)["run_id"].(string)
	alphas := []string{"0.01", "0.03", "0.1", "0.3", "1.0"}
	for i := 0; i < n; i++ {
		g := fmt.Sprintf(`[{"key": "group", "value": "g%d"}]`, i%7)
		s.MustOK(tb, "POST", "/api/2.0/mlflow/experiments/create", fmt.Sprintf(`{"name": "exp-%d", "tags": %s}`, i, g))
		s.MustOK(tb, "POST", "/api/2.0/mlflow/registered-models/create", fmt.Sprintf(`{"name": "model-%d", "tags": %s}`, i, g))
		m := s.MustOK(tb, "POST", "/api/2.0/mlflow/logged-models", fmt.Sprintf(`{"experiment_id": "%s", "name": "lm-%d",
			"source_run_id": "%s", "tags": %s, "params": [{"key": "alpha", "value": "%s"}]}`, exp, i, rid, g, alphas[i%5]))
		id := m["model"].(map[string]any)["info"].(map[string]any)["model_id"].(string)
		s.MustOK(tb, "POST", "/api/2.0/mlflow/runs/log-batch", fmt.Sprintf(`{"run_id": "%s", "metrics": [{"key": "acc",
			"value": %f, "timestamp": %d, "step": 0, "model_id": "%s", "dataset_name": "eval-%d", "dataset_digest": "d"}]}`,
			rid, float64((i*7919)%1000)/1000, 1000+i, id, i%3))
	}
	return exp
}
