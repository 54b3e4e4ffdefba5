package sqlite_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/sqlite"
	"github.com/atelier-ml/atelier/storetest"
)

// runSearchDB is a database of ATELIER_BENCH_RUNS runs (300,000 by default) in one experiment,
// as MLflow clients make them: started, named run-<i>, params alpha (5 values) and seed, tag
// group (7 values), metric acc. It is built once into the temporary directory and reused by
// later benchmark runs (building takes minutes); delete the file to rebuild it.
func runSearchDB(b *testing.B) *sqlite.DB {
	n := 300000
	if s := os.Getenv("ATELIER_BENCH_RUNS"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil {
			b.Fatalf("ATELIER_BENCH_RUNS=%q: %v", s, err)
		}
	}
	path := filepath.Join(os.TempDir(), fmt.Sprintf("atelier-bench-runsearch-%d.db", n))
	if _, err := os.Stat(path); err == nil {
		db, err := sqlite.Open(context.Background(), path, sqlite.Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { db.Close() })
		return db
	}
	tmp := path + ".building"
	os.Remove(tmp)
	db := MustOpen(b, tmp)
	storetest.MustCreateWorkspace(b, db, "default")
	ctx := storetest.Context(b)
	if _, err := db.CreateExperiment(ctx, "default", atelier.ExperimentCreate{Name: "bench"}); err != nil {
		b.Fatal(err)
	}
	alphas := []string{"0.001", "0.01", "0.1", "0.5", "1.0"}
	var wg sync.WaitGroup
	work := make(chan int)
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				run, err := db.CreateRun(ctx, "default", atelier.RunCreate{Experiment: "bench", Name: fmt.Sprintf("run-%d", i),
					Status: atelier.StatusRunning, Params: map[string]string{"alpha": alphas[i%5], "seed": strconv.Itoa(i)},
					Tags: map[string]string{"group": fmt.Sprintf("g%d", i%7)}})
				if err == nil {
					step := int64(0)
					err = db.LogMetrics(ctx, "default", run.ID, &atelier.MetricBatch{Points: []atelier.MetricPoint{
						{Name: "acc", Step: &step, Timestamp: 1, Value: atelier.Float(rand.Float64())}}})
				}
				if err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	if b.Failed() {
		b.FailNow()
	}
	db.Close()
	if err := os.Rename(tmp, path); err != nil {
		b.Fatal(err)
	}
	os.Remove(tmp + "-wal")
	os.Remove(tmp + "-shm")
	return runSearchDB(b)
}

// BenchmarkRunSearchScale is issue 19's run search goal: the first page of 100 of a search as
// the MLflow API asks for it (one experiment, active runs, ties by start time descending then
// id), over 300,000 runs.
func BenchmarkRunSearchScale(b *testing.B) {
	db := runSearchDB(b)
	ctx := context.Background()
	for _, tc := range []struct {
		name, filter, order string
		want                int
	}{
		{"attribute-name", "name = 'run-123'", "", 1},
		{"param", "params.alpha = '0.1'", "", 100},
		{"tag", "tags.group = 'g3'", "", 100},
		{"no-match", "params.alpha = 'none'", "", 0},
		{"order-metric", "", "metrics.acc desc", 100},
		{"order-metric-asc", "", "metrics.acc asc", 100},
		{"param-order-metric", "params.alpha = '0.1'", "metrics.acc desc", 100},
		{"tag-like", "tags.group like 'g3%'", "", 100},
		{"param-numeric-range", "params.seed = '17' or params.seed = '18'", "", 2},
		{"no-filter", "", "", 100},
		{"status-none", "status = 'Failed'", "", 0},
		{"started-range", "started_at > 0", "", 100},
	} {
		b.Run(tc.name, func(b *testing.B) {
			order := "started_at desc, id"
			if tc.order != "" {
				order = tc.order + ", " + order
			}
			q := atelier.RunQuery{Experiment: "bench", Lifecycle: atelier.LifecycleActive, Filter: tc.filter,
				OrderBy: order, Limit: 100, Summaries: true}
			for b.Loop() {
				page, err := db.ListRuns(ctx, "default", q)
				if err != nil {
					b.Fatal(err)
				}
				if len(page.Runs) != tc.want {
					b.Fatalf("%d runs, want %d", len(page.Runs), tc.want)
				}
			}
		})
	}
}
