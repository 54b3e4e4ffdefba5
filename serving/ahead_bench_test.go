package serving_test

import (
	"context"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/atelier-ml/atelier/serving"
)

// BenchmarkPoolAhead measures requests through a pool of one replica of a no-op score.py at
// concurrency 8, with requests sent ahead and without (bodies of unknown length, which are not
// kept: a request waits in the pool's queue until the replica's current one is answered).
//
//	go test -run '^$' -bench PoolAhead -benchtime 3s ./serving/
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
		})
	}
}
