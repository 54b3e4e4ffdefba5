package local_test

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/compute/local"
)

// attackScript tries, from a submitted script, each way into the server's data directory, and
// prints one line per attempt: "blocked NAME" or "LEAK NAME".
const attackScript = `import os, socket, sys
data = os.environ["DATA"]
server = int(os.environ["SERVER_PID"])
def attempt(name, f):
    try:
        f()
        print("LEAK " + name)
    except Exception as e:
        print("blocked %s (%s)" % (name, type(e).__name__))
def connect():
    s = socket.socket(socket.AF_UNIX)
    s.connect(data + "/atelier.sock")
def listing():
    names = os.listdir(data)
    if "admin-token" not in names:
        raise PermissionError("not listed")
attempt("admin-token", lambda: open(data + "/admin-token").read())
attempt("master.key", lambda: open(data + "/master.key", "rb").read())
attempt("database", lambda: open(data + "/atelier.db", "rb").read())
attempt("object store", lambda: open(data + "/objects/ab/cdef", "rb").read())
attempt("listing", listing)
attempt("write", lambda: open(data + "/planted", "w").write("x"))
attempt("other run", lambda: open(data + "/work/other-run/wd/secret.txt").read())
attempt("own link", lambda: (os.symlink(data + "/master.key", "mine"), open("mine").read()))
attempt("proc root", lambda: open("/proc/%d/root%s/admin-token" % (server, data)).read())
attempt("proc environ", lambda: open("/proc/%d/environ" % server, "rb").read())
attempt("socket", connect)
attempt("signal", lambda: os.kill(server, 0))
os.makedirs("outputs", exist_ok=True)
open("outputs/model.txt", "w").write("trained")
print("done")
`

// TestScriptCannotReachServer submits a script that tries every way into the server's data
// directory it can: each must fail, and the script must still run and leave its outputs.
func TestScriptCannotReachServer(t *testing.T) {
	for _, runAs := range []string{"nobody", ""} {
		t.Run("run-as="+runAs, func(t *testing.T) { testScriptCannotReachServer(t, runAs) })
	}
}

func testScriptCannotReachServer(t *testing.T, runAs string) {
	e := MustExecutorRunAs(t, runAs)
	if e.Isolation.Name() == "none" {
		t.Skip("this machine cannot confine runs (not root, no Landlock)")
	}
	t.Logf("isolation: %s", e.Isolation.Name())
	data := filepath.Dir(e.WorkDir)
	for path, content := range map[string]string{
		"admin-token": "ADMIN-SECRET", "master.key": "MASTER-SECRET", "atelier.db": "DATABASE-SECRET",
		"objects/ab/cdef": "OBJECT-SECRET", "work/other-run/wd/secret.txt": "OTHER-SECRET",
	} {
		p := filepath.Join(data, path)
		os.MkdirAll(filepath.Dir(p), 0o700)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ln, err := net.Listen("unix", filepath.Join(data, "atelier.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	h, job := MustJob(t, map[string]string{"train.py": attackScript}, atelier.RunConfig{Script: "train.py",
		Environment: atelier.EnvironmentConfig{Variables: map[string]string{"DATA": data, "SERVER_PID": strconv.Itoa(os.Getpid())}}})
	res := e.Run(t.Context(), h, job)
	out := h.Log(local.StdLogPath)
	MustResult(t, res, atelier.StatusCompleted, "0")
	if strings.Contains(out, "LEAK") || strings.Contains(out, "SECRET") || !strings.Contains(out, "done") {
		t.Errorf("the script reached the server's data:\n%s", out)
	}
	if n := strings.Count(out, "blocked "); n != 12 {
		t.Errorf("%d attempts blocked, want 12:\n%s", n, out)
	}
	if h.Files()["outputs/model.txt"] != "trained" {
		t.Errorf("outputs = %v, want outputs/model.txt", h.Files())
	}
	if _, err := os.Stat(filepath.Join(data, "planted")); err == nil {
		t.Error("the script wrote into the data directory")
	}
}

// A confined script's daemon that left its process group and dropped the run's environment
// is still the run's: it is in the run's mount namespace, and it ends with the run.
func TestDaemonWithoutTheRunsEnvironmentEnds(t *testing.T) {
	e := MustExecutor(t)
	if !strings.Contains(e.Isolation.Name(), "namespace") {
		t.Skip("runs have no mount namespace of their own here")
	}
	script := "import subprocess\n" +
		"d = subprocess.Popen(['sleep', '1000'], start_new_session=True, env={}, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n" +
		"print('daemon=%d' % d.pid)\n"
	h, job := MustJob(t, map[string]string{"train.py": script}, atelier.RunConfig{Script: "train.py"})
	res := e.Run(t.Context(), h, job)
	MustResult(t, res, atelier.StatusCompleted, "0")
	pid := scanInt(t, h.Log(local.StdLogPath), "daemon")
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
	for deadline := time.Now().Add(time.Minute); alive(pid); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the daemon (pid %d) outlived its run", pid)
		}
	}
}
