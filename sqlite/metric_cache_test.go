package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/series"
	"github.com/atelier-ml/atelier/sqlite"
	"github.com/atelier-ml/atelier/storetest"
	"github.com/google/go-cmp/cmp"
)

// TestMetricHistoryCache reads a series of several chunks (one logged out of order, as a run
// resumed from a checkpoint logs) downsampled and windowed, and checks every answer, first and
// re-read, against the algorithm the store had before answers were cached: merge every point
// in logging order, then window and downsample. A cache of 6 KB keeps no series of 250 points
// or more whole, so the large-series path (answers cached, windows read by chunk) is covered
// as well as the whole-series one.
func TestMetricHistoryCache(t *testing.T) {
	for _, tc := range []struct {
		name  string
		bytes int64
	}{{"whole", 0}, {"large", 24 * 1000}} {
		t.Run(tc.name, func(t *testing.T) {
			db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "atelier.db"), sqlite.Options{SeriesCacheBytes: tc.bytes})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			storetest.MustCreateWorkspace(t, db, "ws")
			run := storetest.MustCreateRun(t, db, "ws", atelier.RunCreate{Experiment: "e"})
			var logged series.Points // every point, in logging order
			log := func(from, to int64) {
				var pts []atelier.MetricPoint
				for st := from; st < to; st++ {
					v := float64(st%97) - float64(from)/7
					pts = append(pts, atelier.MetricPoint{Name: "m", Step: &st, Timestamp: 1000 + st + from, Value: atelier.Float(v)})
					logged.Append(st, 1000+st+from, v)
				}
				storetest.MustLogMetrics(t, db, "ws", run.ID, &atelier.MetricBatch{Points: pts})
			}
			for lo := int64(0); lo < 1000; lo += 300 {
				log(lo, min(lo+300, 1000))
			}
			log(500, 800) // resumed: steps 500–799 again

			step := func(s int64) *int64 { return &s }
			queries := []atelier.HistoryQuery{
				{MaxPoints: 100},
				{MaxPoints: 7},
				{MinStep: step(200), MaxStep: step(900), MaxPoints: 50},
				{MinStep: step(650), MaxPoints: 10},
				{MaxStep: step(40), MaxPoints: 10},
				{MinStep: step(200), MaxStep: step(209), MaxPoints: 50}, // fewer points than asked: not reduced
				{MinStep: step(100), MaxStep: step(300)},
			}
			check := func(when string) {
				t.Helper()
				want := series.Merge([]series.Points{logged})
				for _, q := range queries {
					for i := range 3 { // first read, then re-reads (from the cache)
						got := storetest.MustHistory(t, db, "ws", run.ID, "m", q)
						if diff := cmp.Diff(series.ToSeries("m", want, q), got); diff != "" {
							t.Fatalf("%s, %+v, read %d (-want +got):\n%s", when, q, i, diff)
						}
						if len(got.Values) > 0 {
							got.Values[0], got.Steps[0] = -1, -1 // a caller's change reaches no other reader
						}
					}
				}
			}
			check("after logging")
			log(1000, 1100) // appended: every cached answer is stale
			check("after appending")
			log(990, 1010) // appended inside the range
			check("after appending again")
		})
	}
}
