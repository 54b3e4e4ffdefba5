package local

import (
	"net"
	"os"
	"os/exec"
	"strconv"

	"github.com/atelier-ml/atelier"
)

// taskScript starts one process of a distributed run as a Slurm task: the rank variables
// PyTorch, Horovod and Azure ML's scripts read come from the task's Slurm variables, and the
// master's address is the node srun was started on (the job's first, where the runner runs).
const taskScript = `export RANK="$SLURM_PROCID" LOCAL_RANK="$SLURM_LOCALID" NODE_RANK="$SLURM_NODEID" ` +
	`MASTER_ADDR="${MASTER_ADDR:-$SLURM_LAUNCH_NODE_IPADDR}"; exec "$@"`

// distributed makes argv, the command of a run of more than one process in all, start one
// process per task of the Slurm job the runner runs in (srun, with each task's output lines
// labeled with its rank; one failing task ends the others), and returns the variables every
// process shares: WORLD_SIZE and a MASTER_PORT free on this node. Outside a Slurm job, a
// distributed run is refused: no other target starts more than one process of a script.
func distributed(c atelier.RunConfig, argv []string) ([]string, []string, error) {
	nodes, perNode := max(c.NodeCount, 1), max(c.ProcessCountPerNode, 1)
	total := nodes * perNode
	if os.Getenv("SLURM_JOB_ID") == "" {
		return nil, nil, atelier.Errorf(atelier.EINVALID, "a distributed run (node_count %d × process_count_per_node %d = %d processes) runs on a slurm compute target; this target starts one process of a script", nodes, perNode, total)
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

// freePort is a TCP port no one listens on here, for the run's processes to meet at.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", ":0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
