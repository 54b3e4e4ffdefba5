package main

import (
	"bytes"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// The admin token a server leaves in ./.atelier goes to that server only: not to whatever
// listens at another address (another user's server on the usual port), and not into --help.
func TestAdminTokenStaysWithItsServer(t *testing.T) {
	const secret = "atl_adminsecretvalue"
	var mu sync.Mutex
	var auth []string
	witness := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		auth = append(auth, r.Header.Get("Authorization"))
		mu.Unlock()
		http.Error(w, `{"code":"unauthorized","message":"no"}`, http.StatusUnauthorized)
	}))
	defer witness.Close()

	dir := t.TempDir()
	t.Chdir(dir)
	if err := os.MkdirAll(defaultDataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(defaultDataDir, adminTokenFile), []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("ATELIER_TOKEN", "")
	run := func(args ...string) string {
		t.Helper()
		cmd := newRootCmd()
		var out bytes.Buffer
		cmd.SetOut(&out)
		cmd.SetErr(&out)
		cmd.SetArgs(args)
		cmd.Execute()
		return out.String()
	}
	// No server of this directory runs: its token must not go to the witness, named or not.
	for _, server := range []string{witness.URL, ""} {
		t.Setenv("ATELIER_SERVER", server)
		run("workspace", "list")
	}
	// A server-url that names the witness makes it this directory's server: then it may.
	if err := os.WriteFile(filepath.Join(defaultDataDir, urlFile), []byte(witness.URL+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("ATELIER_SERVER", "")
	run("workspace", "list")
	mu.Lock()
	got := auth
	mu.Unlock()
	if len(got) != 2 || got[0] != "" || got[1] != "Bearer "+secret {
		t.Errorf("Authorization headers the witness received = %q, want only the last request to carry the token", got)
	}

	// A socket left behind that no longer answers: the server died, its address is stale.
	ln, err := net.Listen("unix", filepath.Join(defaultDataDir, socketFile))
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	t.Setenv("ATELIER_SERVER", witness.URL)
	run("workspace", "list")
	mu.Lock()
	if len(auth) != 3 || auth[2] != "" {
		t.Errorf("Authorization headers the witness received = %q, want none sent with a stale server-url", auth)
	}
	mu.Unlock()

	t.Setenv("ATELIER_TOKEN", secret)
	for _, args := range [][]string{{"--help"}, {"run", "list", "--help"}, {"datastore", "upload", "--help"}} {
		if out := run(args...); strings.Contains(out, secret) {
			t.Errorf("atelier %s prints the token:\n%s", strings.Join(args, " "), out)
		}
	}
}
