package storetest

import (
	"bytes"
	"strings"
	"testing"

	"github.com/atelier-ml/atelier"
)

// testComputeTargets runs the compute target registry's part of the conformance suite.
func testComputeTargets(t *testing.T, open func(t *testing.T) atelier.Store) {
	ctx := Context(t)
	s := open(t)
	MustCreateWorkspace(t, s, "ws")
	MustCreateWorkspace(t, s, "other")

	// A stored target comes back whole: its kind's block, the names of its credentials and
	// the sealed blob as stored.
	sealed := []byte{1, 2, 3, 0, 255}
	gpu := &atelier.ComputeTarget{Name: "gpu-box", Kind: atelier.ComputeSSH, Description: "the GPU box", MaxConcurrentRuns: 2,
		SSH: &atelier.SSHCompute{Host: "10.0.0.7", Port: 22, User: "ml", HostKey: "ssh-ed25519 AAAA"}, Credentials: []string{"ssh_private_key"},
		Sealed: sealed, Activity: "act-1"}
	mustOK(t, s.CreateComputeTarget(ctx, "ws", gpu), "CreateComputeTarget(gpu-box)")
	if gpu.Workspace != "ws" || gpu.CreatedBy != "tester" || gpu.CreatedAt == nil {
		t.Errorf("created = %+v, want workspace ws, created by tester, with a time", gpu)
	}
	got, err := s.FindComputeTarget(ctx, "ws", "gpu-box")
	mustOK(t, err, "FindComputeTarget")
	if got.Kind != atelier.ComputeSSH || got.Description != "the GPU box" || got.MaxConcurrentRuns != 2 || got.SSH == nil ||
		*got.SSH != *gpu.SSH || got.Slurm != nil || !bytes.Equal(got.Sealed, sealed) || len(got.Credentials) != 1 ||
		got.Credentials[0] != "ssh_private_key" || got.Activity != "act-1" || got.CreatedBy != "tester" || got.CreatedAt == nil ||
		!got.CreatedAt.Equal(*gpu.CreatedAt) {
		t.Errorf("FindComputeTarget = %+v (ssh %+v), want %+v", got, got.SSH, gpu)
	}
	hpc := &atelier.ComputeTarget{Name: "hpc", Kind: atelier.ComputeSlurm, MaxConcurrentRuns: 10,
		Slurm: &atelier.SlurmCompute{URL: "http://slurm:6820", Partition: "gpu", TokenSecret: "SLURM_JWT"}}
	mustOK(t, s.CreateComputeTarget(ctx, "ws", hpc), "CreateComputeTarget(hpc)")
	cpu := &atelier.ComputeTarget{Name: "cpu4", Kind: atelier.ComputeLocal, MaxConcurrentRuns: 4}
	mustOK(t, s.CreateComputeTarget(ctx, "ws", cpu), "CreateComputeTarget(cpu4)")

	// Names are per workspace.
	wantCode(t, s.CreateComputeTarget(ctx, "ws", &atelier.ComputeTarget{Name: "hpc", Kind: atelier.ComputeLocal, MaxConcurrentRuns: 1}),
		atelier.ECONFLICT, "CreateComputeTarget(duplicate)")
	mustOK(t, s.CreateComputeTarget(ctx, "other", &atelier.ComputeTarget{Name: "hpc", Kind: atelier.ComputeLocal, MaxConcurrentRuns: 1}),
		"CreateComputeTarget(the same name in another workspace)")
	wantCode(t, s.CreateComputeTarget(ctx, "nows", &atelier.ComputeTarget{Name: "x", Kind: atelier.ComputeLocal, MaxConcurrentRuns: 1}),
		atelier.ENOTFOUND, "CreateComputeTarget(missing workspace)")
	wantCode(t, s.CreateComputeTarget(ctx, "ws", &atelier.ComputeTarget{Name: "bad name", Kind: atelier.ComputeLocal}),
		atelier.EINVALID, "CreateComputeTarget(bad name)")
	for _, tc := range []struct{ ws, name string }{{"ws", "nope"}, {"nows", "hpc"}, {"other", "gpu-box"}} {
		_, err := s.FindComputeTarget(ctx, tc.ws, tc.name)
		wantCode(t, err, atelier.ENOTFOUND, "FindComputeTarget(%s, %s)", tc.ws, tc.name)
	}

	list, err := s.ListComputeTargets(ctx, "ws")
	mustOK(t, err, "ListComputeTargets")
	if len(list) != 3 || list[0].Name != "cpu4" || list[1].Name != "gpu-box" || list[2].Name != "hpc" ||
		list[2].Slurm == nil || list[2].Slurm.TokenSecret != "SLURM_JWT" || !bytes.Equal(list[1].Sealed, sealed) {
		t.Fatalf("ListComputeTargets = %+v, want cpu4, gpu-box, hpc", list)
	}
	if _, err := s.ListComputeTargets(ctx, "nows"); atelier.ErrorCode(err) != atelier.ENOTFOUND {
		t.Errorf("ListComputeTargets(nows): %v, want ENOTFOUND", err)
	}
	all, err := s.ListComputeTargets(ctx, "")
	mustOK(t, err, "ListComputeTargets(every workspace)")
	var names []string
	for _, ct := range all {
		names = append(names, ct.Workspace+"/"+ct.Name)
	}
	if strings.Join(names, " ") != "other/hpc ws/cpu4 ws/gpu-box ws/hpc" || !bytes.Equal(all[2].Sealed, sealed) || all[2].SSH == nil {
		t.Errorf("ListComputeTargets(every workspace) = %v, want other/hpc ws/cpu4 ws/gpu-box ws/hpc, whole", names)
	}

	// Runs on a target: counted per workspace (or across them), and they hold it.
	counts := func(ws, name string) [2]int {
		t.Helper()
		q, a, err := s.ComputeTargetRuns(ctx, ws, name)
		mustOK(t, err, "ComputeTargetRuns(%s, %s)", ws, name)
		return [2]int{q, a}
	}
	queued := MustCreateRun(t, s, "ws", atelier.RunCreate{Experiment: "e", Status: atelier.StatusQueued, Compute: "hpc"})
	active := MustCreateRun(t, s, "ws", atelier.RunCreate{Experiment: "e", Status: atelier.StatusQueued, Compute: "hpc"})
	MustSetStatus(t, s, "ws", active.ID, atelier.StatusPreparing)
	MustSetStatus(t, s, "ws", active.ID, atelier.StatusRunning)
	done := MustCreateRun(t, s, "ws", atelier.RunCreate{Experiment: "e", Status: atelier.StatusQueued, Compute: "hpc"})
	MustSetStatus(t, s, "ws", done.ID, atelier.StatusCanceled)
	MustCreateRun(t, s, "other", atelier.RunCreate{Experiment: "e", Status: atelier.StatusQueued, Compute: "hpc"})
	if got := counts("ws", "hpc"); got != [2]int{1, 1} {
		t.Errorf("ComputeTargetRuns(ws, hpc) = %v, want 1 queued, 1 active", got)
	}
	if got := counts("", "hpc"); got != [2]int{2, 1} {
		t.Errorf("ComputeTargetRuns(all, hpc) = %v, want 2 queued, 1 active", got)
	}
	if got := counts("ws", "cpu4"); got != [2]int{0, 0} {
		t.Errorf("ComputeTargetRuns(ws, cpu4) = %v, want none", got)
	}
	if _, _, err := s.ComputeTargetRuns(ctx, "nows", "hpc"); atelier.ErrorCode(err) != atelier.ENOTFOUND {
		t.Errorf("ComputeTargetRuns(nows): %v, want ENOTFOUND", err)
	}

	// Delete: refused while runs are queued or active on it, whatever their status.
	wantCode(t, s.DeleteComputeTarget(ctx, "ws", "hpc"), atelier.ECONFLICT, "DeleteComputeTarget(with runs)")
	MustSetStatus(t, s, "ws", queued.ID, atelier.StatusCanceled)
	wantCode(t, s.DeleteComputeTarget(ctx, "ws", "hpc"), atelier.ECONFLICT, "DeleteComputeTarget(with an active run)")
	if _, err := s.FindComputeTarget(ctx, "ws", "hpc"); err != nil {
		t.Fatalf("a refused delete removed the target: %v", err)
	}
	MustSetStatus(t, s, "ws", active.ID, atelier.StatusCompleted)
	mustOK(t, s.DeleteComputeTarget(ctx, "ws", "hpc"), "DeleteComputeTarget(hpc)")
	if _, err := s.FindComputeTarget(ctx, "ws", "hpc"); atelier.ErrorCode(err) != atelier.ENOTFOUND {
		t.Errorf("FindComputeTarget after delete: %v, want ENOTFOUND", err)
	}
	wantCode(t, s.DeleteComputeTarget(ctx, "ws", "hpc"), atelier.ENOTFOUND, "DeleteComputeTarget(again)")
	// The other workspace's target of the same name stays, its queued run notwithstanding.
	if _, err := s.FindComputeTarget(ctx, "other", "hpc"); err != nil {
		t.Errorf("the other workspace's hpc is gone: %v", err)
	}
	// And the name can be used again.
	mustOK(t, s.CreateComputeTarget(ctx, "ws", &atelier.ComputeTarget{Name: "hpc", Kind: atelier.ComputeLocal, MaxConcurrentRuns: 1}),
		"CreateComputeTarget(hpc again)")

	// A deleted workspace takes its targets with it.
	mustOK(t, s.DeleteWorkspace(ctx, "other", true), "DeleteWorkspace(other)")
	all, err = s.ListComputeTargets(ctx, "")
	mustOK(t, err, "ListComputeTargets(every workspace)")
	for _, ct := range all {
		if ct.Workspace == "other" {
			t.Errorf("a deleted workspace's target is still listed: %+v", ct)
		}
	}
	MustCreateWorkspace(t, s, "other")
	if list, err := s.ListComputeTargets(ctx, "other"); err != nil || len(list) != 0 {
		t.Errorf("a workspace made again under the name has targets: %+v, %v", list, err)
	}
}
