package serving_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/atelier-ml/atelier/serving"
)

func TestProcs(t *testing.T) {
	for _, c := range []struct{ cpus, replicas, want int }{
		{1, 0, 1}, {1, 3, 1}, {2, 0, 2}, {2, 1, 1}, {2, 4, 1}, {4, 1, 3}, {4, 2, 2}, {4, 9, 2}, {16, 3, 13}, {16, 40, 8},
	} {
		if got := serving.Procs(c.cpus, c.replicas); got != c.want {
			t.Errorf("Procs(%d cores, %d replicas) = %d, want %d", c.cpus, c.replicas, got, c.want)
		}
	}
}

// TestCPUShareCountsAPoolsReplicas: the replicas a pool started count from ready to exit (a
// replica that failed to start does not), and the server's share follows them.
func TestCPUShareCountsAPoolsReplicas(t *testing.T) {
	start, _ := starter(t, sleepyScore)
	var mu sync.Mutex
	var set []int
	share := serving.NewCPUShare(4, func(procs, replicas int) { mu.Lock(); set = append(set, procs); mu.Unlock() })
	failing := share.Start(func(context.Context, int) (serving.Replica, error) { return nil, errors.New("no") })
	if _, err := failing(context.Background(), 0); err == nil {
		t.Fatal("a failing start succeeded")
	}
	pool := serving.NewPool(serving.Config{Replicas: 2, MaxConcurrent: 1, MaxWait: time.Minute, Timeout: time.Minute},
		share.Start(start), nil, nil)
	if err := pool.WaitReady(context.Background(), 2); err != nil {
		t.Fatal(err)
	}
	if r, p := share.Replicas(); r != 2 || p != 2 {
		t.Errorf("with 2 replicas ready the share counts %d replicas and gives the server %d cores, want 2 and 2", r, p)
	}
	pool.Close(context.Background())
	waitFor(t, "the stopped replicas to leave the count", func() bool { r, _ := share.Replicas(); return r == 0 })
	mu.Lock()
	defer mu.Unlock()
	if want := []int{3, 2, 3, 4}; !slices.Equal(set, want) {
		t.Errorf("the server's share went %v, want %v", set, want)
	}
}
