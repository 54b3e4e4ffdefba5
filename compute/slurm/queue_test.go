package slurm_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/compute/slurm"
	"github.com/atelier-ml/atelier/compute/slurm/slurmtest"
)

// countingTransport counts the reads of jobs sent to slurmrestd: of all, and of one.
type countingTransport struct {
	jobs, job atomic.Int64
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	switch {
	case r.Method != http.MethodGet:
	case strings.HasSuffix(r.URL.Path, "/jobs"):
		c.jobs.Add(1)
	case strings.Contains(r.URL.Path, "/job/"):
		c.job.Add(1)
	}
	return http.DefaultTransport.RoundTrip(r)
}

// queueDriver is a driver of the cluster's target whose runners sleep, counting its requests.
func queueDriver(tb testing.TB, c *slurmtest.Cluster) (*slurm.Driver, *countingTransport, func(id string) *atelier.JobLaunch) {
	tg := target(c, slurmtest.Partition)
	creds := atelier.ComputeCredentials{Token: c.Token("root", time.Hour)}
	work, err := os.MkdirTemp("", "atelier-slurm-queue-")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(work) })
	os.Chmod(work, 0o755)
	runner := work + "/runner"
	if err := os.WriteFile(runner, []byte("#!/bin/sh\nexec sleep 600\n"), 0o755); err != nil {
		tb.Fatal(err)
	}
	counts := &countingTransport{}
	d := slurm.New(runner, work, func(context.Context, string, string) (*atelier.ComputeTarget, atelier.ComputeCredentials, error) {
		return tg, creds, nil
	})
	d.HTTP = &http.Client{Transport: counts, Timeout: time.Minute}
	launch := func(id string) *atelier.JobLaunch {
		b, _ := json.Marshal(atelier.RunConfig{})
		return &atelier.JobLaunch{Run: &atelier.Run{ID: id, Workspace: atelier.DefaultWorkspace, Config: b}, Server: "http://127.0.0.1:9",
			Token: "runner-token", Target: tg, Credentials: creds}
	}
	tb.Cleanup(func() { c.Command("scancel", "--user", "root").Run() })
	return d, counts, launch
}

// TestStatusReadsTheQueueOnce: the status of every job on a cluster comes from one read of its
// jobs (while it is fresh), not a request a job; a job not among them is read alone.
func TestStatusReadsTheQueueOnce(t *testing.T) {
	c := slurmtest.Start(t)
	d, counts, launch := queueDriver(t, c)
	ctx := context.Background()
	var handles []string
	for i := range 12 { // 8 run on the node's 8 CPUs, 4 wait
		h, err := d.Launch(ctx, launch(fmt.Sprintf("q%d", i)))
		if err != nil {
			t.Fatal(err)
		}
		handles = append(handles, h)
	}
	now := time.Now()
	d.Now = func() time.Time { return now } // the read stays fresh
	queued := 0
	for _, h := range handles {
		st, err := d.Status(ctx, h)
		if err != nil || st.Phase != atelier.JobRunning {
			t.Fatalf("a sleeping job: %+v, %v", st, err)
		}
		if st.Queued {
			queued++
		}
	}
	if queued == 0 {
		t.Errorf("no job of 12 waits on an 8-CPU node")
	}
	if n, m := counts.jobs.Load(), counts.job.Load(); n != 1 || m != 0 {
		t.Errorf("12 statuses sent %d reads of the jobs and %d of single jobs; want 1 and 0", n, m)
	}
	// Later, a job launched since the last read is read alone until the next read.
	h, err := d.Launch(ctx, launch("late"))
	if err != nil {
		t.Fatal(err)
	}
	if st, err := d.Status(ctx, h); err != nil || st.Phase != atelier.JobRunning {
		t.Fatalf("a job launched after the read: %+v, %v", st, err)
	}
	if n, m := counts.jobs.Load(), counts.job.Load(); n != 1 || m != 1 {
		t.Errorf("after a late job: %d reads of the jobs and %d of single jobs; want 1 and 1", n, m)
	}
	now = now.Add(slurm.JobsEvery)
	if _, err := d.Status(ctx, h); err != nil {
		t.Fatal(err)
	}
	if n := counts.jobs.Load(); n != 2 {
		t.Errorf("a read older than JobsEvery was not renewed: %d reads of the jobs", n)
	}
}

// BenchmarkSlurmQueue1000 launches 1,000 jobs on the test cluster (8 run, the rest wait: their
// runners sleep) and reports the launch rate, then what the controller's watch costs while
// they wait: one pass of Status over the 1,000 handles (its time and the requests it sent to
// slurmrestd). docs/benchmarks.md records it:
//
//	go test -run '^$' -bench SlurmQueue1000 -benchtime 1x ./compute/slurm/
func BenchmarkSlurmQueue1000(b *testing.B) {
	c := slurmtest.Start(b)
	d, counts, launch := queueDriver(b, c)
	ctx := context.Background()
	const n = 1000
	handles := make([]string, 0, n)
	t0 := time.Now()
	for i := range n {
		h, err := d.Launch(ctx, launch(fmt.Sprintf("b%d", i)))
		if err != nil {
			b.Fatal(err)
		}
		handles = append(handles, h)
	}
	launched := time.Since(t0)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		before := counts.jobs.Load() + counts.job.Load()
		t1 := time.Now()
		for _, h := range handles {
			if _, err := d.Status(ctx, h); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(time.Since(t1).Milliseconds()), "ms/pass")
		b.ReportMetric(float64(counts.jobs.Load()+counts.job.Load()-before), "requests/pass")
		time.Sleep(slurm.JobsEvery) // as the controller's ticks are
	}
	b.ReportMetric(n/launched.Seconds(), "launches/s")
	b.Logf("%d jobs launched in %s", n, launched.Round(time.Millisecond))
}
