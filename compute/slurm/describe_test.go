package slurm_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/compute/slurm"
	"github.com/atelier-ml/atelier/compute/slurm/slurmtest"
)

// TestDescribe: the cluster's node and partition as slurmtest configures them (one node of 8
// CPUs, 4096 MiB and gpu:2 in the default partition debug, no time limit), idle, then
// mixed (allocated) while a job holds one CPU; an unreachable slurmrestd says so.
func TestDescribe(t *testing.T) {
	c := slurmtest.Start(t)
	ctx := context.Background()
	d := slurm.New("/usr/bin/atelier", t.TempDir(), nil)
	creds := atelier.ComputeCredentials{Token: c.Token("root", time.Hour)}
	before := time.Now().Add(-time.Second)
	got, err := d.Describe(ctx, target(c, ""), creds)
	if err != nil {
		t.Fatalf("Describe: %v", err)
	}
	want := atelier.ComputeTotals{Nodes: 1, ReadyNodes: 1, IdleNodes: 1, CPUs: 8, MemoryBytes: 4096 << 20, GPUs: 2}
	if got.Totals != want {
		t.Errorf("totals %+v, want %+v", got.Totals, want)
	}
	if len(got.Nodes) != 1 {
		t.Fatalf("nodes %+v, want one", got.Nodes)
	}
	n := got.Nodes[0]
	if n.Name != "localhost" || n.State != "idle" || n.CPUs != 8 || n.MemoryBytes != 4096<<20 || n.GPUs != 2 || n.GPUType != "" ||
		strings.Join(n.Partitions, ",") != slurmtest.Partition {
		t.Errorf("node %+v, want localhost idle with 8 CPUs, 4 GiB, 2 GPUs in %s", n, slurmtest.Partition)
	}
	if len(got.Partitions) != 1 || got.Partitions[0] != (atelier.ComputePartition{Name: slurmtest.Partition, State: "UP", Nodes: 1, Default: true}) {
		t.Errorf("partitions %+v, want debug UP with 1 node, the default, no time limit", got.Partitions)
	}
	if got.ObservedAt.Before(before) || !strings.HasPrefix(got.Source, "slurmrestd") {
		t.Errorf("observed at %s by %q", got.ObservedAt, got.Source)
	}

	// A job holding one of the 8 CPUs makes the node mixed: allocated, not idle.
	out, err := c.Command("sbatch", "--parsable", "-p", slurmtest.Partition, "-n", "1", "--chdir", "/tmp", "-o", "/dev/null", "--wrap", "sleep 120").CombinedOutput()
	if err != nil {
		t.Fatalf("sbatch: %v: %s", err, out)
	}
	jobID := strings.TrimSpace(string(out))
	defer c.Command("scancel", jobID).Run()
	deadline := time.Now().Add(30 * time.Second)
	for {
		got, err = d.Describe(ctx, target(c, ""), creds)
		if err != nil {
			t.Fatal(err)
		}
		if got.Totals.AllocatedNodes == 1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got.Totals.AllocatedNodes != 1 || got.Totals.IdleNodes != 0 || got.Totals.ReadyNodes != 1 || got.Nodes[0].State != "mixed" {
		t.Errorf("with a job running: totals %+v, node %+v; want 1 allocated (mixed), 0 idle", got.Totals, got.Nodes[0])
	}

	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	closedURL := "http://" + closed.Addr().String()
	closed.Close()
	tg := target(c, "")
	tg.Slurm.URL = closedURL
	_, err = d.Describe(ctx, tg, creds)
	if msg := atelier.ErrorMessage(err); atelier.ErrorCode(err) != atelier.EUNAVAILABLE || !strings.Contains(msg, closedURL) ||
		!strings.Contains(msg, "refused") || strings.Contains(msg, creds.Token) {
		t.Errorf("Describe of an unreachable slurmrestd: %v, want EUNAVAILABLE naming %s, refused, without the token", err, closedURL)
	}
}
