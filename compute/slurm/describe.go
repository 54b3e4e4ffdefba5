package slurm

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/atelier-ml/atelier"
)

var _ atelier.ComputeDescriber = (*Driver)(nil)

// nodeInfo is what Describe reads of a node (v0.0.38 node): its state is a lowercase word
// ("idle", "mixed", "allocated", "down") and its flags say more ("DRAIN", "COMPLETING"); newer
// plugins give the state as a list of words, read too.
type nodeInfo struct {
	Name       string     `json:"name"`
	State      stringList `json:"state"`
	StateFlags []string   `json:"state_flags"`
	CPUs       int        `json:"cpus"`
	RealMemory int64      `json:"real_memory"` // MiB
	Gres       string     `json:"gres"`
	Partitions []string   `json:"partitions"`
}

// partitionInfo is what Describe reads of a partition (v0.0.38 partition).
type partitionInfo struct {
	Name         string          `json:"name"`
	State        stringList      `json:"state"`
	Flags        []string        `json:"flags"`
	TotalNodes   int             `json:"total_nodes"`
	MaxTimeLimit json.RawMessage `json:"max_time_limit"` // minutes; -1 for INFINITE
}

// stringList reads a string or a list of strings.
type stringList []string

func (l *stringList) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*l = stringList{s}
		return nil
	}
	var list []string
	if err := json.Unmarshal(b, &list); err != nil {
		return err
	}
	*l = list
	return nil
}

// minutes reads a time limit: a number of minutes (negative or huge for INFINITE), or a newer
// plugin's {"set", "infinite", "number"}; 0 for no limit.
func minutes(raw json.RawMessage) int {
	var n int64
	if json.Unmarshal(raw, &n) == nil {
		if n <= 0 || n >= 0xfffffffe {
			return 0
		}
		return int(n)
	}
	var v struct {
		Set      bool  `json:"set"`
		Infinite bool  `json:"infinite"`
		Number   int64 `json:"number"`
	}
	if json.Unmarshal(raw, &v) == nil && v.Set && !v.Infinite && v.Number > 0 {
		return int(v.Number)
	}
	return 0
}

// gpus reads a node's GRES ("gpu:2", "gpu:a100:4", "gpu:a100:2(S:0-1),gpu:v100:1,shard:8"): the
// GPUs it has in all, and their type when the entries name one (types joined by "," when
// several).
func gpus(gres string) (count int, kind string) {
	var kinds []string
	for _, entry := range strings.Split(gres, ",") {
		entry, _, _ = strings.Cut(strings.TrimSpace(entry), "(")
		parts := strings.Split(entry, ":")
		if len(parts) < 2 || parts[0] != "gpu" {
			continue
		}
		n, err := strconv.Atoi(parts[len(parts)-1])
		if err != nil || n < 0 {
			continue
		}
		count += n
		if len(parts) >= 3 && parts[1] != "" && !slices.Contains(kinds, parts[1]) {
			kinds = append(kinds, parts[1])
		}
	}
	return count, strings.Join(kinds, ",")
}

// nodeState is a node's state as sinfo writes it ("idle", "mixed", "down+drain") and whether
// it takes work, is idle or runs jobs.
func nodeState(n nodeInfo) (state string, ready, idle, allocated bool) {
	words := []string{}
	for _, s := range n.State {
		words = append(words, strings.ToLower(s))
	}
	base := ""
	if len(words) > 0 {
		base = words[0]
	}
	unavailable := false
	flags := slices.Concat(words[min(1, len(words)):], lower(n.StateFlags))
	for _, f := range flags {
		switch f {
		case "drain", "draining", "drained", "fail", "failing", "maint", "not_responding", "power_down", "powered_down", "powering_down", "reboot_requested", "reboot_issued", "invalid_reg":
			unavailable = true
		}
		if f != "" && !slices.Contains(words, f) {
			words = append(words, f)
		}
	}
	state = strings.Join(words, "+")
	switch base {
	case "idle":
		idle = !unavailable
	case "mixed", "allocated", "completing":
		allocated = !unavailable
	default: // down, error, future, unknown
		unavailable = true
	}
	return state, !unavailable, idle, allocated
}

func lower(list []string) []string {
	out := make([]string, len(list))
	for i, s := range list {
		out[i] = strings.ToLower(s)
	}
	return out
}

// Describe reads the cluster's nodes and partitions from slurmrestd (two requests: what
// `sinfo` shows): each node's state, CPUs, memory and GPUs (its GRES), and each partition's
// state, node count, whether it is the default and its time limit.
func (d *Driver) Describe(ctx context.Context, t *atelier.ComputeTarget, creds atelier.ComputeCredentials) (*atelier.ComputeCapacity, error) {
	r, err := newREST(d.client(), t, creds.Token)
	if err != nil {
		return nil, err
	}
	if err := d.checkExpiry(t, r, creds.Token); err != nil {
		return nil, err
	}
	refused := func(what string, err error) error {
		var ae *apiError
		if errors.As(err, &ae) {
			return atelier.Errorf(atelier.EUNAVAILABLE, "compute target %s: slurmrestd at %s refused to list the %s: %s", t.Name, r.base, what, ae.Error())
		}
		return err
	}
	var nodes struct {
		Nodes []nodeInfo `json:"nodes"`
	}
	if err := r.do(ctx, http.MethodGet, "nodes", nil, &nodes); err != nil {
		return nil, refused("nodes", err)
	}
	var parts struct {
		Partitions []partitionInfo `json:"partitions"`
	}
	if err := r.do(ctx, http.MethodGet, "partitions", nil, &parts); err != nil {
		return nil, refused("partitions", err)
	}
	c := &atelier.ComputeCapacity{ObservedAt: d.now().UTC(), Source: "slurmrestd " + APIVersion, Nodes: []atelier.ComputeNode{}}
	slices.SortFunc(nodes.Nodes, func(a, b nodeInfo) int { return strings.Compare(a.Name, b.Name) })
	for _, n := range nodes.Nodes {
		state, ready, idle, allocated := nodeState(n)
		count, kind := gpus(n.Gres)
		node := atelier.ComputeNode{Name: n.Name, State: state, CPUs: n.CPUs, MemoryBytes: n.RealMemory << 20, GPUs: count, GPUType: kind, Partitions: n.Partitions}
		tot := &c.Totals
		tot.Nodes++
		tot.CPUs += node.CPUs
		tot.MemoryBytes += node.MemoryBytes
		tot.GPUs += node.GPUs
		for _, b := range []struct {
			on bool
			n  *int
		}{{ready, &tot.ReadyNodes}, {idle, &tot.IdleNodes}, {allocated, &tot.AllocatedNodes}} {
			if b.on {
				*b.n++
			}
		}
		if len(c.Nodes) < atelier.MaxCapacityNodes {
			c.Nodes = append(c.Nodes, node)
		} else {
			c.NodesOmitted++
		}
	}
	for _, p := range parts.Partitions {
		state := strings.ToUpper(strings.Join(p.State, "+"))
		c.Partitions = append(c.Partitions, atelier.ComputePartition{Name: p.Name, State: state, Nodes: p.TotalNodes,
			Default: slices.Contains(lower(p.Flags), "default"), MaxTimeMinutes: minutes(p.MaxTimeLimit)})
	}
	slices.SortFunc(c.Partitions, func(a, b atelier.ComputePartition) int { return strings.Compare(a.Name, b.Name) })
	return c, nil
}
