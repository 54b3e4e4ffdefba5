// Package kubernetes benchmarks the kubernetes compute driver against a real control plane
// (compute/kubernetes/kubetest: etcd, kube-apiserver, kube-controller-manager, kube-scheduler)
// with kwok nodes, whose pods go Running, then Succeeded, without running anything:
//
//	go test -run '^$' -bench . -benchtime 1x ./bench/kubernetes/
//	BENCH_RUNS=10000 BENCH_NODES=1000 go test -run '^$' -bench . -benchtime 1x -timeout 1h ./bench/kubernetes/
//
// docs/benchmarks.md records the numbers.
package kubernetes

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/compute/kubernetes"
	"github.com/atelier-ml/atelier/compute/kubernetes/kubetest"
)

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

// BenchmarkQueuedRuns launches BENCH_RUNS runs (1,000) through the driver, BENCH_PARALLEL (8)
// at a time as the server's scheduler does, each asking BENCH_GPUS (4) GPUs of BENCH_NODES kwok
// nodes (100) of 4 GPUs, so that one pod fits a node and most runs wait in the scheduler's
// queue, each pod running BENCH_POD_SECONDS (20) once placed; meanwhile and then it asks
// Status of every run once a second (as the server's controller does) until all have Exited,
// and releases them. It reports the
// launch rate, the time until all completed, the requests the driver sent to the apiserver
// (per run, and while the runs waited: Status answers from the watch's cache), and the
// driver's heap.
func BenchmarkQueuedRuns(b *testing.B) {
	runs, nodes := envInt("BENCH_RUNS", 1000), envInt("BENCH_NODES", 100)
	podTime := time.Duration(envInt("BENCH_POD_SECONDS", 20)) * time.Second
	parallel, gpus := envInt("BENCH_PARALLEL", 8), envInt("BENCH_GPUS", 4)
	c := kubetest.Start(b, kubetest.Options{Nodes: nodes, Node: kubetest.NodeCapacity{GPUs: 4}, PodDuration: podTime})
	c.Namespace(b, "ml")
	ctx := context.Background()
	target := &atelier.ComputeTarget{Name: "k8s", Kind: atelier.ComputeKubernetes, Workspace: atelier.DefaultWorkspace,
		Kubernetes: &atelier.KubernetesCompute{Namespace: "ml", Image: "atelier:bench", NodeSelector: map[string]string{"type": "kwok"}}}
	creds := atelier.ComputeCredentials{Kubeconfig: string(c.KubeconfigData)}
	d := kubernetes.New("", func(context.Context, string, string) (*atelier.ComputeTarget, atelier.ComputeCredentials, error) {
		return target, creds, nil
	})
	defer d.Close()
	config, _ := json.Marshal(atelier.RunConfig{Script: "train.py", GPUs: gpus})
	var launchRate, completeSecs, perRun, whileWaiting, heapMB float64
	var maxQueued int
	for i := 0; i < b.N; i++ {
		handles := make([]string, runs)
		t0 := time.Now()
		r0 := d.Requests()
		next := make(chan int)
		errs := make(chan error, parallel)
		var wg sync.WaitGroup
		for w := 0; w < parallel; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := range next {
					id := fmt.Sprintf("bench%d-%05d", i, j)
					h, err := d.Launch(ctx, &atelier.JobLaunch{Run: &atelier.Run{ID: id, Workspace: atelier.DefaultWorkspace, Config: config},
						Server: "http://127.0.0.1:9", Token: "token-" + id, Target: target, Credentials: creds})
					if err != nil {
						errs <- fmt.Errorf("launch %d: %v", j, err)
						return
					}
					handles[j] = h
				}
			}()
		}
		for j := range handles {
			next <- j
		}
		close(next)
		wg.Wait()
		select {
		case err := <-errs:
			b.Fatal(err)
		default:
		}
		launched := time.Since(t0)
		rLaunch := d.Requests()
		launchRate = float64(runs) / launched.Seconds()
		b.Logf("launched %d runs in %v (%.0f runs/s), %d requests", runs, launched.Round(time.Millisecond), launchRate, rLaunch-r0)

		done := make([]bool, runs)
		left := runs
		deadline := time.Now().Add(time.Hour)
		for tick := 0; left > 0; tick++ {
			queued, running := 0, 0
			for j, h := range handles {
				if done[j] {
					continue
				}
				st, err := d.Status(ctx, h)
				if err != nil {
					b.Fatal(err)
				}
				switch {
				case st.Phase == atelier.JobExited && st.ExitCode == 0:
					done[j] = true
					left--
				case st.Phase != atelier.JobRunning:
					b.Fatalf("run %d: %+v", j, st)
				case st.Queued:
					queued++
				default:
					running++
				}
			}
			maxQueued = max(maxQueued, queued)
			if tick%10 == 0 {
				var m runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&m)
				heapMB = max(heapMB, float64(m.HeapInuse)/(1<<20))
				b.Logf("%v: %d queued, %d running, %d completed; %d requests since the launches; heap %.0f MB",
					time.Since(t0).Round(time.Second), queued, running, runs-left, d.Requests()-rLaunch, float64(m.HeapInuse)/(1<<20))
			}
			if time.Now().After(deadline) {
				b.Fatal("the runs did not complete in an hour")
			}
			if left > 0 {
				time.Sleep(time.Second)
			}
		}
		completeSecs = time.Since(t0).Seconds()
		rWait := d.Requests()
		whileWaiting = float64(rWait - rLaunch)
		for _, h := range handles {
			if err := d.Release(ctx, h); err != nil {
				b.Fatal(err)
			}
		}
		perRun = float64(d.Requests()-r0) / float64(runs)
		b.Logf("all %d completed after %.1f s; requests: %d launching, %d while they waited and ran, %d releasing (%.2f per run)",
			runs, completeSecs, rLaunch-r0, rWait-rLaunch, d.Requests()-rWait, perRun)
	}
	b.ReportMetric(launchRate, "launches/s")
	b.ReportMetric(completeSecs, "s-to-all-completed")
	b.ReportMetric(perRun, "requests/run")
	b.ReportMetric(whileWaiting, "requests-while-waiting")
	b.ReportMetric(float64(maxQueued), "max-queued")
	b.ReportMetric(heapMB, "heap-MB")
}
