package main

import (
	"archive/tar"
	"compress/gzip"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestUpgradeDataDirectory starts today's binary on a data directory written by atelier at
// commit a6dee21, the last one before users, roles and datastores (issues 6 and 7): its database
// (schema version 3), administrator token and objects, made by `run submit` of a script writing
// outputs/model.pkl, `run log`, `run param`, `model register --run` and `workspace create team`.
// The old administrator token must still work, and so must everything it made.
func TestUpgradeDataDirectory(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the real binary")
	}
	dataDir := t.TempDir()
	untarGz(t, filepath.Join("testdata", "upgrade", "data-a6dee21.tar.gz"), dataDir)
	token, err := os.ReadFile(filepath.Join(dataDir, adminTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, dataDir, freeAddr(t))
	bin, _ := buildBinary()
	// withStdin runs the CLI as the old administrator, stdin its standard input.
	withStdin := func(stdin string, args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Dir = t.TempDir()
		cmd.Env = append(os.Environ(), "ATELIER_SERVER="+srv.url, "ATELIER_TOKEN="+strings.TrimSpace(string(token)))
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("atelier %s: %v\n%s\nserver log:\n%s", strings.Join(args, " "), err, out, srv.log)
		}
		return string(out)
	}
	must := func(args ...string) string {
		t.Helper()
		return withStdin("", args...)
	}
	const run = "01a23743a0267349e4e3ccaff58d8e13"
	for _, want := range []struct {
		args     []string
		contains []string
	}{
		{[]string{"run", "show", run, "-o", "json"}, []string{`"status": "Completed"`, `"experiment": "upgrade"`, `"alpha": "0.1"`, `"stage": "old"`}},
		{[]string{"run", "metrics", run, "--name", "rmse"}, []string{"0.25", "0.2"}},
		{[]string{"run", "logs", run}, []string{"trained"}},
		{[]string{"model", "show", "legacy:1", "-o", "json"}, []string{`"version": 1`, `"stage": "old"`, run}},
		{[]string{"workspace", "list"}, []string{"default", "team"}},
		// The tables the upgrade added work for the old token: it is an administrator's.
		{[]string{"token", "list"}, []string{"admin"}},
		{[]string{"datastore", "list"}, []string{"default", "files"}},
		{[]string{"user", "list", "-o", "json"}, []string{"["}},
	} {
		out := must(want.args...)
		for _, s := range want.contains {
			if !strings.Contains(out, s) {
				t.Errorf("atelier %s: no %q in\n%s", strings.Join(want.args, " "), s, out)
			}
		}
	}

	// The files written before the upgrade read back, and new writes land beside them.
	dir := t.TempDir()
	must("model", "download", "legacy:1", "-d", dir)
	if b, err := os.ReadFile(filepath.Join(dir, "model.pkl")); err != nil || string(b) != "weights-v1\n" {
		t.Errorf("the model registered before the upgrade: %q, %v", b, err)
	}
	must("model", "register", "--name", "legacy", "--run", run, "--path", "outputs/model.pkl")
	if out := must("model", "show", "legacy", "-o", "json"); !strings.Contains(out, `"version": 2`) {
		t.Errorf("registering after the upgrade did not make version 2:\n%s", out)
	}
	must("run", "log", run, "rmse", "0.15")
	if out := must("audit", "list"); !strings.Contains(out, "admin") {
		t.Errorf("writes after the upgrade are not audited:\n%s", out)
	}
	// Users and roles work on the upgraded directory: a new Reader of "team" sees it and only it.
	withStdin("correct horse battery\n", "user", "create", "ada")
	must("workspace", "share", "team", "ada", "--role", "Reader")
	if out := must("workspace", "members", "team"); !strings.Contains(out, "ada") || !strings.Contains(out, "Reader") {
		t.Errorf("members of team after share:\n%s", out)
	}

	// Restarting on the upgraded directory migrates nothing again and keeps the token.
	srv.cmd.Process.Kill()
	srv.cmd.Wait()
	srv = startServer(t, dataDir, freeAddr(t))
	if out := must("run", "metrics", run, "--name", "rmse"); !strings.Contains(out, "0.15") {
		t.Errorf("the metric logged after the upgrade is gone after a restart:\n%s", out)
	}
}

// untarGz extracts a gzipped tar of regular files and directories into dir.
func untarGz(t *testing.T, archive, dir string) {
	t.Helper()
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return
		} else if err != nil {
			t.Fatal(err)
		}
		target := filepath.Join(dir, filepath.FromSlash(h.Name))
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, 0o700); err != nil {
				t.Fatal(err)
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(target), 0o700); err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(target, b, os.FileMode(h.Mode)&0o777); err != nil {
				t.Fatal(err)
			}
		}
	}
}
