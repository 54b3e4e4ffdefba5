package podman

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/atelier-ml/atelier"
)

// The driver against real podman is tested through the server and the real runner in
// cmd/atelier (podmandriver_test.go); these need no podman.

func TestParseRefusesForeignHandles(t *testing.T) {
	good := `{"workspace":"default","target":"box","id":"0123456789abcdef","name":"atelier-job-r1"}`
	if _, err := parse(good); err != nil {
		t.Fatalf("parse(%s): %v", good, err)
	}
	for _, bad := range []string{"", "garbage", "{}", `{"pid": -1}`,
		`{"target":"box","id":"0123456789abcdef","name":"other"}`,
		`{"target":"box","id":"--all","name":"atelier-job-r1"}`,
		`{"target":"box","id":"0123456789abcdef","name":"atelier-job-r1","url":"--remote"}`,
		`{"id":"0123456789abcdef","name":"atelier-job-r1"}`} {
		if _, err := parse(bad); atelier.ErrorCode(err) != atelier.EINVALID {
			t.Errorf("parse(%q): %v, want EINVALID", bad, err)
		}
	}
}

func TestQuoteSurvivesTheShell(t *testing.T) {
	v := "it's \"$HOME\" $(id)\nsecond line \\ `id`"
	out, err := exec.Command("sh", "-c", "printf %s "+quote(v)).Output()
	if err != nil || string(out) != v {
		t.Fatalf("sh printed %q (%v), want %q", out, err, v)
	}
}

// Launch refuses what one container cannot give before asking podman anything.
func TestLaunchRefusesClusterRuns(t *testing.T) {
	d := New("/nonexistent")
	d.Podman = "/nonexistent/podman"
	target := &atelier.ComputeTarget{Name: "box", Kind: atelier.ComputePodman, Podman: &atelier.PodmanCompute{}}
	for _, tc := range []struct{ config, want string }{
		{`{"script":"train.py","node_count":2}`, "node_count 2 needs a cluster target"},
		{`{"script":"train.py","gpus":1}`, "gives containers no GPUs"},
	} {
		_, err := d.Launch(context.Background(), &atelier.JobLaunch{Run: &atelier.Run{ID: "r1", Workspace: "default", Config: []byte(tc.config)}, Target: target})
		if atelier.ErrorCode(err) != atelier.EINVALID || !bytes.Contains([]byte(atelier.ErrorMessage(err)), []byte(tc.want)) {
			t.Errorf("Launch of %s: %v, want EINVALID saying %q", tc.config, err, tc.want)
		}
	}
	if _, err := d.Launch(context.Background(), &atelier.JobLaunch{Run: &atelier.Run{ID: "r1"}, Target: &atelier.ComputeTarget{Name: "x", Kind: atelier.ComputeSSH}}); atelier.ErrorCode(err) != atelier.EINVALID {
		t.Errorf("Launch on a target without a podman block: %v, want EINVALID", err)
	}
}

// Watching many jobs costs one podman ps per ListingTTL, not one podman process per job; a
// container not listed is asked about alone (and is Gone when podman does not know it).
func TestStatusListsOncePerPass(t *testing.T) {
	dir := t.TempDir()
	calls := filepath.Join(dir, "calls")
	fake := filepath.Join(dir, "podman")
	a, b := "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	script := `#!/bin/sh
echo "$1" >> ` + calls + `
case "$1" in
ps) echo '[{"Id":"` + a + `","State":"running","ExitCode":0},{"Id":"` + b + `","State":"exited","ExitCode":3}]' ;;
container) echo "Error: no such container cccccccccccc" >&2; exit 125 ;;
esac
`
	if err := os.WriteFile(fake, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	d := New("/nonexistent")
	d.Podman = fake
	d.ListingTTL = time.Hour // a bound no look here reaches
	h := func(id string) string {
		return `{"workspace":"default","target":"box","id":"` + id + `","name":"atelier-job-r` + id[:1] + `"}`
	}
	ctx := context.Background()
	for i := 0; i < 20; i++ {
		if st, err := d.Status(ctx, h(a)); err != nil || st.Phase != atelier.JobRunning {
			t.Fatalf("Status(a) = %+v, %v; want Running", st, err)
		}
		if st, err := d.Status(ctx, h(b)); err != nil || st.Phase != atelier.JobExited || st.ExitCode != 3 {
			t.Fatalf("Status(b) = %+v, %v; want Exited 3", st, err)
		}
	}
	c := "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"
	if st, err := d.Status(ctx, h(c)); err != nil || st.Phase != atelier.JobGone || !bytes.Contains([]byte(st.Detail), []byte("cccccccccccc")) {
		t.Fatalf("Status(c) = %+v, %v; want Gone naming it", st, err)
	}
	got, _ := os.ReadFile(calls)
	if bytes.Count(got, []byte("ps\n")) != 1 || bytes.Count(got, []byte("container\n")) != 1 {
		t.Errorf("podman was run as:\n%s\nwant one ps for 40 looks at two listed jobs and one inspect for the unlisted one", got)
	}
}
