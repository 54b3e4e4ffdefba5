package mlflow_test

import (
	"strings"
	"testing"

	"github.com/atelier-ml/atelier"
)

// BenchmarkModelVersionCreation is one model-versions/create per iteration, sequential, of a
// model folder as mlflow.sklearn.log_model writes it (five files): from a logged model (MLflow
// 3's register_model: source models:/<model_id> with model_id) and from a run's artifacts
// (runs:/<run_id>/<path>), and from a run's artifacts as version 10,001 onwards of a model (its
// first 10,000 versions made through the store before the clock starts), which shows the cost
// that grows with a model's versions. cpu-µs/op is the process's CPU (server and client
// goroutines):
//
//	go test -run '^$' -bench ModelVersionCreation -benchtime 2000x -cpuprofile /tmp/cpu.out ./mlflow/
func BenchmarkModelVersionCreation(b *testing.B) {
	s := MustStack(b)
	c := newBenchClient(s)
	run := s.MustOK(b, "POST", api+"runs/create", `{"experiment_id":"0"}`)["run"].(map[string]any)["info"].(map[string]any)
	rid := str(run["run_id"])
	m := s.MustOK(b, "POST", api+"logged-models", `{"experiment_id":"0","name":"model","source_run_id":"`+rid+`"}`)["model"].(map[string]any)["info"].(map[string]any)
	mid := str(m["model_id"])
	files := map[string]string{"MLmodel": "flavors: {}\n", "conda.yaml": "name: env\n", "python_env.yaml": "python: 3.12\n",
		"requirements.txt": "scikit-learn==1.5\n", "model.pkl": strings.Repeat("w", 4096)}
	for f, body := range files {
		s.MustOK(b, "PUT", "/api/2.0/mlflow-artifacts/artifacts/"+strings.TrimPrefix(str(m["artifact_uri"]), "mlflow-artifacts:/")+"/"+f, body)
		s.MustOK(b, "PUT", "/api/2.0/mlflow-artifacts/artifacts/0/"+rid+"/artifacts/model/"+f, body)
	}
	ctx := authCtx(b, s)
	for _, tc := range []struct {
		name, body string
		before     int
	}{
		{"logged-model", `{"name":"from-logged-model","source":"models:/` + mid + `","run_id":"` + rid + `","model_id":"` + mid + `"}`, 0},
		{"run", `{"name":"from-run","source":"runs:/` + rid + `/model","run_id":"` + rid + `"}`, 0},
		{"run-after-10000", `{"name":"from-run-after-10000","source":"runs:/` + rid + `/model","run_id":"` + rid + `"}`, 10_000},
	} {
		name := tc.name
		s.MustOK(b, "POST", api+"registered-models/create", `{"name":"from-`+name+`"}`)
		if tc.before > 0 {
			v, err := s.Service.FindModelVersion(ctx, "default", atelier.ModelRef{Name: "from-run", Version: 1})
			if err != nil {
				b.Fatal(err)
			}
			for range tc.before {
				if err := s.Store.CreateModelVersion(ctx, "default", &atelier.ModelVersion{Name: "from-" + name, RunID: rid, Files: v.Files}); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.Run(name, func(b *testing.B) {
			cpu := cpuTime()
			for b.Loop() {
				c.post(b, "model-versions/create", []byte(tc.body))
			}
			reportCPU(b, cpu)
		})
	}
}
