package kubernetes_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/compute/kubernetes"
	"github.com/atelier-ml/atelier/compute/kubernetes/kubetest"
)

// describeNodes is how many more kwok nodes TestDescribe adds (once), each with 3920m CPUs
// (3 whole ones), 16Gi and 8 GPUs.
const describeNodes = 1000

var describeAdded bool

// TestDescribe: the shared cluster's nodes as kubetest made them (two kwok nodes of 32 CPUs,
// 256Gi and 4 GPUs, the process node "proc" of 32 CPUs and 256Gi) and 1,000 more kwok nodes,
// one cordoned and one labeled with its GPU model and instance type, are told in one request
// to the apiserver; a user who may not list nodes and an unreachable cluster each say so.
func TestDescribe(t *testing.T) {
	c := cluster(t)
	ctx := context.Background()
	if !describeAdded {
		describeAdded = true
		t0 := time.Now()
		c.AddNodes(t, describeNodes, kubetest.NodeCapacity{CPU: "3920m", Memory: "16Gi", GPUs: 8})
		t.Logf("%d kwok nodes added and Ready in %v", describeNodes, time.Since(t0).Round(time.Millisecond))
		n, err := c.Client.CoreV1().Nodes().Get(ctx, "kwok-2", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		n.Spec.Unschedulable = true
		n.Labels[kubernetes.GPUProductLabel] = "NVIDIA-A100-SXM4-80GB"
		n.Labels["node.kubernetes.io/instance-type"] = "p4d.24xlarge"
		if _, err := c.Client.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	tg, creds := target(c, "kwok-0")
	d := driver(tg, creds)
	defer d.Close()
	before := d.Requests()
	t0 := time.Now()
	got, err := d.Describe(ctx, tg, creds)
	if err != nil {
		t.Fatalf("Describe: %v", err)
	}
	t.Logf("Describe of %d nodes: %v", got.Totals.Nodes, time.Since(t0).Round(time.Millisecond)) // not asserted: a loaded machine
	if n := d.Requests() - before; n != 1 {
		t.Errorf("Describe of %d nodes sent %d requests, want 1 list", got.Totals.Nodes, n)
	}
	const gi = int64(1) << 30
	want := atelier.ComputeTotals{Nodes: 3 + describeNodes, ReadyNodes: 3 + describeNodes - 1, CPUs: 3*32 + describeNodes*3,
		MemoryBytes: 3*256*gi + describeNodes*16*gi, GPUs: 2*4 + describeNodes*8}
	// On a loaded machine kwok may be late with some nodes' heartbeats, and the node controller
	// then marks them NotReady for a while: what Describe tells is read again until it is the
	// cluster as made (it is the state the apiserver has that is told, whatever it is).
	for deadline := time.Now().Add(3 * time.Minute); got.Totals != want && time.Now().Before(deadline); time.Sleep(time.Second) {
		if got, err = d.Describe(ctx, tg, creds); err != nil {
			t.Fatalf("Describe: %v", err)
		}
	}
	if got.Totals != want {
		t.Errorf("totals %+v, want %+v", got.Totals, want)
	}
	if len(got.Nodes) != atelier.MaxCapacityNodes || got.NodesOmitted != 3+describeNodes-atelier.MaxCapacityNodes {
		t.Errorf("%d nodes listed, %d omitted; want %d and %d", len(got.Nodes), got.NodesOmitted, atelier.MaxCapacityNodes, 3+describeNodes-atelier.MaxCapacityNodes)
	}
	byName := map[string]atelier.ComputeNode{}
	for _, n := range got.Nodes {
		byName[n.Name] = n
	}
	if n := byName["kwok-0"]; n.State != "Ready" || n.CPUs != 32 || n.MemoryBytes != 256*gi || n.GPUs != 4 {
		t.Errorf("kwok-0: %+v, want Ready with 32 CPUs, 256Gi and 4 GPUs", n)
	}
	if n := byName["kwok-2"]; n.State != "Ready,SchedulingDisabled" || n.CPUs != 3 || n.MemoryBytes != 16*gi || n.GPUs != 8 ||
		n.GPUType != "NVIDIA-A100-SXM4-80GB" || n.Labels["node.kubernetes.io/instance-type"] != "p4d.24xlarge" {
		t.Errorf("kwok-2: %+v, want cordoned with 3 CPUs, 16Gi, 8 NVIDIA-A100-SXM4-80GB and its instance type", n)
	}
	if got.Nodes[0].Name != "kwok-0" || got.Nodes[1].Name != "kwok-1" {
		t.Errorf("nodes are not by name: %s, %s...", got.Nodes[0].Name, got.Nodes[1].Name)
	}

	// A user without permission on nodes.
	nobody := atelier.ComputeCredentials{Kubeconfig: string(c.UserKubeconfig("nobody"))}
	_, err = d.Describe(ctx, tg, nobody)
	if atelier.ErrorCode(err) != atelier.EINVALID || !strings.Contains(atelier.ErrorMessage(err), "may not list the nodes") {
		t.Errorf("Describe as a user who may not list nodes: %v, want EINVALID saying so", err)
	}

	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	url := "https://" + closed.Addr().String()
	closed.Close()
	gone := atelier.ComputeCredentials{Kubeconfig: string(kubetest.KubeconfigFor(url, "secret-token-value", ns))}
	_, err = d.Describe(ctx, tg, gone)
	if msg := atelier.ErrorMessage(err); atelier.ErrorCode(err) != atelier.EUNAVAILABLE || !strings.Contains(msg, url) || !strings.Contains(msg, "refused") ||
		strings.Contains(msg, "secret-token-value") {
		t.Errorf("Describe of an unreachable cluster: %v, want EUNAVAILABLE naming %s, refused, without the token", err, url)
	}
}
