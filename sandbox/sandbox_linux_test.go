package sandbox

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestMain(m *testing.M) {
	Main() // the confined processes of these tests start as this binary
	os.Exit(m.Run())
}

// attack is one thing a confined process tries; allowed says whether it must succeed.
type attack struct {
	name, sh string
	allowed  bool
}

// TestHiddenStaysHidden runs the same attacks under every combination of layers this machine
// offers: each layer alone must keep the hidden directory out of reach.
func TestHiddenStaysHidden(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	full, err := New(self, "sandbox-test", "nobody")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("this machine offers: %s", full.Isolation())
	combos := map[string]Capabilities{}
	if full.caps.Landlock > 0 {
		combos["landlock"] = Capabilities{Landlock: full.caps.Landlock}
	}
	if full.caps.User {
		combos["user+namespace"] = Capabilities{Namespace: true, User: true}
	}
	if full.caps.Namespace && full.caps.Landlock > 0 {
		combos["namespace+landlock as root without capabilities"] = Capabilities{Namespace: true, Landlock: full.caps.Landlock}
	}
	if full.caps.String() != "none" {
		combos["all: "+full.caps.String()] = full.caps
	}
	if len(combos) == 0 {
		t.Skip("no confinement on this machine (not root, no Landlock): nothing to test")
	}
	for name, caps := range combos {
		t.Run(name, func(t *testing.T) {
			l := *full
			l.caps = caps
			if !caps.User {
				l.UID, l.GID = -1, -1
			}
			runAttacks(t, &l)
		})
	}
}

func runAttacks(t *testing.T, l *Launcher) {
	base := t.TempDir() // inside a directory only this user can search: hidden from there
	data := filepath.Join(base, "data")
	rw := filepath.Join(data, "work", "run1")
	ro := filepath.Join(data, "envs")
	other := filepath.Join(data, "work", "run2")
	for _, d := range []string{rw, ro, other} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.Chmod(data, 0o700)
	mustWrite(t, filepath.Join(data, "admin-token"), "TOKEN-SECRET")
	mustWrite(t, filepath.Join(other, "theirs.txt"), "OTHER-RUN")
	if err := os.WriteFile(filepath.Join(ro, "lib.txt"), []byte("LIBRARY"), 0o644); err != nil {
		t.Fatal(err)
	}
	if uid, gid, ok := l.Owner(); ok {
		os.Chown(rw, uid, gid)
	}
	ln, err := net.Listen("unix", filepath.Join(data, "atelier.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	t.Setenv("HIDDEN_VALUE", "ENV-SECRET") // in this process's environment only
	attacks := []attack{
		{"read a file of the hidden directory", "cat " + data + "/admin-token", false},
		{"list the hidden directory", "ls -a " + data + " | grep -q admin-token", false},
		{"write into the hidden directory", "echo x > " + data + "/planted", false},
		{"read another run's directory", "cat " + other + "/theirs.txt", false},
		{"follow a link made in its own directory", "ln -s " + data + "/admin-token " + rw + "/link && cat " + rw + "/link", false},
		{"go through /proc/PARENT/root", "cat /proc/$PPID/root" + data + "/admin-token", false},
		{"read the parent's environment", "tr '\\0' '\\n' < /proc/$PPID/environ | grep -q HIDDEN_VALUE", false},
		{"signal the parent", "kill -0 $PPID", false},
		{"write its own directory", "echo mine > " + rw + "/out.txt && cat " + rw + "/out.txt", true},
		{"read a read-only grant", "cat " + ro + "/lib.txt", true},
		{"write a read-only grant", "echo x > " + ro + "/planted", false},
		{"read the system", "cat /etc/hostname /etc/passwd > /dev/null && ls /usr/bin > /dev/null", true},
		{"write /dev/shm", "f=$(mktemp -p /dev/shm) && echo ok > $f && rm $f", true},
	}
	if l.caps.Namespace {
		// Landlock does not govern connecting to a socket: alone, it leaves that to the server,
		// which turns confined processes away (api.peerConfined).
		attacks = append(attacks, attack{"connect to the hidden socket", socketConnect(data + "/atelier.sock"), false})
	}
	for _, a := range attacks {
		if a.sh == "" {
			continue
		}
		cmd := exec.Command("/bin/sh", "-c", a.sh)
		cmd.Dir = rw
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := l.Wrap(cmd, Policy{Hide: []string{data}, ReadWrite: []string{rw}, ReadOnly: []string{ro}}); err != nil {
			t.Fatal(err)
		}
		err := cmd.Run()
		if a.allowed && err != nil {
			t.Errorf("%s: failed (%v), want it allowed:\n%s", a.name, err, out.String())
		}
		if !a.allowed && err == nil {
			t.Errorf("%s: succeeded, want it refused:\n%s", a.name, out.String())
		}
		if strings.Contains(out.String(), "TOKEN-SECRET") || strings.Contains(out.String(), "OTHER-RUN") {
			t.Errorf("%s: leaked a secret:\n%s", a.name, out.String())
		}
	}
	if _, err := os.Stat(filepath.Join(data, "planted")); err == nil {
		t.Error("a confined process wrote into the hidden directory")
	}
	if _, err := os.Stat(filepath.Join(ro, "planted")); err == nil {
		t.Error("a confined process wrote into a read-only grant")
	}
}

// socketConnect is a shell command connecting to a Unix socket, with the machine's own
// Python (empty when there is none).
func socketConnect(path string) string {
	for _, py := range []string{"/usr/bin/python3", "/usr/local/bin/python3"} {
		if _, err := os.Stat(py); err == nil {
			return fmt.Sprintf(`%s -c 'import socket; s = socket.socket(socket.AF_UNIX); s.connect("%s")'`, py, path)
		}
	}
	return ""
}

func mustWrite(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestRules(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"a/data/x", "a/b", "c"} {
		os.MkdirAll(filepath.Join(root, d), 0o755)
	}
	os.Symlink(filepath.Join(root, "a/data"), filepath.Join(root, "a/link"))
	got := around(root, []string{filepath.Join(root, "a/data")}, llRead)
	var paths []string
	for _, r := range got {
		paths = append(paths, strings.TrimPrefix(r.path, root))
	}
	want := "/a/b /c"
	if strings.Join(paths, " ") != want {
		t.Errorf("rules around the hidden directory = %v, want %s (no rule on an ancestor, the hidden directory or a link)", paths, want)
	}
}
