package kubernetes

import (
	"context"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/atelier-ml/atelier"
)

var _ atelier.ComputeDescriber = (*Driver)(nil)

// GPUProductLabel names a node's GPU model (NVIDIA's GPU feature discovery).
const GPUProductLabel = "nvidia.com/gpu.product"

// describeLabels are the node labels Describe shows, when a node has them.
var describeLabels = []string{"node.kubernetes.io/instance-type", "topology.kubernetes.io/zone"}

// Describe lists the cluster's nodes in one request (resourceVersion 0: from the apiserver's
// cache, whole, however many nodes): each node's allocatable CPUs, memory and GPUs, whether it
// is Ready and schedulable, its GPU model and instance type and zone labels. Nodes are
// cluster-wide: a user who may not list them gets the apiserver's refusal.
func (d *Driver) Describe(ctx context.Context, t *atelier.ComputeTarget, creds atelier.ComputeCredentials) (*atelier.ComputeCapacity, error) {
	if t.Kubernetes == nil {
		return nil, atelier.Errorf(atelier.EINVALID, "compute target %s has no kubernetes configuration", t.Name)
	}
	cfg, err := d.restConfig(t, creds)
	if err != nil {
		return nil, err
	}
	cfg.Timeout = 20 * time.Second // bounded by ctx too; an apiserver that accepts and never answers
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, atelier.Errorf(atelier.EINVALID, "compute target %s: %v", t.Name, err)
	}
	list, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{ResourceVersion: "0"})
	if apierrors.IsForbidden(err) {
		return nil, atelier.Errorf(atelier.EINVALID, "compute target %s: the kubeconfig's user may not list the nodes of the cluster at %s (a ClusterRole with list on nodes lets it)", t.Name, cfg.Host)
	} else if err != nil && ctx.Err() != nil {
		return nil, atelier.Errorf(atelier.EUNAVAILABLE, "compute target %s: the cluster at %s did not answer in time", t.Name, cfg.Host)
	} else if err != nil {
		return nil, d.apiError(t.Name, "listing the nodes of the cluster at "+cfg.Host, err)
	}
	return capacity(list.Items, time.Now()), nil
}

// capacity sums nodes as Describe tells them.
func capacity(items []corev1.Node, now time.Time) *atelier.ComputeCapacity {
	c := &atelier.ComputeCapacity{ObservedAt: now.UTC(), Source: "kubernetes nodes (allocatable)", Nodes: []atelier.ComputeNode{}}
	slices.SortFunc(items, func(a, b corev1.Node) int { return strings.Compare(a.Name, b.Name) })
	for i := range items {
		n := &items[i]
		ready := false
		for _, cond := range n.Status.Conditions {
			if cond.Type == corev1.NodeReady {
				ready = cond.Status == corev1.ConditionTrue
			}
		}
		state := "NotReady"
		if ready {
			state = "Ready"
		}
		if n.Spec.Unschedulable {
			state += ",SchedulingDisabled"
		}
		alloc := n.Status.Allocatable
		node := atelier.ComputeNode{Name: n.Name, State: state}
		if q, ok := alloc[corev1.ResourceCPU]; ok {
			node.CPUs = int(q.MilliValue() / 1000)
		}
		if q, ok := alloc[corev1.ResourceMemory]; ok {
			node.MemoryBytes = q.Value()
		}
		if q, ok := alloc[GPUResource]; ok {
			node.GPUs = int(q.Value())
			node.GPUType = n.Labels[GPUProductLabel]
		}
		for _, k := range describeLabels {
			if v, ok := n.Labels[k]; ok {
				if node.Labels == nil {
					node.Labels = map[string]string{}
				}
				node.Labels[k] = v
			}
		}
		tot := &c.Totals
		tot.Nodes++
		if ready && !n.Spec.Unschedulable {
			tot.ReadyNodes++
		}
		tot.CPUs += node.CPUs
		tot.MemoryBytes += node.MemoryBytes
		tot.GPUs += node.GPUs
		if len(c.Nodes) < atelier.MaxCapacityNodes {
			c.Nodes = append(c.Nodes, node)
		} else {
			c.NodesOmitted++
		}
	}
	return c
}
