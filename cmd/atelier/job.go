package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/api"
	"github.com/atelier-ml/atelier/compute/local"
	"github.com/atelier-ml/atelier/python"
)

// secretEnvPrefix starts the variables that hand the runner a run's secrets: the server (or a
// compute driver) decrypts them, the runner gives them to the script under their own names.
const secretEnvPrefix = "ATELIER_SECRET_"

func newJobCmd(cfg *clientConfig) *cobra.Command {
	cmd := &cobra.Command{Use: "job", Short: "Run a submitted run's phases where its script runs (used by compute targets)"}
	var runID, workDir, envsDir, isolationFile, serverURLFile, exitFile string
	var serverWait, cancelGrace time.Duration
	exec := &cobra.Command{
		Use:   "exec --run RUN",
		Short: "Run a run's script here: snapshot, data, environment, logs, outputs and its end",
		Long: `Runs a submitted run's phases on this machine, talking to the server with the run's own
token: it downloads the run's snapshot and data references, builds or reuses its Python
environment, runs its script with its output streamed to the run's std_log, uploads
./outputs and ./logs, and records how the run ended. A compute target launches it; the run
must have been claimed (Preparing) for it.

  ATELIER_SERVER            the server's URL
  ATELIER_TOKEN             the runner's token (a run token; not a user's)
  ATELIER_SCRIPT_TOKEN      the token the script gets (default: the runner's)
  ATELIER_WORKSPACE         the run's workspace (default "default")
  ATELIER_SECRET_<NAME>     the value of each secret the run's configuration names
  ATELIER_NODE_RANK         this runner's node of a distributed run started one runner per
                            node (a Kubernetes Indexed Job): it starts the node's processes;
                            node 0 records the run, the others write logs/rank_<RANK>.txt
  ATELIER_CONTROL_PORT      with ATELIER_NODE_RANK: the port node 0's runner listens on for
                            the other nodes' (at MASTER_ADDR)

The runner watches the run's status and stops the script when it is CancelRequested (or
when the runner gets SIGTERM). While the server cannot be reached (it restarts), the
runner and its script go on: the runner retries its calls for --server-wait.
Exit codes: 0 the run Completed, 7 it Failed or was Canceled, 1 the runner itself failed.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			if runID == "" {
				return usagef("--run is required")
			}
			if cfg.token == "" {
				return usagef("the run's token is required: set ATELIER_TOKEN")
			}
			c, err := cfg.client()
			if err != nil {
				return err
			}
			c.UserAgent = "atelier-job"
			c.HTTP.Transport = &waitingTransport{base: c.HTTP.Transport, wait: serverWait, urlFile: serverURLFile, stderr: cmd.ErrOrStderr()}
			r := &jobRunner{client: c, workspace: cfg.workspace, runID: runID, workDir: workDir, envsDir: envsDir, cancelGrace: cancelGrace,
				environ: os.Environ(), poll: time.Second, stderr: cmd.ErrOrStderr(), node: -1}
			if v := os.Getenv(local.NodeRankEnv); v != "" {
				if r.node, err = strconv.Atoi(v); err != nil || r.node < 0 {
					return usagef("%s=%q is not a node's rank", local.NodeRankEnv, v)
				}
				r.controlPort, r.masterAddr = os.Getenv(controlPortEnv), os.Getenv("MASTER_ADDR")
			}
			if isolationFile != "" {
				if r.isolation, r.interpreters, err = readJobIsolation(isolationFile); err != nil {
					return fmt.Errorf("job exec: %w", err)
				}
			}
			run, err := r.exec(cmd.Context())
			code := 0
			switch {
			case err != nil:
				// The runner's own failure exits 1, whatever the server's error code.
				err, code = fmt.Errorf("job exec: run %s: %s", runID, errorText(err)), exitError
			case run.Status != atelier.StatusCompleted:
				err, code = runFailedError{run}, exitRunFailed
			}
			if exitFile != "" {
				// For a server that did not start this runner (it restarted), which cannot wait for it.
				if werr := os.WriteFile(exitFile, []byte(strconv.Itoa(code)+"\n"), 0o600); werr != nil {
					fmt.Fprintf(cmd.ErrOrStderr(), "job exec: writing the exit code: %v\n", werr)
				}
			}
			return err
		},
	}
	exec.Flags().StringVar(&runID, "run", "", "the run to execute")
	exec.Flags().StringVar(&workDir, "work-dir", "",
		"where the run's directory, its environments and the SDK go (default: a temporary directory, removed at the end)")
	exec.Flags().StringVar(&envsDir, "envs-dir", "", "a directory of Python environments shared with other runners (default: under --work-dir)")
	exec.Flags().StringVar(&isolationFile, "isolation", "", "a JSON file saying how to confine the script (written by the server's local compute target)")
	exec.Flags().StringVar(&serverURLFile, "server-url-file", "", "a file holding the server's URL, read again when the server cannot be reached (it may restart elsewhere)")
	exec.Flags().StringVar(&exitFile, "exit-file", "", "write the runner's exit code to this file before exiting")
	exec.Flags().DurationVar(&cancelGrace, "cancel-grace", atelier.DefaultCancelGrace, "time a canceled script gets between SIGTERM and SIGKILL")
	exec.Flags().DurationVar(&serverWait, "server-wait", 10*time.Minute, "how long to keep retrying while the server cannot be reached")
	cmd.AddCommand(exec, newJobTasksCmd())
	return cmd
}

// jobRunner executes one run where its script runs, through the API with the run's token.
type jobRunner struct {
	client    *api.Client
	workspace string
	runID     string
	// workDir holds the run's directory, its Python environments and the SDK; "" for a
	// temporary directory removed at the end.
	workDir string
	// environ is the runner's environment, where the run's secrets are (ATELIER_SECRET_*).
	environ []string
	// poll is how often the run's status is read, to learn of a cancel request.
	poll time.Duration
	// envsDir holds the Python environments ("" for workDir/envs).
	envsDir     string
	cancelGrace time.Duration
	// isolation confines the script (nil: the script can do what the runner can);
	// interpreters maps trusted interpreter names to their executables (see python.Resolve).
	isolation    *local.Isolation
	interpreters map[string]string
	stderr       io.Writer
	// node is the runner's node of a distributed run started one runner per node (-1: not
	// one); masterAddr and controlPort are where node 0's runner listens for the others'.
	node        int
	masterAddr  string
	controlPort string
}

// exec runs the job and records its end; it returns the run as recorded. An error is the
// runner's own: the run may then be left active, for its compute target to fail.
func (r *jobRunner) exec(ctx context.Context) (*atelier.Run, error) {
	c := r.client
	run, err := c.FindRun(ctx, r.workspace, r.runID)
	if err != nil {
		return nil, err
	}
	if run.Status.Terminal() {
		return nil, atelier.Errorf(atelier.ECONFLICT, "the run has already ended (%s)", run.Status)
	}
	// Host calls and the recording of the end outlive a signal to the runner: a stopped runner
	// still says how the run ended.
	bg := context.WithoutCancel(ctx)
	record := func(res atelier.JobResult) (*atelier.Run, error) {
		ended, err := c.UpdateRunStatus(bg, run.Workspace, run.ID, atelier.RunStatusUpdate{Status: res.Status, Error: res.Error, ExitCode: res.ExitCode})
		if atelier.ErrorCode(err) == atelier.ECONFLICT {
			// Ended meanwhile (its script, through the same token, or a cancel of a queued
			// state): the run's end stands as recorded.
			if now, ferr := c.FindRun(bg, run.Workspace, run.ID); ferr == nil && now.Status.Terminal() {
				return now, nil
			}
		}
		return ended, err
	}
	var config atelier.RunConfig
	if err := json.Unmarshal(run.Config, &config); err != nil {
		return record(atelier.JobResult{Status: atelier.StatusFailed, Error: "the stored run configuration is unreadable: " + err.Error()})
	}
	snap, err := c.FindSnapshot(ctx, run.Workspace, run.SnapshotID)
	if err != nil {
		if atelier.ErrorCode(err) == atelier.ENOTFOUND {
			return record(atelier.JobResult{Status: atelier.StatusFailed, Error: "the run's snapshot is missing: " + atelier.ErrorMessage(err)})
		}
		return nil, err
	}
	secrets, err := runSecrets(config.Secrets, r.environ)
	if err != nil {
		return record(atelier.JobResult{Status: atelier.StatusFailed, Error: "the run's secrets: " + atelier.ErrorMessage(err)})
	}
	scriptToken := c.Token
	for _, kv := range r.environ {
		if v, ok := strings.CutPrefix(kv, "ATELIER_SCRIPT_TOKEN="); ok && v != "" {
			scriptToken = v
		}
	}
	job := &atelier.Job{Run: run, Config: config, Snapshot: snap, Env: jobEnv(c.BaseURL, run, config, secrets, scriptToken), Secrets: secrets}

	dir := r.workDir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "atelier-job-"); err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
	} else if dir, err = filepath.Abs(dir); err != nil {
		return nil, err
	}
	envs := r.envsDir
	if envs == "" {
		envs = filepath.Join(dir, "envs")
	} else if envs, err = filepath.Abs(envs); err != nil {
		return nil, err
	}
	for _, d := range []string{"work", envs, "tmp", "sdk"} {
		if filepath.IsAbs(d) {
			if err := os.MkdirAll(d, 0o700); err != nil {
				return nil, err
			}
			continue
		}
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			return nil, err
		}
	}
	sdk, err := python.Install(filepath.Join(dir, "sdk"))
	if err != nil {
		return nil, fmt.Errorf("installing the Python SDK: %w", err)
	}
	iso := r.isolation
	if iso != nil {
		confined := *iso
		confined.ReadOnly = append(append([]string{}, iso.ReadOnly...), sdk)
		iso = &confined
	}
	// No overlay: each run copies its snapshot; the runner keeps no template between runs.
	executor := &local.Executor{WorkDir: filepath.Join(dir, "work"), SDKPath: sdk, CancelGrace: cmp.Or(r.cancelGrace, atelier.DefaultCancelGrace),
		Envs: &local.EnvCache{Dir: envs, Isolation: iso, Interpreters: r.interpreters}, Isolation: iso, NoOverlay: true}
	jobHost := api.NewJobHost(c, run, snap, filepath.Join(dir, "tmp"))
	defer jobHost.Close()
	var host atelier.JobHost = jobHost

	// A node of a distributed run: node 0 hears the others; the others report to it.
	var group *nodeGroup
	var reporter *nodeReporter
	if r.node >= 0 && config.NodeCount > 1 {
		proof := nodeProof(run.ID, c.Token)
		if r.node == 0 {
			if group, err = listenNodes(r.controlPort, config, proof); err != nil {
				return record(atelier.JobResult{Status: atelier.StatusFailed, Error: "starting node 0 of a distributed run: " + err.Error()})
			}
			defer group.close()
		} else {
			host = nodeHost{JobHost: jobHost, node: r.node}
			reporter = reportToNode0(net.JoinHostPort(r.masterAddr, r.controlPort), r.node, proof, r.stderr)
		}
	}

	jobCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		r.watchCancel(jobCtx, cancel)
	}()
	if group != nil {
		go func() {
			select {
			case <-group.failed: // another node's processes failed: end this node's
				cancel()
			case <-jobCtx.Done():
			}
		}()
	}
	res := executor.Run(jobCtx, host, job)
	if group != nil {
		if res.Status == atelier.StatusCompleted {
			group.wait(jobCtx) // the run ends once every node's processes have
		}
		res = group.outcome(res)
	}
	cancel()
	<-watched
	if ctx.Err() != nil && res.Status == atelier.StatusCanceled {
		// Stopped by a signal: the compute target passing a cancel request on (the run is
		// CancelRequested), else nobody asked, and the run did not end as anyone asked.
		if now, err := c.FindRun(bg, run.Workspace, run.ID); err != nil || now.Status != atelier.StatusCancelRequested {
			res.Status, res.Error = atelier.StatusFailed, "the job runner was stopped while the run was active"
		}
	}
	if reporter != nil {
		// Node 0's runner records the run: this node tells it how its processes ended.
		reporter.end(res, 30*time.Second)
		ended := *run
		ended.Status, ended.Error, ended.ExitCode = res.Status, res.Error, res.ExitCode
		return &ended, nil
	}
	return record(res)
}

// watchCancel reads the run's status every poll until ctx ends, and cancels the job when the
// run is asked to stop (CancelRequested) or has ended meanwhile.
func (r *jobRunner) watchCancel(ctx context.Context, cancel context.CancelFunc) {
	tick := time.NewTicker(r.poll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		run, err := r.client.FindRun(ctx, r.workspace, r.runID)
		if err != nil {
			if ctx.Err() == nil {
				fmt.Fprintf(r.stderr, "job exec: reading the status of run %s: %s\n", r.runID, errorText(err))
			}
			continue // the server may be restarting: the script goes on
		}
		if run.Status == atelier.StatusCancelRequested || run.Status.Terminal() {
			cancel()
			return
		}
	}
}

// runSecrets returns the values of the secrets the configuration names, from the runner's
// environment (ATELIER_SECRET_<NAME>).
func runSecrets(names []string, environ []string) (map[string]string, error) {
	given := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, secretEnvPrefix) {
			given[strings.TrimPrefix(k, secretEnvPrefix)] = v
		}
	}
	secrets := map[string]string{}
	for _, name := range names {
		v, ok := given[name]
		if !ok {
			return nil, atelier.Errorf(atelier.EINVALID, "secret %q was not given to the job runner (%s%s)", name, secretEnvPrefix, name)
		}
		secrets[name] = v
	}
	return secrets, nil
}

// jobEnv is the run context the script receives, as the server's scheduler gives it; the
// run's token goes into secrets (ATELIER_TOKEN, and MLFLOW_TRACKING_TOKEN when MLflow logs
// into the run), so the executor masks it in the run's logs.
func jobEnv(server string, run *atelier.Run, config atelier.RunConfig, secrets map[string]string, token string) map[string]string {
	env := map[string]string{"ATELIER_SERVER": server, "ATELIER_WORKSPACE": run.Workspace,
		"ATELIER_RUN_ID": run.ID, "ATELIER_EXPERIMENT": run.Experiment}
	secrets["ATELIER_TOKEN"] = token
	if _, own := config.Environment.Variables["MLFLOW_TRACKING_URI"]; !own && secrets["MLFLOW_TRACKING_URI"] == "" {
		env["MLFLOW_TRACKING_URI"] = server
		if run.Workspace != atelier.DefaultWorkspace {
			env["MLFLOW_TRACKING_URI"] = server + "/workspaces/" + url.PathEscape(run.Workspace) + "/mlflow"
		}
		env["MLFLOW_RUN_ID"] = run.ID
		env["MLFLOW_EXPERIMENT_NAME"] = run.Experiment
		secrets["MLFLOW_TRACKING_TOKEN"] = token
	}
	return env
}
