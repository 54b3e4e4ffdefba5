package main

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/atelier-ml/atelier"
)

// A server that launched a run and stopped before it recorded the job's handle launches the
// run again when it restarts. The local and ssh drivers adopt the runner started the first
// time instead of starting the script twice: the second launch answers the first one's handle,
// and one runner of the run runs.
func TestDriversAdoptTheRunnerOfARelaunchedRun(t *testing.T) {
	needPython(t)
	script := map[string]string{"train.py": "import time\nwhile True:\n    time.sleep(0.05)\n"}
	t.Run("local", func(t *testing.T) {
		s := startJobStack(t)
		d := localDriver(t)
		run, token := s.claim(t, jobCtx(t), atelier.RunConfig{Script: "train.py"}, script)
		l := &atelier.JobLaunch{Run: run, Server: s.url, Token: token}
		first, err := d.Launch(context.Background(), l)
		if err != nil {
			t.Fatal(err)
		}
		second, err := d.Launch(context.Background(), l)
		if err != nil || second != first {
			t.Fatalf("launching the run again: %s, %v; want the first launch's handle %s", second, err, first)
		}
		if n := runnersOf(run.ID, d.Dir); n != 1 {
			t.Errorf("%d runners of the run, want 1", n)
		}
		// A directory without a started runner's handle (a launch that failed half-way) is
		// started anew.
		other, token2 := s.claim(t, jobCtx(t), atelier.RunConfig{Script: "train.py"}, script)
		os.MkdirAll(filepath.Join(d.Dir, other.ID), 0o700)
		if h, err := d.Launch(context.Background(), &atelier.JobLaunch{Run: other, Server: s.url, Token: token2}); err != nil || h == first {
			t.Fatalf("a launch over a half-made directory: %s, %v", h, err)
		}
	})
	t.Run("ssh", func(t *testing.T) {
		m := startSSHD(t)
		s := startJobStack(t)
		target := m.target(m.hostKey)
		d := sshDriver(t, m, target)
		run, token := s.claim(t, jobCtx(t), atelier.RunConfig{Script: "train.py"}, script)
		l := &atelier.JobLaunch{Run: run, Server: s.url, Token: token, Target: target,
			Credentials: atelier.ComputeCredentials{SSHPrivateKey: m.key}}
		first, err := d.Launch(context.Background(), l)
		if err != nil {
			t.Fatal(err)
		}
		second, err := d.Launch(context.Background(), l)
		if err != nil || second != first {
			t.Fatalf("launching the run again: %s, %v; want the first launch's handle %s", second, err, first)
		}
		if n := runnersOf(run.ID, filepath.Join(m.home, d.Root)); n != 1 {
			t.Errorf("%d runners of the run, want 1", n)
		}
		if st, err := d.Status(context.Background(), second); err != nil || st.Phase != atelier.JobRunning {
			t.Errorf("the adopted runner: %+v, %v; want Running", st, err)
		}
	})
}

// runnersOf counts the job runners of a run whose command line names a path under dir.
func runnersOf(runID, dir string) int {
	n := 0
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(string(cmdline), "\x00")
		if len(args) > 3 && args[1] == "job" && args[2] == "exec" && strings.Contains(string(cmdline), "\x00"+runID+"\x00") &&
			strings.Contains(string(cmdline), filepath.Clean(dir)+string(filepath.Separator)) {
			n++
		}
	}
	return n
}
