package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/api"
	"github.com/atelier-ml/atelier/archive"
	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"
)

// DefaultRunConfigPath is where run submit looks for the run configuration.
const DefaultRunConfigPath = ".atelier/run.yaml"

// runConfigFile is the YAML form of atelier.RunConfig (documented in docs/runconfig.md).
type runConfigFile struct {
	atelier.RunConfig `yaml:",inline"`
	Timeout           string `yaml:"timeout"`
}

// loadRunConfig reads a run configuration file, refusing unknown keys and wrong types with
// the line and key named.
func loadRunConfig(path string) (*atelier.RunConfig, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, atelier.Errorf(atelier.EINVALID, "%s: %s", path, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	var c atelier.RunConfig
	if len(doc.Content) == 0 {
		return &c, nil // an empty file: flags say everything
	}
	if err := checkRunConfigNode(doc.Content[0]); err != nil {
		return nil, atelier.Errorf(atelier.EINVALID, "%s: %v", path, err)
	}
	var f runConfigFile
	if err := doc.Content[0].Decode(&f); err != nil {
		return nil, atelier.Errorf(atelier.EINVALID, "%s: %s", path, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	c = f.RunConfig
	if f.Timeout != "" {
		d, err := parseTimeout(f.Timeout)
		if err != nil {
			return nil, atelier.Errorf(atelier.EINVALID, "%s: timeout: %v", path, err)
		}
		c.Timeout = d.Seconds()
	}
	return &c, nil
}

// The shape of a run configuration: each key's kind of YAML node.
var runConfigShape = map[string]yaml.Kind{"script": yaml.ScalarNode, "secrets": yaml.SequenceNode, "arguments": yaml.SequenceNode,
	"compute": yaml.ScalarNode, "experiment": yaml.ScalarNode, "timeout": yaml.ScalarNode, "environment": yaml.MappingNode, "data": yaml.SequenceNode,
	"node_count": yaml.ScalarNode, "gpus": yaml.ScalarNode, "process_count_per_node": yaml.ScalarNode}

var environmentShape = map[string]yaml.Kind{"python": yaml.ScalarNode, "requirements": yaml.ScalarNode,
	"conda": yaml.ScalarNode, "variables": yaml.MappingNode}

var dataShape = map[string]yaml.Kind{"name": yaml.ScalarNode, "datastore": yaml.ScalarNode, "path": yaml.ScalarNode,
	"mode": yaml.ScalarNode}

var kindNames = map[yaml.Kind]string{yaml.ScalarNode: "a single value", yaml.SequenceNode: "a list",
	yaml.MappingNode: "a mapping of keys", yaml.AliasNode: "an alias"}

// checkShape checks a mapping against the keys it may hold, naming the line and the key of
// the first mistake (yaml's own type errors name neither).
func checkShape(n *yaml.Node, where string, shape map[string]yaml.Kind) error {
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: %s must be %s, not %s", n.Line, where, kindNames[yaml.MappingNode], kindNames[n.Kind])
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		want, ok := shape[k.Value]
		if !ok {
			keys := make([]string, 0, len(shape))
			for key := range shape {
				keys = append(keys, key)
			}
			sortStrings(keys)
			return fmt.Errorf("line %d: unknown key %q in %s (known: %s)", k.Line, k.Value, where, strings.Join(keys, ", "))
		}
		if v.Kind != want && !(v.Tag == "!!null") {
			return fmt.Errorf("line %d: %s must be %s, not %s", v.Line, k.Value, kindNames[want], kindNames[v.Kind])
		}
		switch k.Value {
		case "environment":
			if err := checkShape(v, "environment", environmentShape); err != nil {
				return err
			}
		case "data":
			for _, item := range v.Content {
				if err := checkShape(item, "each of data", dataShape); err != nil {
					return err
				}
			}
		case "arguments", "variables", "secrets":
			for j, item := range v.Content {
				if v.Kind == yaml.MappingNode && j%2 == 0 {
					continue // a variable's name
				}
				if item.Kind != yaml.ScalarNode {
					return fmt.Errorf("line %d: each of %s must be %s, not %s", item.Line, k.Value, kindNames[yaml.ScalarNode], kindNames[item.Kind])
				}
			}
		}
	}
	return nil
}

func checkRunConfigNode(n *yaml.Node) error {
	return checkShape(n, "the run configuration", runConfigShape)
}

// parseTimeout accepts Go durations ("1h30m") or seconds ("90").
func parseTimeout(s string) (time.Duration, error) {
	if secs, err := strconv.ParseFloat(s, 64); err == nil {
		return time.Duration(secs * float64(time.Second)), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is neither seconds nor a duration like 1h30m", s)
	}
	return d, nil
}

func runSubmitCmd(cfg *clientConfig) *cobra.Command {
	var (
		configPath, experiment, script, compute, python, requirements, conda, timeout, name string
		args, envVars, tags, dataRefs                                                       []string
		wait                                                                                bool
		opt                                                                                 archive.Options
	)
	var secretNames []string
	var nodeCount, gpus, processes int
	cmd := &cobra.Command{
		Use:   "submit DIR [flags] [-- SCRIPT ARGS...]",
		Short: "Submit a training script directory to run on a compute target",
		Long: `Submit a directory: it is snapshotted (honouring .amlignore, else .gitignore), uploaded
(only new files), and its script is queued on a compute target ("local" by default).

The run configuration comes from DIR/.atelier/run.yaml (or --config FILE), then the flags
override it. See docs/runconfig.md. Arguments after -- are passed to the script.

With --wait the command streams the run's status and output until it ends and exits 0 only
when the run Completed (7 when it Failed or was Canceled).`,
		Example: `  atelier run submit examples/sklearn-diabetes --experiment diabetes --script train.py --wait
  atelier run submit . --requirements requirements.txt --timeout 2h -- --epochs 10`,
		Args: func(cmd *cobra.Command, a []string) error {
			if cmd.ArgsLenAtDash() == 0 || len(a) == 0 {
				return usagef("run submit needs the source directory")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, a []string) error {
			dir := a[0]
			if dash := cmd.ArgsLenAtDash(); dash > 0 {
				args = append(args, a[dash:]...)
			} else if len(a) > 1 {
				return usagef("unexpected arguments %q: put script arguments after --", a[1:])
			}
			if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
				return usagef("%s is not a directory", dir)
			}
			rc := &atelier.RunConfig{}
			path := configPath
			if path == "" {
				if _, err := os.Stat(filepath.Join(dir, DefaultRunConfigPath)); err == nil {
					path = filepath.Join(dir, DefaultRunConfigPath)
				}
			}
			if path != "" {
				var err error
				if rc, err = loadRunConfig(path); err != nil {
					return err
				}
			}
			f := cmd.Flags()
			set := func(flag string, dst *string, v string) {
				if f.Changed(flag) {
					*dst = v
				}
			}
			set("script", &rc.Script, script)
			set("compute", &rc.Compute, compute)
			set("python", &rc.Environment.Python, python)
			set("requirements", &rc.Environment.Requirements, requirements)
			set("conda", &rc.Environment.Conda, conda)
			set("experiment", &rc.Experiment, experiment)
			if len(args) > 0 {
				rc.Arguments = args
			}
			if f.Changed("node-count") {
				rc.NodeCount = nodeCount
			}
			if f.Changed("gpus") {
				rc.GPUs = gpus
			}
			if f.Changed("process-count-per-node") {
				rc.ProcessCountPerNode = processes
			}
			if f.Changed("timeout") {
				d, err := parseTimeout(timeout)
				if err != nil {
					return usagef("--timeout: %v", err)
				}
				rc.Timeout = d.Seconds()
			}
			vars, err := parseKeyValues("env", envVars)
			if err != nil {
				return err
			}
			for k, v := range vars {
				if rc.Environment.Variables == nil {
					rc.Environment.Variables = map[string]string{}
				}
				rc.Environment.Variables[k] = v
			}
			rc.Secrets = appendNew(rc.Secrets, secretNames...)
			if err := applyDataFlags(rc, dataRefs); err != nil {
				return err
			}
			tagMap, err := parseKeyValues("tag", tags)
			if err != nil {
				return err
			}
			if rc.Experiment == "" {
				return usagef("the experiment is missing: give --experiment or 'experiment:' in the run configuration")
			}
			if err := rc.Validate(nil); err != nil {
				return err
			}
			if _, err := os.Stat(filepath.Join(dir, filepath.FromSlash(rc.Script))); err != nil {
				return atelier.Errorf(atelier.EINVALID, "script %s not found in %s", rc.Script, dir)
			}
			c, err := cfg.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			snap, err := uploadSnapshot(ctx, c, cfg.workspace, dir, opt)
			if err != nil {
				return err
			}
			run, err := c.SubmitRun(ctx, cfg.workspace, atelier.RunSubmit{Experiment: rc.Experiment, Name: name,
				SnapshotID: snap.ID, Config: *rc, Git: gitInfo(dir), Tags: tagMap})
			if err != nil {
				return err
			}
			return followSubmitted(cmd, cfg, c, run, wait)
		},
	}
	f := cmd.Flags()
	f.StringVar(&configPath, "config", "", "run configuration file (default DIR/"+DefaultRunConfigPath+")")
	f.StringVarP(&experiment, "experiment", "e", "", "experiment name")
	f.StringVar(&name, "name", "", "display name of the run")
	f.StringVar(&script, "script", "", "script to run, relative to DIR")
	f.StringVar(&compute, "compute", "", "compute target (default local)")
	f.StringVar(&python, "python", "", "python interpreter on the compute target (path or command)")
	f.StringVar(&requirements, "requirements", "", "pip requirements file, relative to DIR")
	f.StringVar(&conda, "conda", "", "conda environment file, relative to DIR")
	f.StringVar(&timeout, "timeout", "", "fail the run after this long (e.g. 90, 30m, 2h)")
	f.IntVar(&nodeCount, "node-count", 0, "nodes the run asks of a cluster target (slurm: the job's nodes; kubernetes: pods of an Indexed Job)")
	f.IntVar(&processes, "process-count-per-node", 0, "processes of the script on each node: a distributed run (slurm, kubernetes), each with RANK, WORLD_SIZE, MASTER_ADDR...")
	f.IntVar(&gpus, "gpus", 0, "GPUs per node the run asks of a cluster target (slurm: gres gpu:N)")
	f.StringArrayVar(&envVars, "env", nil, "environment variable KEY=VALUE for the script (repeatable)")
	f.StringArrayVar(&tags, "tag", nil, "tag KEY=VALUE (repeatable)")
	f.StringArrayVar(&secretNames, "secret", nil, "workspace secret NAME the script receives as $NAME, masked in its output (repeatable; see 'atelier secret')")
	f.StringArrayVar(&dataRefs, "data", nil, "data reference NAME=DATASTORE:PATH[:download|mount|upload] (repeatable; download by default)")
	f.BoolVar(&wait, "wait", false, "stream status and output until the run ends; exit 0 only if it Completed")
	snapshotFlags(cmd, &opt)
	return cmd
}

// followSubmitted prints a run just submitted (its id, or -o json the run), or with wait streams
// its status and output until it ends (run submit, run rerun).
func followSubmitted(cmd *cobra.Command, cfg *clientConfig, c *api.Client, run *atelier.Run, wait bool) error {
	ctx := cmd.Context()
	if !wait {
		if cfg.output == "json" {
			return printJSON(cmd.OutOrStdout(), run)
		}
		fmt.Fprintln(cmd.OutOrStdout(), run.ID)
		return nil
	}
	fmt.Fprintf(os.Stderr, "run %s queued on %s\n", run.ID, run.Compute)
	final, err := waitForRun(ctx, c, cfg.workspace, run.ID, cmd.OutOrStdout())
	if err != nil && ctx.Err() != nil {
		// Ctrl-C stops the following, not the run.
		return interruptedError{fmt.Sprintf("stopped following; run %s keeps running on %s (to stop it: atelier run cancel %s)", run.ID, run.Compute, run.ID)}
	}
	if err != nil {
		return err
	}
	if cfg.output == "json" {
		printJSON(cmd.OutOrStdout(), final)
	}
	if final.Status != atelier.StatusCompleted {
		return runFailedError{final}
	}
	return nil
}

// applyDataFlags adds the --data references to the configuration; one with the name of a
// configured reference replaces it.
func applyDataFlags(rc *atelier.RunConfig, flags []string) error {
	for _, fl := range flags {
		name, rest, ok := strings.Cut(fl, "=")
		if !ok || name == "" {
			return usagef("--data %q: want NAME=DATASTORE:PATH[:download|mount|upload]", fl)
		}
		ref := atelier.DataReference{Name: name, Mode: atelier.DataDownload}
		ref.Datastore, ref.Path, _ = strings.Cut(rest, ":")
		for _, m := range []string{atelier.DataDownload, atelier.DataMount, atelier.DataUpload} {
			// lake:out/:upload; lake::upload is the whole datastore.
			if p, ok := strings.CutSuffix(ref.Path, ":"+m); ok {
				ref.Path, ref.Mode = p, m
				break
			}
		}
		if ref.Datastore == "" {
			return usagef("--data %q: the datastore is missing: want NAME=DATASTORE:PATH[:download|mount|upload]", fl)
		}
		replaced := false
		for i := range rc.Data {
			if rc.Data[i].Name == name {
				rc.Data[i], replaced = ref, true
			}
		}
		if !replaced {
			rc.Data = append(rc.Data, ref)
		}
	}
	return nil
}

// runFailedError makes the process exit with exitRunFailed.
type runFailedError struct{ run *atelier.Run }

func (e runFailedError) Error() string {
	msg := fmt.Sprintf("run %s %s", e.run.ID, e.run.Status)
	if e.run.Error != "" {
		msg += ": " + e.run.Error
	}
	return msg
}

// waitForRun prints status changes to stderr and the run's output to out until the run ends.
func waitForRun(ctx context.Context, c *api.Client, workspace, id string, out io.Writer) (*atelier.Run, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	events, err := c.Subscribe(ctx, workspace, atelier.EventFilter{RunID: id, Types: []string{atelier.EventRunStatus}})
	if err != nil {
		return nil, err
	}
	// While the run prepares (pip may take minutes), the preparation's log goes to stderr
	// with the statuses; it stops when the script starts.
	prepCtx, stopPrep := context.WithCancel(ctx)
	prepDone := make(chan struct{})
	defer func() { stopPrep(); <-prepDone }()
	go func() {
		defer close(prepDone)
		var offset int64
		copyFrom := func(ctx context.Context, follow bool) {
			if rc, err := c.FollowLog(ctx, workspace, id, PrepareLogPath, offset, follow); err == nil {
				n, _ := io.Copy(os.Stderr, rc)
				rc.Close()
				offset += n
			}
		}
		for prepCtx.Err() == nil {
			copyFrom(prepCtx, true)
			select { // not written yet, or the stream dropped
			case <-prepCtx.Done():
			case <-time.After(200 * time.Millisecond):
			}
		}
		if ctx.Err() == nil {
			copyFrom(ctx, false) // what the preparation wrote since the stream's last read
		}
	}()
	go func() {
		for e := range events {
			fmt.Fprintf(os.Stderr, "[%s] %s\n", e.Time.Local().Format("15:04:05"), summarizeEvent(e))
			if st := atelier.RunStatus(eventText(e)); st != atelier.StatusQueued && st != atelier.StatusPreparing {
				stopPrep()
			}
		}
	}()
	// The log stream ends when the run ends; it is read from where it was left after a
	// connection drops.
	var offset int64
	for {
		rc, err := c.FollowLog(ctx, workspace, id, DefaultLogPath, offset, true)
		if err == nil {
			n, _ := io.Copy(out, rc)
			rc.Close()
			offset += n
		} else if atelier.ErrorCode(err) != atelier.ENOTFOUND {
			return nil, err
		}
		run, err := c.FindRun(ctx, workspace, id)
		if err != nil {
			return nil, err
		}
		if run.Status.Terminal() {
			return run, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// appendNew appends the names list does not hold yet.
func appendNew(list []string, names ...string) []string {
	for _, n := range names {
		found := false
		for _, have := range list {
			found = found || have == n
		}
		if !found {
			list = append(list, n)
		}
	}
	return list
}
