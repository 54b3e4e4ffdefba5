package serving_test

import (
	"context"
	"net/http/httptest"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/atelier-ml/atelier/serving"
)

// BenchmarkPoolAhead measures requests through a pool of one replica of a no-op score.py at
// concurrency 8, with requests sent ahead and without (bodies of unknown length, which are not
// kept: a request waits in the pool's queue until the replica's current one is answered).
//
//	go test -run '^$' -bench PoolAhead -benchtime 3s ./serving/
//
// gateway-cpu-ns/op is the CPU (user and system) of the test's process a request: the pool's
// side of it, the replica's Python excluded.
func BenchmarkPoolAhead(b *testing.B) {
	for _, tc := range []struct {
		name  string
		ahead bool
	}{{"ahead", true}, {"queued", false}} {
		b.Run(tc.name, func(b *testing.B) {
			start, _ := starter(b, "def init():\n    pass\ndef run(raw):\n    return {'ok': True}\n")
			pool := serving.NewPool(serving.Config{Replicas: 1, MaxConcurrent: 1, MaxWait: time.Minute, ColdStart: time.Minute, Timeout: time.Minute, Refresh: time.Minute}, start, nil, nil)
			defer pool.Close(context.Background())
			if err := pool.WaitReady(context.Background(), 1); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			cpu0 := cpuTime()
			var wg sync.WaitGroup
			var mu sync.Mutex
			n := 0
			for range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						mu.Lock()
						if n >= b.N {
							mu.Unlock()
							return
						}
						n++
						mu.Unlock()
						rec := httptest.NewRecorder()
						req := httptest.NewRequest("POST", "/score", strings.NewReader(`{}`))
						if !tc.ahead {
							req.ContentLength = -1 // a body of unknown length is not kept, so never sent ahead
						}
						res := pool.Serve(rec, req, "/score")
						if res.Err != nil {
							b.Error(res.Err)
							return
						}
					}
				}()
			}
			wg.Wait()
			// The gateway's side alone: this process's CPU (the replica is another process).
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "gateway-cpu-ns/op")
		})
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
