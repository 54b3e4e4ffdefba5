package local

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/atelier-ml/atelier"
)

// A distributed run outside a Slurm job is refused saying where it runs; inside one, its
// command becomes srun's, one task per process, each labeled, with the shared variables.
func TestDistributed(t *testing.T) {
	c := atelier.RunConfig{NodeCount: 2, ProcessCountPerNode: 3}
	t.Setenv("SLURM_JOB_ID", "")
	if _, _, err := distributed(c, []string{"python3", "train.py"}); err == nil || !strings.Contains(err.Error(), "2 × process_count_per_node 3 = 6 processes) runs on a slurm compute target") {
		t.Fatalf("outside a Slurm job: %v", err)
	}
	bin := t.TempDir()
	if err := os.WriteFile(filepath.Join(bin, "srun"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin)
	t.Setenv("SLURM_JOB_ID", "7")
	argv, env, err := distributed(c, []string{"python3", "train.py", "--lr", "0.1"})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{filepath.Join(bin, "srun"), "--nodes=2", "--ntasks=6", "--ntasks-per-node=3", "--kill-on-bad-exit=1", "--label"} {
		if !slices.Contains(argv, want) {
			t.Errorf("srun's command %q has no %s", argv, want)
		}
	}
	if got := argv[len(argv)-4:]; !slices.Equal(got, []string{"python3", "train.py", "--lr", "0.1"}) {
		t.Errorf("the script's command is not last: %q", argv)
	}
	if !slices.Contains(env, "WORLD_SIZE=6") || !strings.HasPrefix(env[1], "MASTER_PORT=") {
		t.Errorf("shared variables %q", env)
	}
}
