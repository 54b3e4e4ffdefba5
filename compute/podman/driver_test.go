package podman

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

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

func TestTarDir(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "blobs", "sha256"), 0o755)
	os.WriteFile(filepath.Join(dir, "index.json"), []byte("{}"), 0o644)
	os.WriteFile(filepath.Join(dir, "blobs", "sha256", "ab"), []byte("layer"), 0o644)
	var buf bytes.Buffer
	if err := tarDir(&buf, dir); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	tr := tar.NewReader(&buf)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		got[h.Name] = string(b)
	}
	want := map[string]string{"blobs/": "", "blobs/sha256/": "", "blobs/sha256/ab": "layer", "index.json": "{}"}
	if len(got) != len(want) {
		t.Fatalf("tar holds %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
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
