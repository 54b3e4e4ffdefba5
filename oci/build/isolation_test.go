package build

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/atelier-ml/atelier/python"
	"github.com/atelier-ml/atelier/sandbox"
)

func TestMain(m *testing.M) {
	sandbox.Main() // confined pips start as this binary
	os.Exit(m.Run())
}

// TestConfinedPip builds with pip confined, as root in a mount namespace with Landlock and as
// another user, where the machine allows: pip installs from a directory it is granted, and
// cannot read one that is hidden (the build then fails as pip finds nothing).
func TestConfinedPip(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	exe, prefix, err := python.Resolve(context.Background(), MustPython(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, runAs := range []string{"", "nobody"} {
		t.Run("run-as="+runAs, func(t *testing.T) {
			l, err := sandbox.New(self, "build-test", runAs)
			if err != nil {
				t.Skipf("no user %s: %v", runAs, err)
			}
			if l.Isolation() == "none" {
				t.Skip("no confinement on this machine (not root, no Landlock): nothing to test")
			}
			if _, _, other := l.Owner(); runAs != "" && !other {
				t.Skip("the process cannot run as another user here")
			}
			t.Logf("isolation: %s", l.Isolation())
			f := newFixture(t)
			wheels := f.spec.PipArgs[len(f.spec.PipArgs)-1]
			ro := []string{prefix, filepath.Dir(exe)}

			spec := f.spec
			spec.Isolation = &Isolation{Launcher: l, Hide: []string{t.TempDir()}, ReadOnly: append(ro, wheels)}
			res, err := Build(context.Background(), spec, f.base, Output{LayoutDir: filepath.Join(t.TempDir(), "out"), Tag: "1"})
			if err != nil {
				t.Fatalf("confined build: %v\n%s", err, res.Log)
			}
			if !strings.HasPrefix(res.Layers[0].Name, "deps ") || res.Layers[0].Cached {
				t.Fatalf("layers %+v: the deps layer was not built", res.Layers)
			}

			spec = f.spec
			spec.CacheDir = filepath.Join(t.TempDir(), "cache")
			spec.Isolation = &Isolation{Launcher: l, Hide: []string{wheels}, ReadOnly: ro}
			res, err = Build(context.Background(), spec, f.base, Output{LayoutDir: filepath.Join(t.TempDir(), "out"), Tag: "1"})
			if err == nil {
				t.Fatalf("pip installed from a hidden directory:\n%s", res.Log)
			}
			// pip says it may not read the directory, or that nothing there matches.
			if !strings.Contains(err.Error(), "greet") && !strings.Contains(err.Error(), "Permission denied: '"+wheels+"'") {
				t.Fatalf("the error names neither the hidden directory nor the requirement: %v", err)
			}
		})
	}
}
