//go:build linux

package api_test

import (
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/atelier-ml/atelier/api"
)

// The processes of runs carry no_new_privs (package sandbox). Where Landlock alone confines
// them, nothing in the kernel keeps them from the server's socket: the server turns them away.
func TestLocalSocketRefusesConfinedProcesses(t *testing.T) {
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("setpriv (util-linux) is not installed")
	}
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl is not installed")
	}
	path := filepath.Join(t.TempDir(), "atelier.sock")
	ln, err := api.ListenUnix(path)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("answered")) })}
	go srv.Serve(ln)
	defer srv.Close()

	get := []string{curl, "-sS", "--max-time", "60", "--unix-socket", path, "http://local/"}
	out, err := exec.Command(get[0], get[1:]...).CombinedOutput()
	if err != nil || string(out) != "answered" {
		t.Fatalf("a process of the server's user: %v, %q; want it answered", err, out)
	}
	out, err = exec.Command(setpriv, append([]string{"--no-new-privs"}, get...)...).CombinedOutput()
	if err == nil || strings.Contains(string(out), "answered") {
		t.Errorf("a process with no_new_privs: %v, %q; want the connection closed", err, out)
	}
}
