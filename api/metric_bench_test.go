package api_test

import (
	"context"
	"testing"

	"github.com/atelier-ml/atelier"
)

// BenchmarkMetricHistoryDownsampledHTTP reads a 5,000,000-point series downsampled to 1,000
// points through the REST API (GET .../metrics/<name>?max_points=1000) with the client, warm:
// the first read is made before the clock starts.
func BenchmarkMetricHistoryDownsampledHTTP(b *testing.B) {
	s := MustStack(b)
	ctx := context.Background()
	run := MustRun(b, s.Client, atelier.RunCreate{})
	const n, batch = 5_000_000, 100_000
	pts := make([]atelier.MetricPoint, batch)
	for lo := 0; lo < n; lo += batch {
		for i := range pts {
			st := int64(lo + i)
			pts[i] = atelier.MetricPoint{Name: "loss", Step: &st, Timestamp: 1000 + st, Value: atelier.Float(st) / 3}
		}
		if err := s.Client.LogMetrics(ctx, "default", run.ID, &atelier.MetricBatch{Points: pts}); err != nil {
			b.Fatal(err)
		}
	}
	read := func() {
		ser, err := s.Client.MetricHistory(ctx, "default", run.ID, "loss", atelier.HistoryQuery{MaxPoints: 1000})
		if err != nil {
			b.Fatal(err)
		}
		if !ser.Downsampled || len(ser.Steps) != 1000 || ser.Total != n {
			b.Fatalf("downsampled %v, %d points of %d", ser.Downsampled, len(ser.Steps), ser.Total)
		}
	}
	read()
	for b.Loop() {
		read()
	}
}
