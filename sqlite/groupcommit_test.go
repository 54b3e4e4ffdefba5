package sqlite_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/storetest"
)

// busyWriter keeps the store's writer busy with a large batch, so that writes issued meanwhile
// queue up and are committed together in one group.
func busyWriter(t *testing.T, s atelier.Store, runID string) (wait func()) {
	t.Helper()
	ps := make([]atelier.MetricPoint, atelier.MaxPointsPerBatch)
	for i := range ps {
		ps[i] = atelier.MetricPoint{Name: "busy", Step: ptr(int64(i)), Value: atelier.Float(i)}
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := s.LogMetrics(storetest.Context(t), "ws", runID, &atelier.MetricBatch{Points: ps}); err != nil {
			t.Errorf("busy LogMetrics: %v", err)
		}
	})
	return wg.Wait
}

func ptr[T any](v T) *T { return &v }

// TestGroupCommitIsolatesFailures runs 50 concurrent writers, one of which fails after writing
// part of its call; the others must all be committed, and nothing of the failing one.
func TestGroupCommitIsolatesFailures(t *testing.T) {
	db := MustOpen(t, filepath.Join(t.TempDir(), "atelier.db"))
	ctx := storetest.Context(t)
	storetest.MustCreateWorkspace(t, db, "ws")
	busy := storetest.MustCreateRun(t, db, "ws", atelier.RunCreate{Experiment: "busy"})
	target := storetest.MustCreateRun(t, db, "ws", atelier.RunCreate{Experiment: "e", Params: map[string]string{"fixed": "1"}})

	for round := range 3 {
		t.Run(fmt.Sprint("round", round), func(t *testing.T) {
			const writers = 50
			const failing = 17
			start := make(chan struct{})
			errs := make([]error, writers)
			runs := make([]*atelier.Run, writers)
			var wg sync.WaitGroup
			for i := range writers {
				wg.Go(func() {
					<-start
					key := fmt.Sprintf("r%d_w%02d", round, i)
					switch {
					case i == failing:
						// Many new keys and one conflict: whatever order the keys are written in,
						// the call fails, and its new keys must be rolled back with it.
						params := map[string]string{"fixed": "2"}
						for k := range 40 {
							params[fmt.Sprintf("%s_bad%02d", key, k)] = "x"
						}
						errs[i] = db.LogParams(ctx, "ws", target.ID, params)
					case i%3 == 0:
						runs[i], errs[i] = db.CreateRun(ctx, "ws", atelier.RunCreate{Experiment: "group", Name: key,
							Params: map[string]string{"k": key}})
					case i%3 == 1:
						errs[i] = db.LogParams(ctx, "ws", target.ID, map[string]string{key: "v"})
					default:
						errs[i] = db.LogMetrics(ctx, "ws", target.ID, &atelier.MetricBatch{Points: []atelier.MetricPoint{
							{Name: key, Step: ptr(int64(0)), Value: atelier.Float(i)}}})
					}
				})
			}
			wait := busyWriter(t, db, busy.ID)
			close(start)
			wg.Wait()
			wait()

			run := storetest.MustFindRun(t, db, "ws", target.ID)
			for i := range writers {
				key := fmt.Sprintf("r%d_w%02d", round, i)
				if i == failing {
					if atelier.ErrorCode(errs[i]) != atelier.ECONFLICT {
						t.Errorf("failing writer: err %v, want a conflict", errs[i])
					}
					continue
				}
				if errs[i] != nil {
					t.Errorf("writer %d failed: %v", i, errs[i])
					continue
				}
				switch i % 3 {
				case 0:
					if got := storetest.MustFindRun(t, db, "ws", runs[i].ID); got.Params["k"] != key {
						t.Errorf("run of writer %d: params %v", i, got.Params)
					}
				case 1:
					if run.Params[key] != "v" {
						t.Errorf("param of writer %d missing", i)
					}
				default:
					if v, ok := run.Metrics[key]; !ok || v != atelier.Float(i) {
						t.Errorf("metric of writer %d = %v (present %v)", i, v, ok)
					}
				}
			}
			for k, v := range run.Params {
				if len(k) > 4 && k[len(k)-5:len(k)-2] == "bad" {
					t.Errorf("param %s=%s of the failed call was committed", k, v)
				}
			}
			if run.Params["fixed"] != "1" {
				t.Errorf("param fixed = %q, want 1", run.Params["fixed"])
			}
		})
	}
}

// TestGroupCommitCanceledWriter checks that a writer whose context ends while its write waits
// for the writer gets its context's error, and that the writes grouped with it commit.
func TestGroupCommitCanceledWriter(t *testing.T) {
	db := MustOpen(t, filepath.Join(t.TempDir(), "atelier.db"))
	base := storetest.Context(t)
	storetest.MustCreateWorkspace(t, db, "ws")
	busy := storetest.MustCreateRun(t, db, "ws", atelier.RunCreate{Experiment: "busy"})
	target := storetest.MustCreateRun(t, db, "ws", atelier.RunCreate{Experiment: "e"})

	canceled, cancel := context.WithCancel(base)
	cancel()
	const writers = 20
	errs := make([]error, writers)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range writers {
		wg.Go(func() {
			<-start
			ctx := base
			if i%5 == 0 {
				ctx = canceled
			}
			errs[i] = db.SetTags(ctx, "ws", target.ID, map[string]string{fmt.Sprintf("t%02d", i): "v"})
		})
	}
	wait := busyWriter(t, db, busy.ID)
	close(start)
	wg.Wait()
	wait()
	tags := storetest.MustFindRun(t, db, "ws", target.ID).Tags
	for i := range writers {
		key := fmt.Sprintf("t%02d", i)
		if i%5 == 0 {
			if errs[i] == nil {
				t.Errorf("writer %d with a canceled context succeeded", i)
			}
			if _, ok := tags[key]; ok {
				t.Errorf("tag %s of a canceled writer was stored", key)
			}
			continue
		}
		if errs[i] != nil || tags[key] != "v" {
			t.Errorf("writer %d: err %v, tag %q", i, errs[i], tags[key])
		}
	}
}
