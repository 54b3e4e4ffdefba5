package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/atelier-ml/atelier/datastore/datastoretest"
	"github.com/atelier-ml/atelier/oci/build/buildtest"
	"github.com/atelier-ml/atelier/sandbox"
)

// The CLI is tested as a user types it: testscript runs the scripts in testdata/script, where
// `atelier` is this binary (re-executed by testscript as a real subprocess).
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){"atelier": main})
}

func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir: "testdata/script",
		Setup: func(env *testscript.Env) error {
			// Each script gets its own port, so scripts run in parallel.
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return err
			}
			addr := ln.Addr().String()
			ln.Close()
			env.Setenv("ATELIER_ADDR", addr)
			env.Setenv("ATELIER_SERVER", "http://"+addr)
			env.Setenv("HOME", env.WorkDir+"/home")
			env.Setenv("XDG_CACHE_HOME", env.WorkDir+"/home/.cache")
			// The runs a script's servers launched outlive them: they end with the script.
			workDir := env.WorkDir
			env.Defer(func() { killRunnersUnder(workDir) })
			return nil
		},
		// [azurite]: Azurite is installed (ATELIER_AZURITE, PATH or /tmp/azurite), not only on PATH.
		Condition: func(cond string) (bool, error) {
			if cond == "azurite" {
				return datastoretest.AzuriteBinary() != "", nil
			}
			if cond == "isolated" { // runs on local can be confined here (package sandbox)
				l, err := sandbox.New("/bin/true", "true", "")
				return err == nil && l.Isolation() != "none", nil
			}
			return false, fmt.Errorf("unknown condition %q", cond)
		},
		Cmds: withStorageCmds(map[string]func(ts *testscript.TestScript, neg bool, args []string){
			// waitserver waits until the server at $ATELIER_SERVER answers its health check.
			"waitserver": func(ts *testscript.TestScript, neg bool, args []string) {
				url := ts.Getenv("ATELIER_SERVER") + "/api/v1/health"
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				for ctx.Err() == nil {
					if resp, err := http.Get(url); err == nil {
						resp.Body.Close()
						if resp.StatusCode == 200 {
							return
						}
					}
					time.Sleep(20 * time.Millisecond)
				}
				ts.Fatalf("the server at %s did not answer in time", url)
			},
			// capture NAME sets $NAME to the trimmed standard output of the last command.
			"capture": func(ts *testscript.TestScript, neg bool, args []string) {
				if len(args) != 1 {
					ts.Fatalf("usage: capture NAME")
				}
				ts.Setenv(args[0], strings.TrimSpace(ts.ReadFile("stdout")))
			},
			// mkbase DIR writes a tiny image base (an OCI layout declaring Python 3.11 at
			// /usr/bin/python3, without one: package buildtest) for atelier server --image-base.
			"mkbase": func(ts *testscript.TestScript, neg bool, args []string) {
				if len(args) != 1 {
					ts.Fatalf("usage: mkbase DIR")
				}
				ts.Check(buildtest.WriteLayout(ts.MkAbs(args[0]), buildtest.Platform(), "3.11"))
			},
			// mkfile PATH SIZE writes SIZE bytes of generated content.
			"mkfile": func(ts *testscript.TestScript, neg bool, args []string) {
				if len(args) != 2 {
					ts.Fatalf("usage: mkfile PATH SIZE")
				}
				var size int
				fmt.Sscan(args[1], &size)
				b := make([]byte, size)
				for i := range b {
					b[i] = byte(i*7 + i/251)
				}
				path := ts.MkAbs(args[0])
				ts.Check(os.MkdirAll(filepath.Dir(path), 0o755))
				ts.Check(os.WriteFile(path, b, 0o644))
			},
		}),
	})
}
