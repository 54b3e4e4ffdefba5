package api_test

import (
	"encoding/json"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/compute/local"
	"github.com/atelier-ml/atelier/compute/slurm"
	"github.com/atelier-ml/atelier/compute/slurm/slurmtest"
	"github.com/atelier-ml/atelier/service"
)

// TestComputeShowCapacity: a target's show tells what its driver says it has (the built-in
// local target: this machine's CPUs), the list never does; a slurm target whose slurmrestd
// does not answer is still shown (200, its stored facts) with capacity_error saying why in one
// line, without its token.
func TestComputeShowCapacity(t *testing.T) {
	s := MustStack(t)
	checker := &checkingDriver{}
	s.Service.AddComputeTarget(&service.Target{Name: atelier.DefaultCompute, Kind: atelier.ComputeLocal, Driver: &local.Driver{}, MaxConcurrentRuns: 2})
	s.Service.Drivers = map[string]atelier.ComputeDriver{atelier.ComputeLocal: checker, atelier.ComputeSlurm: checker}
	c, ctx := s.Client, Ctx(t)

	shown, err := c.FindComputeTarget(ctx, "default", atelier.DefaultCompute)
	if err != nil {
		t.Fatal(err)
	}
	if shown.Capacity == nil || shown.CapacityError != "" || shown.Capacity.Totals.CPUs != runtime.NumCPU() || shown.Capacity.Totals.Nodes != 1 ||
		shown.Capacity.Totals.MemoryBytes <= 0 || time.Since(shown.Capacity.ObservedAt) > time.Minute {
		t.Errorf("show local: capacity %+v, error %q; want this machine's %d CPUs", shown.Capacity, shown.CapacityError, runtime.NumCPU())
	}
	list, err := c.ListComputeTargets(ctx, "default")
	if err != nil || len(list) != 1 || list[0].Capacity != nil || list[0].CapacityError != "" {
		t.Errorf("the list: %+v, %v; want no capacity", list, err)
	}

	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	url := "http://" + closed.Addr().String()
	closed.Close()
	token := slurmtest.SignToken([]byte("a cluster's key of 32 bytes.....!"), "ml", time.Now().Add(time.Hour))
	_, err = c.CreateComputeTarget(ctx, "default", atelier.ComputeTargetSpec{Name: "hpc", Kind: atelier.ComputeSlurm,
		Slurm: &atelier.SlurmCompute{URL: url, Partition: "gpu"}, Credentials: atelier.ComputeCredentials{Token: token}})
	if err != nil {
		t.Fatal(err)
	}
	// The real driver from now on: its cluster is gone.
	s.Service.Drivers[atelier.ComputeSlurm] = slurm.New("/usr/bin/atelier", t.TempDir(), nil)
	resp := s.MustDo(t, Request{Method: "GET", Path: "/api/v1/workspaces/default/compute/hpc"})
	if resp.Status != 200 {
		t.Fatalf("show of an unreachable target: HTTP %d %s, want 200", resp.Status, resp.Body)
	}
	var got atelier.ComputeTarget
	if err := json.Unmarshal(resp.Body, &got); err != nil {
		t.Fatal(err)
	}
	if got.Kind != atelier.ComputeSlurm || got.Slurm == nil || got.Slurm.URL != url || got.Capacity != nil {
		t.Errorf("show of an unreachable target: %s, want its stored facts and no capacity", resp.Body)
	}
	if e := got.CapacityError; !strings.Contains(e, "slurmrestd at "+url) || !strings.Contains(e, "refused") || strings.Contains(e, "\n") {
		t.Errorf("capacity_error %q, want one line saying slurmrestd at %s refused", e, url)
	}
	if strings.Contains(string(resp.Body), token) || strings.Contains(string(resp.Body), strings.Split(token, ".")[2]) {
		t.Errorf("the show holds the token: %s", resp.Body)
	}

	// A slurmrestd that accepts and never answers: the show waits ComputeDescribeTimeout, then
	// answers without the capacity.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	s.Service.Drivers[atelier.ComputeSlurm] = checker
	if _, err := c.CreateComputeTarget(ctx, "default", atelier.ComputeTargetSpec{Name: "silent", Kind: atelier.ComputeSlurm,
		Slurm: &atelier.SlurmCompute{URL: "http://" + silent.Addr().String()}, Credentials: atelier.ComputeCredentials{Token: token}}); err != nil {
		t.Fatal(err)
	}
	s.Service.Drivers[atelier.ComputeSlurm] = slurm.New("/usr/bin/atelier", t.TempDir(), nil)
	t0 := time.Now()
	shown, err = c.FindComputeTarget(ctx, "default", "silent")
	if err != nil || shown.Capacity != nil || !strings.Contains(shown.CapacityError, "did not answer in time") {
		t.Errorf("show of a silent slurmrestd: %+v, %v; want capacity_error saying it did not answer in time", shown, err)
	}
	t.Logf("the show of a silent target answered after %v (ComputeDescribeTimeout %v)", time.Since(t0).Round(time.Millisecond), service.ComputeDescribeTimeout)
}
