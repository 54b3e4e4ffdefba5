package ssh

import (
	"bufio"
	"bytes"
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/atelier-ml/atelier"
)

var _ atelier.ComputeDescriber = (*Driver)(nil)

// describeScript says what the machine has, one fact a line: its name, CPUs, memory and
// (when nvidia-smi is there) its GPUs.
const describeScript = `echo "host $(uname -n)"
echo "cpus $(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN)"
grep '^MemTotal:' /proc/meminfo 2>/dev/null
if command -v nvidia-smi >/dev/null 2>&1; then nvidia-smi -L 2>/dev/null; fi
exit 0
`

// Describe runs one command on the machine over the kept connection (nproc, /proc/meminfo's
// MemTotal, nvidia-smi -L when the machine has it) and tells the one node it is.
func (d *Driver) Describe(ctx context.Context, t *atelier.ComputeTarget, creds atelier.ComputeCredentials) (*atelier.ComputeCapacity, error) {
	if t.SSH == nil {
		return nil, atelier.Errorf(atelier.EINVALID, "compute target %s has no ssh configuration", t.Name)
	}
	e := newEndpoint(t, creds, "")
	res, err := d.run(ctx, e, describeScript, nil)
	if err != nil {
		return nil, err
	}
	node, err := parseDescribe(res.stdout)
	if err != nil {
		return nil, atelier.Errorf(atelier.EUNAVAILABLE, "compute target %s: %s did not say what it has (%v): %.200s", t.Name, e.addr, err, bytes.TrimSpace(res.stderr))
	}
	if node.Name == "" {
		node.Name = t.SSH.Host
	}
	return &atelier.ComputeCapacity{ObservedAt: time.Now().UTC(), Source: "ssh: nproc, /proc/meminfo, nvidia-smi -L",
		Totals: atelier.ComputeTotals{Nodes: 1, ReadyNodes: 1, CPUs: node.CPUs, MemoryBytes: node.MemoryBytes, GPUs: node.GPUs},
		Nodes:  []atelier.ComputeNode{node}}, nil
}

// parseDescribe reads describeScript's output.
func parseDescribe(out []byte) (atelier.ComputeNode, error) {
	n := atelier.ComputeNode{State: "up"}
	var kinds []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	cpus := false
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "host "):
			n.Name = strings.TrimSpace(strings.TrimPrefix(line, "host "))
		case strings.HasPrefix(line, "cpus "):
			v, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "cpus ")))
			if err != nil || v <= 0 {
				return n, errBadOutput("nproc printed " + strconv.Quote(line))
			}
			n.CPUs, cpus = v, true
		case strings.HasPrefix(line, "MemTotal:"):
			// "MemTotal:       16314276 kB"
			f := strings.Fields(line)
			if len(f) >= 2 {
				if kb, err := strconv.ParseInt(f[1], 10, 64); err == nil {
					n.MemoryBytes = kb << 10
				}
			}
		case strings.HasPrefix(line, "GPU "):
			// "GPU 0: NVIDIA A100-SXM4-80GB (UUID: GPU-...)"
			n.GPUs++
			_, name, ok := strings.Cut(line, ": ")
			if ok {
				name, _, _ = strings.Cut(name, " (UUID")
				if name = strings.TrimSpace(name); name != "" && !contains(kinds, name) {
					kinds = append(kinds, name)
				}
			}
		}
	}
	if !cpus {
		return n, errBadOutput("no CPU count (nproc)")
	}
	n.GPUType = strings.Join(kinds, ",")
	return n, nil
}

type errBadOutput string

func (e errBadOutput) Error() string { return string(e) }

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
