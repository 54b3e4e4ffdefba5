package local_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/compute/local"
)

// TestDescribe: the local target tells runtime.NumCPU(), /proc/meminfo's MemTotal (as awk
// reads it) and the GPUs nvidia-smi -L lists (a stand-in nvidia-smi on the PATH).
func TestDescribe(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("/proc/meminfo is Linux's")
	}
	out, err := exec.Command("awk", "/^MemTotal:/ {print $2}", "/proc/meminfo").Output()
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
	bin := t.TempDir()
	os.WriteFile(filepath.Join(bin, "nvidia-smi"), []byte("#!/bin/sh\n[ \"$1\" = -L ] || exit 2\n"+
		"echo 'GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-aaaa)'\necho 'GPU 1: NVIDIA H100 80GB HBM3 (UUID: GPU-bbbb)'\n"), 0o755)
	t.Setenv("PATH", bin+":"+os.Getenv("PATH"))
	d := &local.Driver{}
	got, err := d.Describe(context.Background(), &atelier.ComputeTarget{Name: "local", Kind: atelier.ComputeLocal}, atelier.ComputeCredentials{})
	if err != nil {
		t.Fatal(err)
	}
	want := atelier.ComputeTotals{Nodes: 1, ReadyNodes: 1, CPUs: runtime.NumCPU(), MemoryBytes: kb << 10, GPUs: 2}
	host, _ := os.Hostname()
	if got.Totals != want || len(got.Nodes) != 1 || got.Nodes[0].Name != host || got.Nodes[0].GPUType != "NVIDIA H100 80GB HBM3" || got.Nodes[0].State != "up" {
		t.Errorf("Describe: %+v %+v, want totals %+v on %s with NVIDIA H100 80GB HBM3", got.Totals, got.Nodes, want, host)
	}
	t.Setenv("PATH", "/usr/bin:/bin")
	if got, _ := d.Describe(context.Background(), nil, atelier.ComputeCredentials{}); got.Totals.GPUs != 0 || got.Nodes[0].GPUType != "" {
		t.Errorf("without nvidia-smi: %+v", got.Nodes[0])
	}
}
