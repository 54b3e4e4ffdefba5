package podman

import (
	"context"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/atelier-ml/atelier"
)

// TestDescribe: a podman target tells podman info's CPUs and memory (the real podman's, read
// here with podman info's template); a service that does not answer says so.
func TestDescribe(t *testing.T) {
	podman, err := exec.LookPath("podman")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("podman is needed (CI is set, so this fails instead of skipping)")
		}
		t.Skip("podman is not installed")
	}
	out, err := exec.Command(podman, "info", "--format", "{{.Host.CPUs}} {{.Host.MemTotal}} {{.Host.Hostname}}").Output()
	if err != nil {
		t.Fatalf("podman info: %v", err)
	}
	f := strings.Fields(string(out))
	cpus, _ := strconv.Atoi(f[0])
	mem, _ := strconv.ParseInt(f[1], 10, 64)
	d := New("/nonexistent")
	ctx := context.Background()
	got, err := d.Describe(ctx, &atelier.ComputeTarget{Name: "box", Kind: atelier.ComputePodman, Podman: &atelier.PodmanCompute{CPUs: 1}}, atelier.ComputeCredentials{})
	if err != nil {
		t.Fatalf("Describe: %v", err)
	}
	want := atelier.ComputeTotals{Nodes: 1, ReadyNodes: 1, CPUs: cpus, MemoryBytes: mem}
	if got.Totals != want || len(got.Nodes) != 1 || got.Nodes[0].Name != f[2] || got.Nodes[0].CPUs != cpus || got.Source != "podman info" {
		t.Errorf("Describe: %+v %+v, want totals %+v and node %s", got.Totals, got.Nodes, want, f[2])
	}
	sock := "unix://" + t.TempDir() + "/none.sock"
	_, err = d.Describe(ctx, &atelier.ComputeTarget{Name: "box", Kind: atelier.ComputePodman, Podman: &atelier.PodmanCompute{URL: sock}}, atelier.ComputeCredentials{})
	if atelier.ErrorCode(err) != atelier.EUNAVAILABLE || !strings.Contains(atelier.ErrorMessage(err), "the Podman service at "+sock+" does not answer") {
		t.Errorf("Describe of a service that is not there: %v", err)
	}
}
