package local

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/atelier-ml/atelier"
)

// Distributed runs. A run of more than one process in all (node_count × process_count_per_node)
// starts its processes one of two ways, with the same variables:
//
//   - in a Slurm job, the runner (on the job's first node) starts them with srun, one task per
//     process; Slurm numbers the tasks;
//   - on Kubernetes, each pod of an Indexed Job runs a runner of its own (NodeRankEnv names its
//     index) which starts its node's process_count_per_node processes itself (`atelier job
//     tasks`, RunTasks), numbered by RankEnv.
//
// Either way each process gets RANK, LOCAL_RANK, NODE_RANK, WORLD_SIZE, MASTER_ADDR and
// MASTER_PORT, with RANK = NODE_RANK × process_count_per_node + LOCAL_RANK (node-major, as
// torchrun, Slurm's block distribution and Azure ML number them).

// NodeRankEnv is the runner's variable naming its node of a distributed run started one runner
// per node (the Kubernetes driver sets it from the pod's completion index).
const NodeRankEnv = "ATELIER_NODE_RANK"

// WorldSize is how many processes a distributed run has.
func WorldSize(nodes, perNode int) int { return max(nodes, 1) * max(perNode, 1) }

// Rank is the global rank of process local of node.
func Rank(perNode, node, local int) int { return node*max(perNode, 1) + local }

// RankEnv are the variables of process local of node in a run of nodes × perNode processes
// (MASTER_ADDR and MASTER_PORT come from where the run is).
func RankEnv(nodes, perNode, node, local int) []string {
	return []string{"RANK=" + strconv.Itoa(Rank(perNode, node, local)), "LOCAL_RANK=" + strconv.Itoa(local),
		"NODE_RANK=" + strconv.Itoa(node), "WORLD_SIZE=" + strconv.Itoa(WorldSize(nodes, perNode)),
		"LOCAL_WORLD_SIZE=" + strconv.Itoa(max(perNode, 1))}
}

// RankLogPath is the run's log of rank's output, for every rank but 0 of a run whose nodes run
// their own processes (rank 0's output is the run's std_log).
func RankLogPath(rank int) string { return "logs/rank_" + strconv.Itoa(rank) + ".txt" }

// taskScript starts one process of a distributed run as a Slurm task: the rank variables
// PyTorch, Horovod and Azure ML's scripts read come from the task's Slurm variables, and the
// master's address is the node srun was started on (the job's first, where the runner runs).
const taskScript = `export RANK="$SLURM_PROCID" LOCAL_RANK="$SLURM_LOCALID" NODE_RANK="$SLURM_NODEID" ` +
	`MASTER_ADDR="${MASTER_ADDR:-$SLURM_LAUNCH_NODE_IPADDR}"; exec "$@"`

// distributed makes argv, the command of a run of more than one process in all, start the
// processes of this node and returns the variables every process shares. In a runner given its
// node (NodeRankEnv: a Kubernetes pod of an Indexed Job), the node's processes are started by
// `atelier job tasks` (RunTasks); in a Slurm job, by srun, one process per task of the job (with
// each task's output lines labeled with its rank; one failing task ends the others), with
// WORLD_SIZE and a MASTER_PORT free on this node. Elsewhere a distributed run is refused: no
// other target starts more than one process of a script.
func distributed(c atelier.RunConfig, argv []string) ([]string, []string, error) {
	nodes, perNode := max(c.NodeCount, 1), max(c.ProcessCountPerNode, 1)
	total := WorldSize(nodes, perNode)
	if node := os.Getenv(NodeRankEnv); node != "" {
		return nodeTasks(c, node, argv)
	}
	if os.Getenv("SLURM_JOB_ID") == "" {
		return nil, nil, atelier.Errorf(atelier.EINVALID, "a distributed run (node_count %d × process_count_per_node %d = %d processes) runs on a slurm compute target or a kubernetes one; this target starts one process of a script", nodes, perNode, total)
	}
	srun, err := exec.LookPath("srun")
	if err != nil {
		return nil, nil, atelier.Errorf(atelier.EINVALID, "a distributed run needs Slurm's srun on the node's PATH: %v", err)
	}
	port, err := freePort()
	if err != nil {
		return nil, nil, atelier.Wrap(err, "choosing the master's port")
	}
	wrapped := append([]string{srun, "--nodes=" + strconv.Itoa(nodes), "--ntasks=" + strconv.Itoa(total),
		"--ntasks-per-node=" + strconv.Itoa(perNode), "--kill-on-bad-exit=1", "--label", "--export=ALL",
		"/bin/sh", "-c", taskScript, "atelier-task"}, argv...)
	return wrapped, []string{"WORLD_SIZE=" + strconv.Itoa(total), "MASTER_PORT=" + strconv.Itoa(port)}, nil
}

// nodeTasks wraps argv in `atelier job tasks` (this program) for node (NodeRankEnv's value),
// with the names of the variables whose values its rank logs mask (the run's secrets and
// tokens, as the executor masks the std_log).
func nodeTasks(c atelier.RunConfig, node string, argv []string) ([]string, []string, error) {
	nodes, perNode := max(c.NodeCount, 1), max(c.ProcessCountPerNode, 1)
	n, err := strconv.Atoi(node)
	if err != nil || n < 0 || n >= nodes {
		return nil, nil, atelier.Errorf(atelier.EINVALID, "%s=%q is not a node of a run of %d nodes", NodeRankEnv, node, nodes)
	}
	if os.Getenv("MASTER_ADDR") == "" || os.Getenv("MASTER_PORT") == "" {
		return nil, nil, atelier.Errorf(atelier.EINVALID, "a distributed run's node needs MASTER_ADDR and MASTER_PORT from its compute target")
	}
	self, err := os.Executable()
	if err != nil {
		return nil, nil, atelier.Wrap(err, "finding the runner's program")
	}
	mask := append([]string{"ATELIER_TOKEN", "MLFLOW_TRACKING_TOKEN"}, c.Secrets...)
	wrapped := append([]string{self, "job", "tasks", "--nodes", strconv.Itoa(nodes), "--per-node", strconv.Itoa(perNode),
		"--node", strconv.Itoa(n), "--mask", strings.Join(mask, ","), "--"}, argv...)
	return wrapped, nil, nil
}

// Tasks is what RunTasks starts: the processes of one node of a distributed run.
type Tasks struct {
	Nodes, PerNode, Node int
	// Argv is the script's command; Dir is the run's working directory (rank logs go under it).
	Argv []string
	Dir  string
	// Mask names the variables whose values are masked in the rank logs.
	Mask []string
	// MaxLogBytes caps each rank's log (100 MiB when zero).
	MaxLogBytes int64
}

// RunTasks starts the node's processes, each with its RankEnv (and the rest of this process's
// environment), waits for them all and returns the exit code of the first that failed (128 +
// the signal of one killed), after ending the others with SIGTERM, as srun --kill-on-bad-exit
// does; 0 when all succeeded. Rank 0's output is written to stdout (the run's std_log); every
// other rank's goes, masked, to Dir/RankLogPath(rank), which the executor uploads with the
// run's other ./logs. A SIGTERM or SIGINT to RunTasks (the executor stops a run's process group)
// reaches the processes too: it waits for them.
func RunTasks(t Tasks, stdout io.Writer) int {
	perNode := max(t.PerNode, 1)
	secrets := map[string]string{}
	for _, name := range t.Mask {
		if v := os.Getenv(name); name != "" && v != "" {
			secrets[name] = v
		}
	}
	masker := atelier.NewMasker(secrets)
	maxLog := t.MaxLogBytes
	if maxLog <= 0 {
		maxLog = 100 << 20
	}
	signals := make(chan os.Signal, 2)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(signals)

	var out sync.Mutex
	note := func(format string, args ...any) {
		out.Lock()
		defer out.Unlock()
		fmt.Fprintf(stdout, "atelier: "+format+"\n", args...)
	}
	type ended struct {
		rank, code int
	}
	done := make(chan ended, perNode)
	var cmds []*exec.Cmd
	var copies sync.WaitGroup
	for local := 0; local < perNode; local++ {
		rank := Rank(perNode, t.Node, local)
		cmd := exec.Command(t.Argv[0], t.Argv[1:]...)
		cmd.Dir = t.Dir
		cmd.Env = append(os.Environ(), RankEnv(t.Nodes, perNode, t.Node, local)...)
		var w io.Writer = lockedWriter{&out, stdout}
		var file *os.File
		if rank != 0 {
			path := filepath.Join(t.Dir, filepath.FromSlash(RankLogPath(rank)))
			os.MkdirAll(filepath.Dir(path), 0o755)
			f, err := os.Create(path)
			if err != nil {
				note("rank %d: creating its log: %v", rank, err)
				return 1
			}
			file, w = f, f
		}
		pr, pw, err := os.Pipe()
		if err != nil {
			note("rank %d: %v", rank, err)
			return 1
		}
		cmd.Stdout, cmd.Stderr = pw, pw
		if err := cmd.Start(); err != nil {
			pw.Close()
			pr.Close()
			note("rank %d: starting %s: %v", rank, t.Argv[0], err)
			for _, c := range cmds {
				c.Process.Signal(syscall.SIGTERM)
			}
			break
		}
		pw.Close()
		cmds = append(cmds, cmd)
		copies.Add(1)
		go func() {
			defer copies.Done()
			copyMasked(w, pr, masker, maxLog)
			pr.Close()
			if file != nil {
				file.Close()
			}
		}()
		go func() {
			err := cmd.Wait()
			done <- ended{rank, exitCode(err)}
		}()
	}
	code := 0
	if len(cmds) < perNode {
		code = 1
	}
	for remaining := len(cmds); remaining > 0; {
		select {
		case <-signals:
			// The process group got it too: wait for the processes to end.
			continue
		case e := <-done:
			remaining--
			if e.code == 0 || code != 0 {
				continue
			}
			code = e.code
			where := ""
			if e.rank != 0 {
				where = " (its output: " + RankLogPath(e.rank) + ")"
			}
			note("rank %d exited with code %d%s; ending the node's other processes", e.rank, e.code, where)
			for _, c := range cmds {
				c.Process.Signal(syscall.SIGTERM)
			}
		}
	}
	copies.Wait()
	return code
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// copyMasked copies r's lines to w with the masker's values masked, up to max bytes.
func copyMasked(w io.Writer, r io.Reader, m *atelier.Masker, max int64) {
	br := bufio.NewReaderSize(r, 64<<10)
	var written int64
	truncated := false
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			line = m.Mask(line)
			if !truncated && written+int64(len(line)) <= max {
				w.Write(line)
				written += int64(len(line))
			} else if !truncated {
				truncated = true
				fmt.Fprintf(w, "\n[atelier: output truncated after %d bytes; the rest was discarded]\n", written)
			}
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return
		}
	}
}

// exitCode is a waited process's exit code: 128 + the signal of one killed.
func exitCode(err error) int {
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &exit):
		if ws, ok := exit.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return exit.ExitCode()
	}
	return 1
}

// freePort is a TCP port no one listens on here, for the run's processes to meet at.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", ":0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
