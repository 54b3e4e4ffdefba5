package mlflow_test

import (
	"io"
	"net/http"
	"runtime"
	"testing"

	"github.com/atelier-ml/atelier"
)

// BenchmarkMetricHistory reads a 1,000,000-point series through get-history: whole (every
// point, as MLflow answers without max_results) and as the mlflow client pages it (25,000 a
// page). peak-heap-MB is the heap in use at the end of a read, sampled as the response streams.
func BenchmarkMetricHistory(b *testing.B) {
	s := MustStack(b)
	ctx := authCtx(b, s)
	run, err := s.Service.CreateRun(ctx, atelier.DefaultWorkspace, atelier.RunCreate{Experiment: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	const n, batch = 1_000_000, 100_000
	for lo := 0; lo < n; lo += batch {
		pts := make([]atelier.MetricPoint, batch)
		for i := range pts {
			st := int64(lo + i)
			pts[i] = atelier.MetricPoint{Name: "loss", Step: &st, Timestamp: 1000 + st, Value: atelier.Float(st) / 3}
		}
		if err := s.Store.LogMetrics(ctx, atelier.DefaultWorkspace, run.ID, &atelier.MetricBatch{Points: pts}); err != nil {
			b.Fatal(err)
		}
	}
	read := func(b *testing.B, query string) {
		req, _ := http.NewRequest("GET", s.URL+"/api/2.0/mlflow/metrics/get-history?run_id="+run.ID+"&metric_key=loss"+query, nil)
		req.Header.Set("Authorization", "Bearer "+s.Token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		var peak uint64
		buf := make([]byte, 1<<20)
		for k := 0; ; k++ {
			_, err := resp.Body.Read(buf)
			if k%64 == 0 {
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				peak = max(peak, ms.HeapInuse)
			}
			if err == io.EOF {
				break
			} else if err != nil {
				b.Fatal(err)
			}
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("status %d", resp.StatusCode)
		}
		b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MB")
	}
	b.Run("whole", func(b *testing.B) {
		for b.Loop() {
			read(b, "")
		}
	})
	b.Run("page-25000", func(b *testing.B) {
		for b.Loop() {
			read(b, "&max_results=25000&page_token=500000")
		}
	})
}
