package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/storetest"
)

// BenchmarkMetricHistoryDownsampled logs a 5,000,000-point series (50 batches of 100,000) and
// reads it downsampled to 1,000 points, warm: the first read happens before the timer starts,
// so each measured read is a re-read, as a chart refreshing makes. "window" reads the middle
// half of the steps; "cold" asks for a different number of points each time, so no answer is
// reused (the cost of the first read after a point is appended).
func BenchmarkMetricHistoryDownsampled(b *testing.B) {
	db := MustOpen(b, filepath.Join(b.TempDir(), "atelier.db"))
	storetest.MustCreateWorkspace(b, db, "default")
	ctx := storetest.Context(b)
	run := storetest.MustCreateRun(b, db, "default", atelier.RunCreate{Experiment: "e"})
	const n, batch = 5_000_000, 100_000
	pts := make([]atelier.MetricPoint, batch)
	for lo := 0; lo < n; lo += batch {
		for i := range pts {
			st := int64(lo + i)
			pts[i] = atelier.MetricPoint{Name: "loss", Step: &st, Timestamp: 1000 + st, Value: atelier.Float(st) / 3}
		}
		if err := db.LogMetrics(ctx, "default", run.ID, &atelier.MetricBatch{Points: pts}); err != nil {
			b.Fatal(err)
		}
	}
	lo, hi := int64(n/4), int64(3*n/4)
	for _, tc := range []struct {
		name string
		q    atelier.HistoryQuery
	}{
		{"whole", atelier.HistoryQuery{MaxPoints: 1000}},
		{"window", atelier.HistoryQuery{MinStep: &lo, MaxStep: &hi, MaxPoints: 1000}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			readDownsampled(b, db, run.ID, tc.q)
			for b.Loop() {
				readDownsampled(b, db, run.ID, tc.q)
			}
		})
	}
	b.Run("cold", func(b *testing.B) {
		q := atelier.HistoryQuery{MaxPoints: 1000}
		for b.Loop() {
			q.MaxPoints++
			readDownsampled(b, db, run.ID, q)
		}
	})
}

func readDownsampled(b *testing.B, db atelier.Store, runID string, q atelier.HistoryQuery) {
	s, err := db.MetricHistory(context.Background(), "default", runID, "loss", q)
	if err != nil {
		b.Fatal(err)
	}
	if !s.Downsampled || len(s.Steps) != q.MaxPoints {
		b.Fatalf("downsampled %v, %d points, want %d", s.Downsampled, len(s.Steps), q.MaxPoints)
	}
}
