package podman

import (
	"context"
	"encoding/json"
	"time"

	"github.com/atelier-ml/atelier"
)

var _ atelier.ComputeDescriber = (*Driver)(nil)

// Describe asks podman (podman info: the service at podman.url, or the server's podman) for
// its machine's CPUs and memory: the one node a podman target is. Each run's container may be
// limited to less (podman.cpus, podman.memory_gb); podman gives containers no GPUs.
func (d *Driver) Describe(ctx context.Context, t *atelier.ComputeTarget, _ atelier.ComputeCredentials) (*atelier.ComputeCapacity, error) {
	c, err := target(t)
	if err != nil {
		return nil, err
	}
	out, err := d.run(ctx, c.URL, nil, "info", "--format", "{{json .Host}}")
	if err != nil {
		where := "the server's podman"
		if c.URL != "" {
			where = "the Podman service at " + c.URL
		}
		if ctx.Err() != nil {
			return nil, atelier.Errorf(atelier.EUNAVAILABLE, "compute target %s: %s did not answer in time", t.Name, where)
		}
		return nil, atelier.Errorf(atelier.EUNAVAILABLE, "compute target %s: %s does not answer: %v", t.Name, where, err)
	}
	var host struct {
		Hostname string `json:"hostname"`
		CPUs     int    `json:"cpus"`
		MemTotal int64  `json:"memTotal"`
	}
	if err := json.Unmarshal(out, &host); err != nil || host.CPUs <= 0 {
		return nil, atelier.Errorf(atelier.EUNAVAILABLE, "compute target %s: podman info did not say the machine's CPUs (%v): %.200s", t.Name, err, out)
	}
	node := atelier.ComputeNode{Name: host.Hostname, State: "up", CPUs: host.CPUs, MemoryBytes: host.MemTotal}
	return &atelier.ComputeCapacity{ObservedAt: time.Now().UTC(), Source: "podman info",
		Totals: atelier.ComputeTotals{Nodes: 1, ReadyNodes: 1, CPUs: node.CPUs, MemoryBytes: node.MemoryBytes},
		Nodes:  []atelier.ComputeNode{node}}, nil
}
