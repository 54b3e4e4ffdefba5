package main

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/atelier-ml/atelier"
)

// TestUnreachableTargetFailsItsRuns: a machine that stops answering while a run is on it (its
// sshd gone, the connections with it) fails the run once the bounded retry is over, saying
// which target and why, instead of leaving it Running forever; the server stops holding it.
func TestUnreachableTargetFailsItsRuns(t *testing.T) {
	needPython(t)
	m := startSSHD(t)
	t.Cleanup(func() { killRunnersUnder(m.home) })
	ctx := context.Background()
	srv := startServer(t, t.TempDir(), freeAddr(t), "--compute-unreachable-after", "2s")
	if _, err := srv.client.CreateComputeTarget(ctx, atelier.DefaultWorkspace, atelier.ComputeTargetSpec{Name: "box", Kind: atelier.ComputeSSH,
		SSH: &atelier.SSHCompute{Host: "127.0.0.1", Port: m.port, User: sshUser, HostKey: m.hostKey}, Credentials: atelier.ComputeCredentials{SSHPrivateKey: m.key}}); err != nil {
		t.Fatalf("attaching the ssh target: %v", err)
	}
	run := submitScriptTo(t, srv.client, gatedScript, "box")
	waitFor(t, "the script to start on the machine", func() bool { return strings.Contains(runLog(srv.client, run.ID), "before the restart") })
	m.stop(t)
	var got *atelier.Run
	waitFor(t, "the run to fail", func() bool {
		r, err := srv.client.FindRun(ctx, atelier.DefaultWorkspace, run.ID)
		got = r
		return err == nil && r.Status.Terminal()
	})
	if got.Status != atelier.StatusFailed || !strings.Contains(got.Error, "compute target box has not answered since") ||
		!strings.Contains(got.Error, "127.0.0.1:"+strconv.Itoa(m.port)) {
		t.Fatalf("run on an unreachable target ended %s (%q), want Failed naming the target and the machine", got.Status, got.Error)
	}
	// The server let the run go: its lease is released, so nothing holds the target's slot.
	waitFor(t, "the target's slot to be free", func() bool {
		ts, err := srv.client.ListComputeTargets(ctx, atelier.DefaultWorkspace)
		if err != nil {
			return false
		}
		for _, c := range ts {
			if c.Name == "box" {
				return c.Running == 0 && c.Queued == 0
			}
		}
		return false
	})
	if !strings.Contains(srv.log.String(), "run failed: its compute target does not answer") {
		t.Errorf("the server's log does not say why the run failed:\n%s", srv.log.String())
	}
}

// stop ends the machine's sshd and every connection it serves (their sshd processes), as a
// machine that went away would: the server's pooled connection breaks and new ones are refused.
// Processes the connections started and detached (a job's runner) are left running.
func (m *sshMachine) stop(t *testing.T) {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	parent := map[int]int{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, the fields after its ')' do not.
		fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		if len(fields) > 1 {
			parent[pid], _ = strconv.Atoi(fields[1])
		}
	}
	under := func(pid int) bool {
		for p := pid; p > 1; p = parent[p] {
			if p == m.pid {
				return true
			}
		}
		return false
	}
	for pid := range parent {
		comm, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "comm"))
		if pid != m.pid && under(pid) && strings.TrimSpace(string(comm)) == "sshd" {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	syscall.Kill(m.pid, syscall.SIGKILL)
}
