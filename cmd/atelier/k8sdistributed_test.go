package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/atelier-ml/atelier"
	kubernetescompute "github.com/atelier-ml/atelier/compute/kubernetes"
	"github.com/atelier-ml/atelier/compute/kubernetes/kubetest"
)

// distScript checks its distributed variables (RANK = NODE_RANK × per-node + LOCAL_RANK) and
// meets the others at MASTER_ADDR:MASTER_PORT: rank 0 listens, every other rank connects and
// sends its rank, rank 0 checks all arrived. The rank given as the second argument exits 3;
// with -2, every rank then waits.
const distScript = `import os, socket, sys, time
per, fail = int(sys.argv[1]), int(sys.argv[2])
rank, local, node, world = (int(os.environ[v]) for v in ('RANK', 'LOCAL_RANK', 'NODE_RANK', 'WORLD_SIZE'))
addr, port = os.environ['MASTER_ADDR'], int(os.environ['MASTER_PORT'])
print(f'rank {rank} local {local} node {node} world {world} master {addr}:{port}', flush=True)
assert world == 2 * per and 0 <= local < per and rank == node * per + local, 'wrong ranks'
os.makedirs('outputs', exist_ok=True)
open(f'outputs/rank_{rank}.txt', 'w').write('out')
if rank == fail:
    print(f'rank {rank} fails', flush=True)
    sys.exit(3)
if rank == 0:
    srv = socket.create_server(('', port))
    srv.settimeout(120)
    met = set()
    while len(met) < world - 1:
        conn, _ = srv.accept()
        met.add(int(conn.makefile().readline()))
        conn.close()
    print('rank 0 met', sorted(met), flush=True)
    assert met == set(range(1, world))
else:
    deadline = time.time() + 120
    while True:
        try:
            s = socket.create_connection((addr, port), timeout=5)
            break
        except OSError:
            if time.time() > deadline:
                raise
            time.sleep(0.05)
    s.sendall(f'{rank}\n'.encode())
    s.close()
    print(f'rank {rank} met rank 0 at {addr}', flush=True)
if fail == -2:
    print(f'rank {rank} waits', flush=True)
    time.sleep(600)
`

// TestKubernetesDistributedRun: a run of 2 nodes × 2 processes on a real control plane is an
// Indexed Job of 2 pods on kubetest's process node, each pod's runner (the real binary) starting
// its node's 2 processes; every process gets its ranks and they all meet rank 0 at MASTER_ADDR
// (pod 0's name in the Job's headless Service) and MASTER_PORT. The run Completes, rank 0's
// output in its std_log and each other rank's in logs/rank_<RANK>.txt, node 0's outputs only.
// A rank failing on the other node (3) fails the run with its exit code, as does one failing on
// node 0 (1); either way the Job fails. A run canceled while its ranks run (the run asked to
// stop, its Job deleted, as the server's controller does) is Canceled.
func TestKubernetesDistributedRun(t *testing.T) {
	needPython(t)
	if _, err := exec.LookPath("mount"); err != nil {
		t.Skip("the process node gives a pod its /etc/hosts with mount(8)")
	}
	c := kubetest.Start(t, kubetest.Options{})
	c.Namespace(t, "ml")
	s := startJobStack(t)
	bin, err := buildBinary()
	if err != nil {
		t.Fatal(err)
	}
	c.StartKubelet(t, "proc", kubetest.NodeCapacity{}, map[string]string{"atelier": bin})
	target := &atelier.ComputeTarget{Name: "k8s", Kind: atelier.ComputeKubernetes, Workspace: atelier.DefaultWorkspace,
		Kubernetes: &atelier.KubernetesCompute{Namespace: "ml", Image: "atelier:test", NodeSelector: map[string]string{"kubernetes.io/hostname": "proc"}}}
	creds := atelier.ComputeCredentials{Kubeconfig: string(c.KubeconfigData)}
	d := kubernetescompute.New("", func(_ context.Context, ws, name string) (*atelier.ComputeTarget, atelier.ComputeCredentials, error) {
		return target, creds, nil
	}, "--server-wait", "3s", "--cancel-grace", "300ms")
	defer d.Close()
	d.MasterPort = freePortPair(t) // the process node's pods share this machine's ports
	ctx := jobCtx(t)

	start := func(fail int) (*atelier.Run, string) {
		t.Helper()
		run, token := s.claim(t, ctx, atelier.RunConfig{Script: "dist.py", Arguments: []string{"2", strconv.Itoa(fail)}, NodeCount: 2, ProcessCountPerNode: 2},
			map[string]string{"dist.py": distScript})
		h, err := d.Launch(ctx, &atelier.JobLaunch{Run: run, Server: s.url, Token: token, Target: target, Credentials: creds})
		if err != nil {
			t.Fatal(err)
		}
		return run, h
	}
	launch := func(fail int) (*atelier.Run, string) {
		t.Helper()
		run, h := start(fail)
		return waitEnded(t, s.admin, run.ID), h
	}
	file := func(run *atelier.Run, path string) string {
		_, rc, err := s.admin.OpenFile(ctx, run.Workspace, run.ID, path)
		if err != nil {
			return "(" + err.Error() + ")"
		}
		defer rc.Close()
		b, _ := io.ReadAll(rc)
		return string(b)
	}
	jobEnded := func(h string) atelier.JobState {
		t.Helper()
		var st atelier.JobState
		waitFor(t, "the Job to end", func() bool {
			st, err = d.Status(ctx, h)
			return err == nil && st.Phase != atelier.JobRunning
		})
		return st
	}

	run, h := launch(-1)
	log := stdLog(t, ctx, s.admin, run)
	if run.Status != atelier.StatusCompleted || !strings.Contains(log, "rank 0 local 0 node 0 world 4") || !strings.Contains(log, "rank 0 met [1, 2, 3]") {
		t.Fatalf("the distributed run ended %s (%q):\n%s\nnode 1: %s", run.Status, run.Error, log, file(run, "logs/node_1.txt"))
	}
	for rank, want := range map[int]string{1: "rank 1 local 1 node 0 world 4", 2: "rank 2 local 0 node 1 world 4", 3: "rank 3 local 1 node 1 world 4"} {
		if got := file(run, "logs/rank_"+strconv.Itoa(rank)+".txt"); !strings.Contains(got, want) || !strings.Contains(got, "met rank 0 at") {
			t.Errorf("rank %d's log: %q, want %q and its meeting", rank, got, want)
		}
	}
	if strings.Contains(log, "rank 1 local") {
		t.Errorf("another rank's output in rank 0's std_log:\n%s", log)
	}
	files, err := s.admin.ListFiles(ctx, run.Workspace, run.ID, "outputs/")
	if err != nil {
		t.Fatal(err)
	}
	var outputs []string
	for _, f := range files {
		outputs = append(outputs, f.Path)
	}
	if strings.Join(outputs, " ") != "outputs/rank_0.txt outputs/rank_1.txt" {
		t.Errorf("outputs %q: want node 0's only", outputs)
	}
	if st := jobEnded(h); st.Phase != atelier.JobExited || st.ExitCode != 0 {
		t.Errorf("the completed run's Job: %+v", st)
	}

	for _, tc := range []struct {
		fail      int
		wantError string
	}{{3, "node 1 (ranks 2-3"}, {1, "the script exited with code 3"}} {
		run, h := launch(tc.fail)
		if run.Status != atelier.StatusFailed || run.ExitCode == nil || *run.ExitCode != 3 || !strings.Contains(run.Error, tc.wantError) {
			code := "none"
			if run.ExitCode != nil {
				code = strconv.Itoa(*run.ExitCode)
			}
			t.Errorf("rank %d failing: the run ended %s with code %s (%q), want Failed with code 3 saying %q\n%s", tc.fail, run.Status, code, run.Error, tc.wantError, stdLog(t, ctx, s.admin, run))
		}
		if got := file(run, "logs/rank_"+strconv.Itoa(tc.fail)+".txt"); !strings.Contains(got, "fails") {
			t.Errorf("the failing rank %d's log: %q", tc.fail, got)
		}
		if st := jobEnded(h); st.Phase != atelier.JobExited || st.ExitCode == 0 {
			t.Errorf("rank %d failing: the Job %+v, want failed", tc.fail, st)
		}
	}

	run, h = start(-2)
	waitFor(t, "every rank to wait", func() bool {
		return strings.Contains(stdLog(t, ctx, s.admin, run), "rank 0 waits") && strings.Contains(file(run, "logs/rank_3.txt"), "rank 3 waits")
	})
	if _, err := s.admin.CancelRun(ctx, run.Workspace, run.ID); err != nil {
		t.Fatal(err)
	}
	if err := d.Cancel(ctx, h); err != nil {
		t.Fatal(err)
	}
	if got := waitEnded(t, s.admin, run.ID); got.Status != atelier.StatusCanceled {
		t.Errorf("the canceled distributed run ended %s (%q)", got.Status, got.Error)
	}
	waitFor(t, "the canceled run's Job to go", func() bool {
		st, err := d.Status(ctx, h)
		return err == nil && st.Phase == atelier.JobGone
	})
}

// freePortPair is a port p with p and p+1 free here.
func freePortPair(t *testing.T) int {
	for i := 0; i < 100; i++ {
		ln, err := net.Listen("tcp", ":0")
		if err != nil {
			t.Fatal(err)
		}
		p := ln.Addr().(*net.TCPAddr).Port
		next, err := net.Listen("tcp", ":"+strconv.Itoa(p+1))
		ln.Close()
		if err == nil {
			next.Close()
			return p
		}
	}
	t.Fatal("no two free ports in a row")
	return 0
}

// TestKubernetesDistributedThroughTheServer: `run submit --node-count 2
// --process-count-per-node 2` to a kubernetes target of the real server binary runs the script
// on 2 pods × 2 processes whose ranks meet at rank 0, and the run Completes with every other
// rank's log (the server's driver given a free MASTER_PORT: the process node's pods share this
// machine's ports).
func TestKubernetesDistributedThroughTheServer(t *testing.T) {
	needPython(t)
	if _, err := exec.LookPath("mount"); err != nil {
		t.Skip("the process node gives a pod its /etc/hosts with mount(8)")
	}
	t.Setenv("ATELIER_KUBERNETES_MASTER_PORT", strconv.Itoa(freePortPair(t)))
	_, srv, kc := startKubeServer(t)
	srv.mustRun(t, "compute", "attach", "k8s", "--kind", "kubernetes", "--kubeconfig", kc, "--namespace", "ml", "--image", "atelier:test",
		"--node-selector", "kubernetes.io/hostname=proc")
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "dist.py"), []byte(distScript), 0o644)
	out := srv.mustRun(t, "run", "submit", dir, "-e", "k8s-dist", "--script", "dist.py", "--compute", "k8s", "--node-count", "2",
		"--process-count-per-node", "2", "--wait", "-o", "json", "--", "2", "-1")
	var run atelier.Run
	if err := json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &run); err != nil {
		t.Fatalf("run submit -o json: %v\n%s", err, out)
	}
	ctx := context.Background()
	ended := waitEnded(t, srv.client, run.ID)
	log := stdLog(t, ctx, srv.client, ended)
	if ended.Status != atelier.StatusCompleted || !strings.Contains(log, "rank 0 met [1, 2, 3]") {
		t.Fatalf("the distributed run through the server ended %s (%q):\n%s", ended.Status, ended.Error, log)
	}
	files, err := srv.client.ListFiles(ctx, atelier.DefaultWorkspace, run.ID, "logs/")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range files {
		names = append(names, f.Path)
	}
	for _, want := range []string{"logs/rank_1.txt", "logs/rank_2.txt", "logs/rank_3.txt"} {
		if !slices.Contains(names, want) {
			t.Errorf("the run's logs %v lack %s", names, want)
		}
	}
}

// startKubeServer starts a control plane with kubetest's process node "proc" (its pods run the
// real binary) and namespace "ml", and the real server binary (with serverArgs); it returns the
// cluster, the server and a kubeconfig file of the cluster.
func startKubeServer(t *testing.T, serverArgs ...string) (*kubetest.Cluster, *serverProcess, string) {
	t.Helper()
	c := kubetest.Start(t, kubetest.Options{})
	c.Namespace(t, "ml")
	bin, err := buildBinary()
	if err != nil {
		t.Fatal(err)
	}
	c.StartKubelet(t, "proc", kubetest.NodeCapacity{}, map[string]string{"atelier": bin})
	srv := startServer(t, t.TempDir(), freeAddr(t), serverArgs...)
	kc := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kc, c.KubeconfigData, 0o600); err != nil {
		t.Fatal(err)
	}
	return c, srv, kc
}
