package local

import (
	"fmt"
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

// Ranks are node-major: RANK = NODE_RANK × process_count_per_node + LOCAL_RANK.
func TestRankEnv(t *testing.T) {
	got := RankEnv(3, 4, 2, 1)
	want := []string{"RANK=9", "LOCAL_RANK=1", "NODE_RANK=2", "WORLD_SIZE=12", "LOCAL_WORLD_SIZE=4"}
	if !slices.Equal(got, want) {
		t.Errorf("RankEnv(3 nodes, 4 per node, node 2, local 1) = %q, want %q", got, want)
	}
	if RankLogPath(5) != "logs/rank_5.txt" {
		t.Errorf("RankLogPath(5) = %q", RankLogPath(5))
	}
}

// In a runner told its node (a Kubernetes pod of an Indexed Job), the script's command becomes
// `atelier job tasks` for the node, masking the run's secrets; a node outside the run is refused.
func TestDistributedNode(t *testing.T) {
	c := atelier.RunConfig{NodeCount: 2, ProcessCountPerNode: 3, Secrets: []string{"API_KEY"}}
	t.Setenv("SLURM_JOB_ID", "")
	t.Setenv("MASTER_ADDR", "job-0.job")
	t.Setenv("MASTER_PORT", "29500")
	t.Setenv(NodeRankEnv, "1")
	argv, env, err := distributed(c, []string{"python3", "train.py"})
	if err != nil {
		t.Fatal(err)
	}
	self, _ := os.Executable()
	want := []string{self, "job", "tasks", "--nodes", "2", "--per-node", "3", "--node", "1", "--mask", "ATELIER_TOKEN,MLFLOW_TRACKING_TOKEN,API_KEY", "--", "python3", "train.py"}
	if !slices.Equal(argv, want) || len(env) != 0 {
		t.Errorf("a node's command %q (env %q), want %q", argv, env, want)
	}
	t.Setenv(NodeRankEnv, "2")
	if _, _, err := distributed(c, []string{"python3"}); err == nil || !strings.Contains(err.Error(), "not a node of a run of 2 nodes") {
		t.Errorf("node 2 of 2: %v", err)
	}
}

// RunTasks starts the node's processes with their ranks: rank 0's output on its stdout, the
// others' in logs/rank_<RANK>.txt with the secrets masked; one failing ends the others and
// its exit code is the node's.
func TestRunTasks(t *testing.T) {
	t.Setenv("API_KEY", "hunter2-secret")
	script := `echo "rank $RANK local $LOCAL_RANK node $NODE_RANK world $WORLD_SIZE key $API_KEY"
if [ "$RANK" = "$FAIL" ]; then while [ ! -e trapped ]; do sleep 0.01; done; exit 3; fi
if [ -n "$FAIL" ]; then trap 'echo "rank $RANK ended"; exit 0' TERM; touch trapped; while :; do sleep 0.05; done; fi`
	for _, tc := range []struct {
		node     int
		fail     string
		wantCode int
	}{{0, "", 0}, {1, "", 0}, {1, "3", 3}} {
		dir := t.TempDir()
		t.Setenv("FAIL", tc.fail)
		var out strings.Builder
		code := RunTasks(Tasks{Nodes: 2, PerNode: 2, Node: tc.node, Argv: []string{"/bin/sh", "-c", script}, Dir: dir, Mask: []string{"API_KEY"}}, &out)
		if code != tc.wantCode {
			t.Errorf("node %d, rank %q failing: code %d, want %d\n%s", tc.node, tc.fail, code, tc.wantCode, out.String())
		}
		for local := 0; local < 2; local++ {
			rank := tc.node*2 + local
			want := fmt.Sprintf("rank %d local %d node %d world 4 key ***", rank, local, tc.node)
			got := out.String()
			if rank != 0 {
				b, _ := os.ReadFile(filepath.Join(dir, "logs", fmt.Sprintf("rank_%d.txt", rank)))
				got = string(b)
			}
			if !strings.Contains(got, want) || strings.Contains(got, "hunter2") {
				t.Errorf("rank %d's output %q, want %q (masked)", rank, got, want)
			}
		}
		if tc.fail != "" {
			if b, _ := os.ReadFile(filepath.Join(dir, "logs", "rank_2.txt")); !strings.Contains(string(b), "rank 2 ended") {
				t.Errorf("rank 2 was not ended when rank 3 failed: %q", b)
			}
			if !strings.Contains(out.String(), "rank 3 exited with code 3 (its output: logs/rank_3.txt)") {
				t.Errorf("the node's output says nothing of rank 3's failure: %q", out.String())
			}
		}
	}
}
