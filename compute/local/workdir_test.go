package local_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/atelier-ml/atelier"
)

// Runs of one snapshot share its extracted template (through an overlay mount where the kernel
// allows it, a copy elsewhere); what a run writes, even over its own source files, is seen by
// neither the template nor the next run. Both ways are tested.
func TestWorkingDirIsolation(t *testing.T) {
	script := `import os
src = open("data.txt").read()
print("read", src)
with open("data.txt", "w") as f:
    f.write("changed by the run")
os.makedirs("outputs", exist_ok=True)
open("outputs/seen.txt", "w").write(src)
`
	for _, overlay := range []bool{true, false} {
		name := "overlay"
		if !overlay {
			name = "copy"
		}
		t.Run(name, func(t *testing.T) {
			e := MustExecutor(t)
			e.NoOverlay = !overlay
			for i := 0; i < 2; i++ {
				h, job := MustJob(t, map[string]string{"train.py": script, "data.txt": "original"}, atelier.RunConfig{Script: "train.py"})
				res := runAsync(t, context.Background(), e, h, job)(60 * time.Second)
				MustResult(t, res, atelier.StatusCompleted, "0")
				if got := h.Files()["outputs/seen.txt"]; got != "original" {
					t.Fatalf("run %d saw data.txt = %q, want the snapshot's content", i, got)
				}
				if _, err := os.Stat(filepath.Join(e.WorkDir, job.Run.ID)); !os.IsNotExist(err) {
					t.Errorf("run %d left its working directory behind: %v", i, err)
				}
			}
			templates, _ := filepath.Glob(filepath.Join(e.WorkDir, ".templates", "*", "data.txt"))
			for _, tpl := range templates {
				if b, _ := os.ReadFile(tpl); string(b) != "original" {
					t.Errorf("template %s = %q: a run wrote through to it", tpl, b)
				}
			}
			if overlay && os.Geteuid() == 0 && len(templates) != 1 {
				t.Errorf("overlay mode as root: templates %v, want the one snapshot's", templates)
			}
			if !overlay && len(templates) != 0 {
				t.Errorf("copy mode made templates %v", templates)
			}
		})
	}
}
