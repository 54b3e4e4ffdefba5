package local

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/atelier-ml/atelier"
)

var _ atelier.ComputeDescriber = (*Driver)(nil)

// Describe tells this server's machine: the CPUs this process may use (runtime.NumCPU), the
// memory /proc/meminfo says (MemTotal) and the GPUs nvidia-smi -L lists when it is installed.
func (d *Driver) Describe(ctx context.Context, _ *atelier.ComputeTarget, _ atelier.ComputeCredentials) (*atelier.ComputeCapacity, error) {
	return DescribeMachine(ctx), nil
}

// DescribeMachine is what a local target tells of this machine.
func DescribeMachine(ctx context.Context) *atelier.ComputeCapacity {
	host, _ := os.Hostname()
	n := atelier.ComputeNode{Name: host, State: "up", CPUs: runtime.NumCPU(), MemoryBytes: memTotal()}
	n.GPUs, n.GPUType = nvidiaGPUs(ctx)
	return &atelier.ComputeCapacity{ObservedAt: time.Now().UTC(), Source: "this server's machine",
		Totals: atelier.ComputeTotals{Nodes: 1, ReadyNodes: 1, CPUs: n.CPUs, MemoryBytes: n.MemoryBytes, GPUs: n.GPUs},
		Nodes:  []atelier.ComputeNode{n}}
}

// memTotal is /proc/meminfo's MemTotal in bytes (0 where there is none).
func memTotal() int64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) >= 2 && f[0] == "MemTotal:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

// nvidiaGPUs counts the GPUs nvidia-smi -L lists ("GPU 0: NVIDIA A100-SXM4-80GB (UUID: ...)")
// and names their models; none without nvidia-smi.
func nvidiaGPUs(ctx context.Context) (int, string) {
	smi, err := exec.LookPath("nvidia-smi")
	if err != nil {
		return 0, ""
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, smi, "-L").Output()
	if err != nil {
		return 0, ""
	}
	count, kinds := 0, []string{}
	for _, line := range strings.Split(string(out), "\n") {
		if !strings.HasPrefix(line, "GPU ") {
			continue
		}
		count++
		if _, name, ok := strings.Cut(line, ": "); ok {
			name, _, _ = strings.Cut(name, " (UUID")
			if name = strings.TrimSpace(name); name != "" && !slices.Contains(kinds, name) {
				kinds = append(kinds, name)
			}
		}
	}
	return count, strings.Join(kinds, ",")
}
