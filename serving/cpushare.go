package serving

import (
	"context"
	"sync"
)

// CPUShare leaves cores of the server's machine to the replicas running on it (the local and
// podman targets). A replica is a Python process scoring one request at a time on one core;
// the server's Go scheduler, with as many threads running as the machine has cores, wakes a
// second thread for each goroutine made runnable (the gateway's requests and answers, a few a
// request) and takes the replica's core from it. On a small machine that costs a quarter of
// the throughput at concurrency 8 (docs/benchmarks.md). So while replicas run here the server
// runs its goroutines on fewer threads (GOMAXPROCS): the machine's cores less one a replica,
// never fewer than half of them (the gateway's own work grows with the replicas' requests),
// nor than one.
type CPUShare struct {
	cpus int
	set  func(procs, replicas int)

	mu       sync.Mutex
	replicas int
	procs    int
}

// NewCPUShare shares cpus cores (the server's GOMAXPROCS at its start) between the server and
// the replicas; set applies the server's share (runtime.GOMAXPROCS) with the replicas counted,
// and is called only when the share changes.
func NewCPUShare(cpus int, set func(procs, replicas int)) *CPUShare {
	return &CPUShare{cpus: cpus, set: set, procs: cpus}
}

// Procs is the server's share of cpus cores while n replicas run on the machine.
func Procs(cpus, replicas int) int {
	return max(1, cpus/2, cpus-replicas)
}

// Replicas is how many replicas the share counts, and Server the server's share.
func (c *CPUShare) Replicas() (replicas, server int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.replicas, c.procs
}

func (c *CPUShare) add(d int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.replicas += d
	if p := Procs(c.cpus, c.replicas); p != c.procs {
		c.procs = p
		c.set(p, c.replicas)
	}
}

// Start counts the replicas start starts, from when they are ready until they exit. A nil
// share counts nothing.
func (c *CPUShare) Start(start StartFunc) StartFunc {
	if c == nil {
		return start
	}
	return func(ctx context.Context, n int) (Replica, error) {
		r, err := start(ctx, n)
		if err != nil {
			return nil, err
		}
		c.add(1)
		go func() {
			<-r.Done()
			c.add(-1)
		}()
		return r, nil
	}
}
