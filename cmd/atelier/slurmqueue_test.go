package main

import (
	"archive/zip"
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/compute/slurm/slurmtest"
)

// BenchmarkSlurmQueueThroughTheServer: 1,000 runs submitted over REST (8 clients) to a slurm
// target of the real server binary, on the test cluster (8 CPUs: 8 jobs run, the rest wait in
// Slurm's queue); it reports the REST submit rate, the rate at which the server's scheduler
// put them into Slurm (submit start → 1,000 jobs in squeue), and the server process's CPU each
// second while they wait (utime+stime from /proc, in % of one core).
//
//	go test -run '^$' -bench SlurmQueueThroughTheServer -benchtime 1x ./cmd/atelier/
func BenchmarkSlurmQueueThroughTheServer(b *testing.B) {
	const runs, clients, watchSeconds = 1000, 8, 30
	c := slurmtest.Start(b)
	ctx := context.Background()
	dataDir, err := os.MkdirTemp("", "atelier-bench-slurmq-")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(dataDir)
	for i := 0; i < b.N; i++ {
		args := []string{"--log-level", "warn"}
		if a := os.Getenv("BENCH_DEBUG_ADDR"); a != "" {
			args = append(args, "--debug-addr", a) // e.g. to take a CPU profile while the runs wait
		}
		srv := startServer(b, dataDir+"/"+strconv.Itoa(i), freeAddr(b), args...)
		name := "hpc" + strconv.Itoa(i)
		if _, err := srv.client.CreateComputeTarget(ctx, atelier.DefaultWorkspace, atelier.ComputeTargetSpec{Name: name, Kind: atelier.ComputeSlurm,
			MaxConcurrentRuns: runs, Slurm: &atelier.SlurmCompute{URL: c.URL, Partition: slurmtest.Partition},
			Credentials: atelier.ComputeCredentials{Token: c.Token("root", time.Hour)}}); err != nil {
			b.Fatal(err)
		}
		var buf bytes.Buffer
		zw := zip.NewWriter(&buf)
		w, _ := zw.Create("train.py")
		w.Write([]byte("import time\ntime.sleep(3600)\n"))
		zw.Close()
		snap, err := srv.client.UploadSnapshotZip(ctx, atelier.DefaultWorkspace, &buf)
		if err != nil {
			b.Fatal(err)
		}
		var next atomic.Int64
		var wg sync.WaitGroup
		errs := make(chan error, clients)
		t0 := time.Now()
		for range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for next.Add(1) <= runs {
					if _, err := srv.client.SubmitRun(ctx, atelier.DefaultWorkspace, atelier.RunSubmit{Experiment: "queue", SnapshotID: snap.ID,
						Config: atelier.RunConfig{Script: "train.py", Compute: name}}); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		submitted := time.Since(t0)
		select {
		case err := <-errs:
			b.Fatal(err)
		default:
		}
		inSlurm := 0
		for deadline := time.Now().Add(10 * time.Minute); inSlurm < runs; time.Sleep(100 * time.Millisecond) {
			if time.Now().After(deadline) {
				b.Fatalf("only %d of %d jobs reached Slurm's queue", inSlurm, runs)
			}
			out, _ := c.Jobs()
			inSlurm = strings.Count(out, "\n")
		}
		launched := time.Since(t0)
		var cpu []float64
		prev, at := cpuTicks(b, srv.cmd.Process.Pid), time.Now()
		for range watchSeconds {
			time.Sleep(time.Second)
			now, t := cpuTicks(b, srv.cmd.Process.Pid), time.Now()
			cpu = append(cpu, float64(now-prev)/100/t.Sub(at).Seconds()*100)
			prev, at = now, t
		}
		var sum, peak float64
		for _, v := range cpu {
			sum += v
			peak = max(peak, v)
		}
		b.ReportMetric(runs/submitted.Seconds(), "submits/s")
		b.ReportMetric(runs/launched.Seconds(), "launches/s")
		b.ReportMetric(sum/float64(len(cpu)), "server-cpu-%")
		b.Logf("%d runs: REST submits %.0f/s (%s), all in Slurm's queue after %s (%.0f/s); server CPU while they wait, %% of a core each second: mean %.1f, max %.1f: %s",
			runs, runs/submitted.Seconds(), submitted.Round(time.Millisecond), launched.Round(time.Millisecond), runs/launched.Seconds(), sum/float64(len(cpu)), peak, fmtSeries(cpu))
		c.Command("scancel", "--partition", slurmtest.Partition).Run()
		srv.cmd.Process.Kill()
		srv.cmd.Wait()
	}
}

// cpuTicks is a process's user and system time in clock ticks (1/100 s on Linux).
func cpuTicks(tb testing.TB, pid int) int64 {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		tb.Fatal(err)
	}
	f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return u + s
}

func fmtSeries(v []float64) string {
	parts := make([]string, len(v))
	for i, x := range v {
		parts[i] = fmt.Sprintf("%.0f", x)
	}
	return strings.Join(parts, " ")
}
