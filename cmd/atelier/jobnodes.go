package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/compute/local"
)

// A distributed run on Kubernetes is one runner per node (a pod of an Indexed Job, its index in
// ATELIER_NODE_RANK), each starting its node's processes (`atelier job tasks`). Node 0's runner
// owns the run's record: its statuses, std_log (rank 0's output), outputs and end. The others
// prepare on their own, write their ranks' output to logs/rank_<RANK>.txt and their own
// preparation to logs/node_<N>.txt, and tell node 0's runner how their processes ended over a
// TCP connection to MASTER_ADDR:ATELIER_CONTROL_PORT (JSON lines). Node 0 ends its processes
// when another node's failed, and records the run's end only once every node has said its
// processes ended: the run ends when the Job does.

// controlPortEnv is the port node 0's runner listens on for the other nodes' runners.
const controlPortEnv = "ATELIER_CONTROL_PORT"

// nodeLogPath is where node n's runner (n > 0) writes its preparation and its processes'
// launcher's notes.
func nodeLogPath(n int) string { return "logs/node_" + strconv.Itoa(n) + ".txt" }

// nodeEnd is how a node's processes ended.
type nodeEnd struct {
	Status   atelier.RunStatus `json:"status"`
	ExitCode *int              `json:"exit_code,omitempty"`
	Error    string            `json:"error,omitempty"`
}

// nodeMsg is a line a node's runner sends to node 0's: first its node and proof (that it holds
// the run's token), then its end.
type nodeMsg struct {
	Node  int      `json:"node"`
	Proof string   `json:"proof,omitempty"`
	End   *nodeEnd `json:"end,omitempty"`
}

// nodeProof proves to node 0 that a connection comes from a runner of the run.
func nodeProof(runID, token string) string {
	sum := sha256.Sum256([]byte("atelier-nodes\x00" + runID + "\x00" + token))
	return hex.EncodeToString(sum[:])
}

// nodeGroup is node 0's side: it hears the other nodes' runners.
type nodeGroup struct {
	ln      net.Listener
	nodes   int
	perNode int
	proof   string

	mu      sync.Mutex
	ends    map[int]nodeEnd
	failure *atelier.JobResult
	changed chan struct{} // closed and replaced at each end or failure
	failed  chan struct{} // closed at the first failure
}

func listenNodes(port string, config atelier.RunConfig, proof string) (*nodeGroup, error) {
	if port == "" {
		return nil, fmt.Errorf("node 0 of a distributed run needs %s from its compute target", controlPortEnv)
	}
	ln, err := net.Listen("tcp", ":"+port)
	if err != nil {
		return nil, fmt.Errorf("listening for the other nodes' runners: %w", err)
	}
	g := &nodeGroup{ln: ln, nodes: max(config.NodeCount, 1), perNode: max(config.ProcessCountPerNode, 1), proof: proof,
		ends: map[int]nodeEnd{}, changed: make(chan struct{}), failed: make(chan struct{})}
	go g.serve()
	return g, nil
}

func (g *nodeGroup) close() { g.ln.Close() }

func (g *nodeGroup) serve() {
	for {
		conn, err := g.ln.Accept()
		if err != nil {
			return
		}
		go g.handle(conn)
	}
}

func (g *nodeGroup) handle(conn net.Conn) {
	defer conn.Close()
	br := bufio.NewReader(conn)
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	var hello nodeMsg
	line, err := br.ReadBytes('\n')
	if err != nil || json.Unmarshal(line, &hello) != nil || hello.Proof != g.proof || hello.Node < 1 || hello.Node >= g.nodes {
		return // not a runner of this run
	}
	conn.SetReadDeadline(time.Time{})
	for {
		line, err := br.ReadBytes('\n')
		var m nodeMsg
		if err != nil {
			g.mu.Lock()
			_, ended := g.ends[hello.Node]
			g.mu.Unlock()
			if !ended {
				g.fail(hello.Node, nodeEnd{Status: atelier.StatusFailed,
					Error: "its runner stopped without saying how its processes ended (its pod was deleted, or lost its node)"})
			}
			return
		}
		if json.Unmarshal(line, &m) != nil || m.End == nil {
			continue
		}
		g.end(hello.Node, *m.End)
		conn.Write([]byte("{\"ok\":true}\n"))
	}
}

func (g *nodeGroup) end(node int, e nodeEnd) {
	g.mu.Lock()
	g.ends[node] = e
	g.mu.Unlock()
	if e.Status != atelier.StatusCompleted && e.Status != atelier.StatusCanceled {
		g.fail(node, e)
		return
	}
	g.signal()
}

func (g *nodeGroup) signal() {
	g.mu.Lock()
	close(g.changed)
	g.changed = make(chan struct{})
	g.mu.Unlock()
}

// fail records the first failure of another node as the run's.
func (g *nodeGroup) fail(node int, e nodeEnd) {
	g.mu.Lock()
	if g.failure == nil {
		first := local.Rank(g.perNode, node, 0)
		ranks := fmt.Sprintf("rank %d", first)
		if g.perNode > 1 {
			ranks = fmt.Sprintf("ranks %d-%d", first, first+g.perNode-1)
		}
		msg := e.Error
		if msg == "" {
			msg = "it " + string(e.Status)
		}
		g.failure = &atelier.JobResult{Status: atelier.StatusFailed, ExitCode: e.ExitCode,
			Error: fmt.Sprintf("node %d (%s, log %s): %s", node, ranks, local.RankLogPath(first), msg)}
		close(g.failed)
	}
	g.mu.Unlock()
	g.signal()
}

// wait waits until every other node's processes ended, one failed, or ctx ends.
func (g *nodeGroup) wait(ctx context.Context) {
	for {
		g.mu.Lock()
		done := g.failure != nil || len(g.ends) >= g.nodes-1
		changed := g.changed
		g.mu.Unlock()
		if done {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		}
	}
}

// outcome is what the other nodes make of node 0's result: its own failure, else the first
// failure of another node;
// Canceled when node 0's processes completed but another node's were canceled, or the wait for
// them was.
func (g *nodeGroup) outcome(res atelier.JobResult) atelier.JobResult {
	g.mu.Lock()
	defer g.mu.Unlock()
	if res.Status == atelier.StatusFailed {
		// Node 0's processes failed before any other node's failure ended them (that would
		// have canceled them): theirs is the first failure.
		return res
	}
	if g.failure != nil {
		return *g.failure
	}
	if res.Status == atelier.StatusCompleted {
		for _, e := range g.ends {
			if e.Status == atelier.StatusCanceled {
				return atelier.JobResult{Status: atelier.StatusCanceled, Error: "canceled by request"}
			}
		}
		if len(g.ends) < g.nodes-1 {
			// Stopped while waiting for them: canceled, or the runner was stopped.
			return atelier.JobResult{Status: atelier.StatusCanceled, Error: fmt.Sprintf("canceled while %d of the run's other nodes had not ended", g.nodes-1-len(g.ends))}
		}
	}
	return res
}

// nodeReporter is a node's side (node > 0): it connects to node 0's runner, and says how its
// processes ended.
type nodeReporter struct {
	addr   string
	hello  nodeMsg
	stderr io.Writer
	cancel context.CancelFunc

	mu        sync.Mutex
	conn      net.Conn
	connected chan struct{}
}

func reportToNode0(addr string, node int, proof string, stderr io.Writer) *nodeReporter {
	ctx, cancel := context.WithCancel(context.Background())
	r := &nodeReporter{addr: addr, hello: nodeMsg{Node: node, Proof: proof}, stderr: stderr, cancel: cancel, connected: make(chan struct{})}
	go r.dial(ctx)
	return r
}

// dial connects to node 0's runner, trying again while its name does not resolve yet (its pod
// is not there) or it does not listen yet.
func (r *nodeReporter) dial(ctx context.Context) {
	said := false
	for attempt := 0; ; attempt++ {
		var d net.Dialer
		dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		conn, err := d.DialContext(dctx, "tcp", r.addr)
		cancel()
		if err == nil {
			b, _ := json.Marshal(r.hello)
			if _, err = conn.Write(append(b, '\n')); err == nil {
				r.mu.Lock()
				r.conn = conn
				r.mu.Unlock()
				close(r.connected)
				return
			}
			conn.Close()
		}
		if !said && attempt >= 20 {
			fmt.Fprintf(r.stderr, "job exec: node %d: cannot reach node 0's runner at %s yet (%v); trying again\n", r.hello.Node, r.addr, err)
			said = true
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(min(50*time.Millisecond<<min(attempt, 5), time.Second)):
		}
	}
}

// end tells node 0 how this node's processes ended and waits for it to have heard (within
// wait): the node's pod ends only after.
func (r *nodeReporter) end(res atelier.JobResult, wait time.Duration) {
	defer r.cancel()
	select {
	case <-r.connected:
	case <-time.After(wait):
		fmt.Fprintf(r.stderr, "job exec: node %d: could not tell node 0's runner at %s how its processes ended\n", r.hello.Node, r.addr)
		return
	}
	r.mu.Lock()
	conn := r.conn
	r.mu.Unlock()
	defer conn.Close()
	b, _ := json.Marshal(nodeMsg{Node: r.hello.Node, End: &nodeEnd{Status: res.Status, ExitCode: res.ExitCode, Error: res.Error}})
	conn.SetDeadline(time.Now().Add(wait))
	if _, err := conn.Write(append(b, '\n')); err != nil {
		fmt.Fprintf(r.stderr, "job exec: node %d: telling node 0's runner how its processes ended: %v\n", r.hello.Node, err)
		return
	}
	bufio.NewReader(conn).ReadBytes('\n')
}

// nodeHost is a JobHost for the runner of a node other than 0: it records no status, uploads
// no outputs nor output data (node 0's), writes the preparation and std_log to the node's log,
// and uploads of ./logs its ranks' logs only.
type nodeHost struct {
	atelier.JobHost
	node int
}

func (h nodeHost) SetStatus(context.Context, *atelier.Job, atelier.RunStatus) error { return nil }

func (h nodeHost) AppendLog(ctx context.Context, job *atelier.Job, path string, data []byte) error {
	if path == local.StdLogPath || path == local.PrepareLogPath {
		path = nodeLogPath(h.node)
	}
	return h.JobHost.AppendLog(ctx, job, path, data)
}

func (h nodeHost) UploadFile(ctx context.Context, job *atelier.Job, path string, r io.Reader) error {
	if strings.HasPrefix(path, "logs/rank_") {
		return h.JobHost.UploadFile(ctx, job, path, r)
	}
	io.Copy(io.Discard, r)
	return nil
}

func (h nodeHost) WriteData(ctx context.Context, job *atelier.Job, ref atelier.DataReference, path string, r io.Reader) error {
	io.Copy(io.Discard, r)
	return nil
}

// newJobTasksCmd is `atelier job tasks`: a node's processes of a distributed run (the runner
// starts it as the script's command; see local.RunTasks).
func newJobTasksCmd() *cobra.Command {
	var t local.Tasks
	var mask string
	cmd := &cobra.Command{
		Use:    "tasks --nodes N --per-node P --node I -- COMMAND...",
		Short:  "Start one node's processes of a distributed run (used by the job runner)",
		Hidden: true,
		Args:   cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if t.Nodes < 1 || t.PerNode < 1 || t.Node < 0 || t.Node >= t.Nodes {
				return usagef("--nodes and --per-node must be positive, and --node below --nodes")
			}
			dir, err := os.Getwd()
			if err != nil {
				return err
			}
			t.Argv, t.Dir = args, dir
			if mask != "" {
				t.Mask = strings.Split(mask, ",")
			}
			if code := local.RunTasks(t, cmd.OutOrStdout()); code != 0 {
				os.Exit(code)
			}
			return nil
		},
	}
	cmd.Flags().SetInterspersed(false)
	cmd.Flags().IntVar(&t.Nodes, "nodes", 1, "the run's nodes")
	cmd.Flags().IntVar(&t.PerNode, "per-node", 1, "processes on each node")
	cmd.Flags().IntVar(&t.Node, "node", 0, "this node's rank")
	cmd.Flags().StringVar(&mask, "mask", "", "comma-separated names of variables whose values the rank logs mask")
	return cmd
}
