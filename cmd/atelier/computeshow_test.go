package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/atelier-ml/atelier"
	sshcompute "github.com/atelier-ml/atelier/compute/ssh"
)

// fakeNvidiaSMI is a directory others may read holding an nvidia-smi that lists two GPUs.
func fakeNvidiaSMI(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	os.Chmod(filepath.Dir(dir), 0o755)
	script := "#!/bin/sh\n[ \"$1\" = -L ] || exit 2\necho 'GPU 0: NVIDIA A100-SXM4-80GB (UUID: GPU-1)'\necho 'GPU 1: NVIDIA A100-SXM4-80GB (UUID: GPU-2)'\n"
	if err := os.WriteFile(filepath.Join(dir, "nvidia-smi"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// machineFacts are this machine's CPUs (nproc) and memory (/proc/meminfo's MemTotal, in bytes).
func machineFacts(t *testing.T) (int, int64) {
	t.Helper()
	out, err := exec.Command("sh", "-c", "nproc; awk '/^MemTotal:/ {print $2}' /proc/meminfo").Output()
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(out))
	cpus, _ := strconv.Atoi(f[0])
	kb, _ := strconv.ParseInt(f[1], 10, 64)
	return cpus, kb << 10
}

// TestSSHDriverDescribe: an ssh target tells the machine's CPUs (nproc), memory (MemTotal) and
// GPUs (nvidia-smi -L, a stand-in on the account's PATH) in one command over the kept
// connection: two looks, one login.
func TestSSHDriverDescribe(t *testing.T) {
	m := startSSHD(t, "SetEnv PATH="+fakeNvidiaSMI(t)+":/usr/local/bin:/usr/bin:/bin")
	d := sshcompute.New("/nonexistent", nil)
	defer d.Close()
	ctx := jobCtx(t)
	cpus, mem := machineFacts(t)
	host, _ := os.Hostname()
	for i := 0; i < 2; i++ {
		got, err := d.Describe(ctx, m.target(m.hostKey), atelier.ComputeCredentials{SSHPrivateKey: m.key})
		if err != nil {
			t.Fatalf("Describe: %v", err)
		}
		want := atelier.ComputeTotals{Nodes: 1, ReadyNodes: 1, CPUs: cpus, MemoryBytes: mem, GPUs: 2}
		if got.Totals != want || len(got.Nodes) != 1 || got.Nodes[0].Name != host || got.Nodes[0].GPUType != "NVIDIA A100-SXM4-80GB" {
			t.Errorf("Describe: %+v %+v, want %+v on %s with NVIDIA A100-SXM4-80GB", got.Totals, got.Nodes, want, host)
		}
	}
	if n := m.logins(); n != 1 {
		t.Errorf("two Describes logged in %d times, want 1 (the kept connection)", n)
	}
}

// TestComputeShowCapacityCLI: `atelier compute show` of a real server prints what the built-in
// local target and an attached ssh target have (nodes, cpus, memory, gpus) and -o json holds
// the capacity; `compute list -o json` holds none.
func TestComputeShowCapacityCLI(t *testing.T) {
	m := startSSHD(t, "SetEnv PATH="+fakeNvidiaSMI(t)+":/usr/local/bin:/usr/bin:/bin")
	bin, err := buildBinary()
	if err != nil {
		t.Fatal(err)
	}
	dataDir, addr := t.TempDir(), freeAddr(t)
	srv := startServer(t, dataDir, addr)
	adminToken, _ := os.ReadFile(filepath.Join(dataDir, adminTokenFile))
	cli := func(args ...string) (string, error) {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), "ATELIER_SERVER="+srv.url, "ATELIER_TOKEN="+strings.TrimSpace(string(adminToken)))
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	cpus, mem := machineFacts(t)
	field := func(out, name string) string {
		for _, line := range strings.Split(out, "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == name {
				return strings.Join(f[1:], " ")
			}
		}
		return ""
	}
	out, err := cli("compute", "show", "local")
	if err != nil {
		t.Fatalf("compute show local: %v\n%s", err, out)
	}
	if field(out, "nodes") != "1" || field(out, "cpus") != strconv.Itoa(runtime.NumCPU()) || field(out, "memory") != humanBytes(mem) {
		t.Errorf("compute show local:\n%s\nwant nodes 1, cpus %d, memory %s", out, runtime.NumCPU(), humanBytes(mem))
	}
	keyFile := filepath.Join(t.TempDir(), "key")
	os.WriteFile(keyFile, []byte(m.key), 0o600)
	if out, err := cli("compute", "attach", "box", "--kind", "ssh", "--host", "127.0.0.1", "--port", strconv.Itoa(m.port), "--user", sshUser,
		"--host-key", m.hostKey, "--key", keyFile); err != nil {
		t.Fatalf("compute attach: %v\n%s", err, out)
	}
	out, err = cli("compute", "show", "box")
	if err != nil {
		t.Fatalf("compute show box: %v\n%s", err, out)
	}
	if field(out, "nodes") != "1" || field(out, "cpus") != strconv.Itoa(cpus) || field(out, "memory") != humanBytes(mem) ||
		field(out, "gpus") != "2 (NVIDIA A100-SXM4-80GB)" || field(out, "capacity") != "" {
		t.Errorf("compute show box:\n%s\nwant nodes 1, cpus %d, memory %s, gpus 2 (NVIDIA A100-SXM4-80GB)", out, cpus, humanBytes(mem))
	}
	out, err = cli("compute", "show", "box", "-o", "json")
	var shown atelier.ComputeTarget
	if err != nil || json.Unmarshal([]byte(out), &shown) != nil || shown.Capacity == nil || shown.Capacity.Totals.GPUs != 2 || shown.Capacity.Totals.CPUs != cpus {
		t.Errorf("compute show box -o json: %v\n%s", err, out)
	}
	if strings.Contains(out, "PRIVATE KEY") {
		t.Error("the show holds the key")
	}
	out, err = cli("compute", "list", "-o", "json")
	if err != nil || strings.Contains(out, "capacity") {
		t.Errorf("compute list -o json: %v, want no capacity:\n%s", err, out)
	}
}

// TestPrintCapacity: a Slurm cluster's show says its nodes as sinfo counts them, its CPUs,
// memory, GPUs with their types, partitions and each node; a target that did not answer says
// why instead.
func TestPrintCapacity(t *testing.T) {
	show := func(ct *atelier.ComputeTarget) string {
		var b bytes.Buffer
		cmd := &cobra.Command{}
		cmd.SetOut(&b)
		if err := printComputeTarget(cmd, &clientConfig{}, ct); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	const gi = int64(1) << 30
	ct := &atelier.ComputeTarget{Name: "hpc", Kind: atelier.ComputeSlurm, Slurm: &atelier.SlurmCompute{URL: "http://slurm:6820"},
		Capacity: &atelier.ComputeCapacity{ObservedAt: time.Now(), Source: "slurmrestd v0.0.38",
			Totals: atelier.ComputeTotals{Nodes: 3, ReadyNodes: 2, IdleNodes: 1, AllocatedNodes: 1, CPUs: 24, MemoryBytes: 12 * gi, GPUs: 6},
			Nodes: []atelier.ComputeNode{{Name: "n1", State: "idle", CPUs: 8, MemoryBytes: 4 * gi, GPUs: 4, GPUType: "a100"},
				{Name: "n2", State: "mixed", CPUs: 8, MemoryBytes: 4 * gi, GPUs: 2, GPUType: "v100"}, {Name: "n3", State: "down+drain", CPUs: 8, MemoryBytes: 4 * gi}},
			Partitions: []atelier.ComputePartition{{Name: "debug", State: "UP", Nodes: 3, Default: true}, {Name: "long", State: "UP", Nodes: 1, MaxTimeMinutes: 2880}}}}
	out := show(ct)
	for _, want := range []string{"nodes                3 (1 idle, 1 allocated, 1 unavailable)", "cpus                 24", "memory               12.0 GiB",
		"gpus                 6 (a100, v100)", "partition            debug (default, UP, 3 nodes, no time limit)", "partition            long (UP, 1 node, max time 48h0m0s)",
		"node                 n1 idle, 8 cpus, 4.0 GiB, 4 gpus", "node                 n3 down+drain, 8 cpus, 4.0 GiB\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("the show does not say %q:\n%s", want, out)
		}
	}
	ct.Capacity.Totals = atelier.ComputeTotals{Nodes: 3, ReadyNodes: 2, CPUs: 24}
	if out := show(ct); !strings.Contains(out, "nodes                3 (2 ready, 1 unavailable)") {
		t.Errorf("a Kubernetes-like count:\n%s", out)
	}
	ct.Capacity, ct.CapacityError = nil, "compute target hpc: cannot reach slurmrestd at http://slurm:6820: connection refused"
	if out := show(ct); !strings.Contains(out, "capacity             unknown: compute target hpc: cannot reach slurmrestd at http://slurm:6820: connection refused") ||
		strings.Contains(out, "cpus ") {
		t.Errorf("the show of a target that did not answer:\n%s", out)
	}
}
