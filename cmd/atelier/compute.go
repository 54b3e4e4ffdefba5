package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/atelier-ml/atelier"
	"github.com/spf13/cobra"
)

func newComputeCmd(cfg *clientConfig) *cobra.Command {
	cmd := &cobra.Command{Use: "compute", Short: "List, create, attach and detach compute targets",
		Long: `A compute target is where submitted runs execute. Every workspace has the built-in target
"local", this server's machine. A workspace may create more local targets (another queue with
its own limit of concurrent runs) and attach remote ones: an SSH machine (ssh), a Slurm
cluster (slurm), a Kubernetes namespace (kubernetes) or a Podman service (podman). A target's
credentials are stored encrypted on the server and never shown again.`}
	cmd.AddCommand(computeListCmd(cfg), computeShowCmd(cfg), computeCreateCmd(cfg), computeAttachCmd(cfg), computeDetachCmd(cfg))
	return cmd
}

func computeListCmd(cfg *clientConfig) *cobra.Command {
	return &cobra.Command{
		Use: "list", Short: "List compute targets with their queues", Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cfg.client()
			if err != nil {
				return err
			}
			list, err := c.ListComputeTargets(cmd.Context(), cfg.workspace)
			if err != nil {
				return err
			}
			if cfg.output == "json" {
				return printJSON(cmd.OutOrStdout(), list)
			}
			t := newTable(cmd.OutOrStdout(), "NAME", "KIND", "MAX CONCURRENT", "QUEUED", "RUNNING", "WHERE", "ISOLATION")
			for _, ct := range list {
				t.row(ct.Name, ct.Kind, ct.MaxConcurrentRuns, ct.Queued, ct.Running, computeWhere(ct), ct.Isolation)
			}
			return t.flush()
		},
	}
}

// computeWhere says where a target's runs execute, in one cell.
func computeWhere(t *atelier.ComputeTarget) string {
	switch {
	case t.SSH != nil:
		return fmt.Sprintf("%s@%s:%d", t.SSH.User, t.SSH.Host, t.SSH.Port)
	case t.Slurm != nil:
		if t.Slurm.Partition != "" {
			return t.Slurm.URL + " (" + t.Slurm.Partition + ")"
		}
		return t.Slurm.URL
	case t.Kubernetes != nil:
		return "namespace " + t.Kubernetes.Namespace
	case t.Podman != nil:
		if t.Podman.URL == "" {
			return "(default podman socket)"
		}
		return t.Podman.URL
	case t.Kind == atelier.ComputeLocal:
		return "(this server's machine)"
	}
	return ""
}

func computeShowCmd(cfg *clientConfig) *cobra.Command {
	return &cobra.Command{
		Use: "show NAME", Short: "Show a compute target: its kind, configuration, queue, isolation and what it has", Args: exactArgs(1),
		Long: `Show a compute target: its kind, configuration, queue and isolation, and what the target
says it has when asked (within 5 seconds): its nodes (idle, allocated or unavailable), CPUs,
memory and GPUs, and a Slurm cluster's partitions. A target that does not answer is shown
anyway, with the reason in place of its capacity.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cfg.client()
			if err != nil {
				return err
			}
			ct, err := c.FindComputeTarget(cmd.Context(), cfg.workspace, args[0])
			if err != nil {
				return err
			}
			return printComputeTarget(cmd, cfg, ct)
		},
	}
}

func printComputeTarget(cmd *cobra.Command, cfg *clientConfig, ct *atelier.ComputeTarget) error {
	if cfg.output == "json" {
		return printJSON(cmd.OutOrStdout(), ct)
	}
	t := newTable(cmd.OutOrStdout(), "FIELD", "VALUE")
	t.row("name", ct.Name)
	t.row("kind", ct.Kind)
	if ct.BuiltIn {
		t.row("built in", true)
	}
	if ct.Description != "" {
		t.row("description", ct.Description)
	}
	t.row("where", computeWhere(ct))
	t.row("max concurrent runs", ct.MaxConcurrentRuns)
	t.row("queued", ct.Queued)
	t.row("running", ct.Running)
	if ct.Isolation != "" {
		t.row("isolation", ct.Isolation)
	}
	switch {
	case ct.SSH != nil && ct.SSH.HostKey != "":
		t.row("host key", ct.SSH.HostKey)
	case ct.Slurm != nil:
		if ct.Slurm.Account != "" {
			t.row("account", ct.Slurm.Account)
		}
		if ct.Slurm.TokenSecret != "" {
			t.row("token secret", ct.Slurm.TokenSecret)
		}
		if ct.Slurm.Runner != "" {
			t.row("runner", ct.Slurm.Runner)
		}
		if ct.Slurm.WorkDir != "" {
			t.row("work dir", ct.Slurm.WorkDir)
		}
	case ct.Kubernetes != nil:
		if ct.Kubernetes.Context != "" {
			t.row("context", ct.Kubernetes.Context)
		}
		if ct.Kubernetes.Image != "" {
			t.row("image", ct.Kubernetes.Image)
		}
		if ct.Kubernetes.CPU != "" {
			t.row("cpu", ct.Kubernetes.CPU)
		}
		if ct.Kubernetes.Memory != "" {
			t.row("memory", ct.Kubernetes.Memory)
		}
		for k, v := range ct.Kubernetes.NodeSelector {
			t.row("node selector", k+"="+v)
		}
		for _, tol := range ct.Kubernetes.Tolerations {
			s := tol.Key
			if tol.Value != "" {
				s += "=" + tol.Value
			}
			if tol.Effect != "" {
				s += ":" + tol.Effect
			}
			t.row("toleration", s)
		}
	case ct.Podman != nil:
		if ct.Podman.Image != "" {
			t.row("image", ct.Podman.Image)
		}
		if ct.Podman.CPUs > 0 {
			t.row("cpus", ct.Podman.CPUs)
		}
		if ct.Podman.MemoryGB > 0 {
			t.row("memory", fmt.Sprintf("%g GB", ct.Podman.MemoryGB))
		}
	}
	printCapacity(t, ct)
	if !ct.BuiltIn {
		t.row("credentials", strings.Join(ct.Credentials, ", "))
		t.row("activity", ct.Activity)
		if ct.CreatedAt != nil {
			t.row("created", *ct.CreatedAt)
		}
		t.row("created by", ct.CreatedBy)
	}
	return t.flush()
}

// printCapacity adds what a target told of itself to a show's table: its nodes (how many are
// idle, allocated or unavailable), CPUs, memory, GPUs, Slurm partitions and, for a few nodes,
// each node; or why it told nothing.
func printCapacity(t *table, ct *atelier.ComputeTarget) {
	if ct.CapacityError != "" {
		t.row("capacity", "unknown: "+ct.CapacityError)
	}
	c := ct.Capacity
	if c == nil {
		return
	}
	tot := c.Totals
	var parts []string
	if tot.IdleNodes+tot.AllocatedNodes > 0 {
		parts = append(parts, fmt.Sprintf("%d idle", tot.IdleNodes), fmt.Sprintf("%d allocated", tot.AllocatedNodes))
	} else if tot.ReadyNodes != tot.Nodes {
		parts = append(parts, fmt.Sprintf("%d ready", tot.ReadyNodes))
	}
	if down := tot.Nodes - tot.ReadyNodes; down > 0 {
		parts = append(parts, fmt.Sprintf("%d unavailable", down))
	}
	nodes := strconv.Itoa(tot.Nodes)
	if len(parts) > 0 {
		nodes += " (" + strings.Join(parts, ", ") + ")"
	}
	t.row("nodes", nodes)
	t.row("cpus", tot.CPUs)
	t.row("memory", humanBytes(tot.MemoryBytes))
	gpus := strconv.Itoa(tot.GPUs)
	var kinds []string
	for _, n := range c.Nodes {
		if n.GPUType != "" && !slices.Contains(kinds, n.GPUType) {
			kinds = append(kinds, n.GPUType)
		}
	}
	if len(kinds) > 0 {
		gpus += " (" + strings.Join(kinds, ", ") + ")"
	}
	t.row("gpus", gpus)
	for _, p := range c.Partitions {
		desc := []string{p.State, count(p.Nodes, "node")}
		if p.Default {
			desc = append([]string{"default"}, desc...)
		}
		if p.MaxTimeMinutes > 0 {
			desc = append(desc, "max time "+(time.Duration(p.MaxTimeMinutes)*time.Minute).String())
		} else {
			desc = append(desc, "no time limit")
		}
		t.row("partition", p.Name+" ("+strings.Join(desc, ", ")+")")
	}
	if tot.Nodes > 1 && tot.Nodes <= 16 {
		for _, n := range c.Nodes {
			desc := fmt.Sprintf("%s %s, %d cpus, %s", n.Name, n.State, n.CPUs, humanBytes(n.MemoryBytes))
			if n.GPUs > 0 {
				desc += ", " + count(n.GPUs, "gpu")
			}
			t.row("node", desc)
		}
	}
	t.row("observed", c.ObservedAt)
}

// count says "1 node", "2 nodes".
func count(n int, what string) string {
	return strconv.Itoa(n) + " " + plural(n, what, what+"s")
}

// computeFlags are the flags of create and attach.
type computeFlags struct {
	spec                                      atelier.ComputeTargetSpec
	host, user, hostKey, key, keyPassphrase   string
	port                                      int
	url, partition, account, tokenSecret      string
	token, kubeconfig, namespace, kctx, image string
	runner, workDir                           string
	cpus, memoryGB                            float64
	k8sCPU, k8sMemory                         string
	nodeSelector, tolerations                 []string
}

func (f *computeFlags) addCommon(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.spec.Kind, "kind", "", "the target's kind")
	fl.StringVar(&f.spec.Description, "description", "", "what the target is for")
	fl.IntVar(&f.spec.MaxConcurrentRuns, "max-concurrent-runs", 0, "runs it executes at once; more wait as Queued (default 1)")
}

func (f *computeFlags) addRemote(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.host, "host", "", "ssh: the machine's host name or address")
	fl.IntVar(&f.port, "port", 0, "ssh: the SSH port (default 22)")
	fl.StringVar(&f.user, "user", "", "ssh: the account runs execute as")
	fl.StringVar(&f.key, "key", "", "ssh: the private key file ('-' reads it from stdin); stored encrypted, never shown")
	fl.StringVar(&f.keyPassphrase, "key-passphrase", "", "ssh: the key's passphrase ('-' reads it from stdin)")
	fl.StringVar(&f.hostKey, "host-key", "", "ssh: the machine's public host key ('ssh-ed25519 AAAA...'), checked on connect")
	fl.StringVar(&f.url, "url", "", "slurm: slurmrestd's URL; podman: the service (unix:///run/podman/podman.sock, tcp://, ssh://)")
	fl.StringVar(&f.partition, "partition", "", "slurm: the partition")
	fl.StringVar(&f.account, "account", "", "slurm: the account")
	fl.StringVar(&f.tokenSecret, "token-secret", "", "slurm: the workspace secret holding the JWT (see 'atelier secret set')")
	fl.StringVar(&f.token, "token", "", "slurm: the JWT itself ('-' reads it from stdin); stored encrypted, never shown")
	fl.StringVar(&f.runner, "runner", "", "slurm: the atelier binary on the nodes (default the server's own path)")
	fl.StringVar(&f.workDir, "work-dir", "", "slurm: a directory on the nodes' shared filesystem for the jobs (default the server's <data>/slurm)")
	fl.StringVar(&f.kubeconfig, "kubeconfig", "", "kubernetes: a kubeconfig file; stored encrypted, never shown (none: the server's in-cluster account)")
	fl.StringVar(&f.namespace, "namespace", "", "kubernetes: the namespace")
	fl.StringVar(&f.kctx, "context", "", "kubernetes: the kubeconfig context (default its current one)")
	fl.StringVar(&f.image, "image", "", "kubernetes, podman: the image the runner runs in (default the server's)")
	fl.Float64Var(&f.cpus, "cpus", 0, "podman: the CPUs each run's container may use (default no limit)")
	fl.Float64Var(&f.memoryGB, "memory-gb", 0, "podman: the memory each run's container may use, in GB (default no limit)")
	fl.StringVar(&f.k8sCPU, "cpu", "", "kubernetes: each pod's CPU request (a quantity: 4, 500m)")
	fl.StringVar(&f.k8sMemory, "memory", "", "kubernetes: each pod's memory request and limit (a quantity: 16Gi)")
	fl.StringArrayVar(&f.nodeSelector, "node-selector", nil, "kubernetes: a node label the pods need, KEY=VALUE (repeatable)")
	fl.StringArrayVar(&f.tolerations, "toleration", nil, "kubernetes: a taint the pods tolerate, KEY[=VALUE][:EFFECT] (repeatable; KEY alone: any value)")
}

// computeFlagKinds says which kinds each remote flag applies to.
var computeFlagKinds = []struct{ flag, kinds string }{
	{"host", "ssh"}, {"port", "ssh"}, {"user", "ssh"}, {"key", "ssh"}, {"key-passphrase", "ssh"}, {"host-key", "ssh"},
	{"url", "slurm podman"}, {"partition", "slurm"}, {"account", "slurm"}, {"token-secret", "slurm"}, {"token", "slurm"}, {"runner", "slurm"}, {"work-dir", "slurm"},
	{"kubeconfig", "kubernetes"}, {"namespace", "kubernetes"}, {"context", "kubernetes"}, {"image", "kubernetes podman"},
	{"cpus", "podman"}, {"memory-gb", "podman"},
	{"cpu", "kubernetes"}, {"memory", "kubernetes"}, {"node-selector", "kubernetes"}, {"toleration", "kubernetes"},
}

// build makes the spec of the flags: the block of the kind, the credentials read from their
// files or stdin. A flag of another kind is refused.
func (f *computeFlags) build(cmd *cobra.Command, name string) (atelier.ComputeTargetSpec, error) {
	spec := f.spec
	spec.Name = name
	for _, fk := range computeFlagKinds {
		if fl := cmd.Flags().Lookup(fk.flag); fl != nil && fl.Changed && !slices.Contains(strings.Fields(fk.kinds), spec.Kind) {
			return spec, usagef("--%s applies to %s targets, not to a %s one", fk.flag, strings.ReplaceAll(fk.kinds, " ", " and "), spec.Kind)
		}
	}
	stdinUsed := false
	// secret reads a credential: a file's content, or with '-' standard input.
	secret := func(flag, v string, file bool) (string, error) {
		var b []byte
		var err error
		switch {
		case v == "":
			return "", nil
		case v == "-":
			if stdinUsed {
				return "", usagef("only one flag may read standard input")
			}
			stdinUsed = true
			b, err = io.ReadAll(io.LimitReader(cmd.InOrStdin(), atelier.MaxComputeSecret+1))
			if !file {
				b = bytes.TrimSpace(b)
			}
		case file:
			b, err = os.ReadFile(v)
		default:
			return v, nil
		}
		if err != nil {
			return "", usagef("cannot read --%s: %v", flag, err)
		}
		return string(b), nil
	}
	var err error
	creds := &spec.Credentials
	switch spec.Kind {
	case atelier.ComputeSSH:
		spec.SSH = &atelier.SSHCompute{Host: f.host, Port: f.port, User: f.user, HostKey: strings.TrimSpace(f.hostKey)}
		if creds.SSHPrivateKey, err = secret("key", f.key, true); err != nil {
			return spec, err
		}
		creds.SSHPassphrase, err = secret("key-passphrase", f.keyPassphrase, false)
	case atelier.ComputeSlurm:
		spec.Slurm = &atelier.SlurmCompute{URL: f.url, Partition: f.partition, Account: f.account, TokenSecret: f.tokenSecret,
			Runner: f.runner, WorkDir: f.workDir}
		creds.Token, err = secret("token", f.token, false)
	case atelier.ComputeKubernetes:
		spec.Kubernetes = &atelier.KubernetesCompute{Namespace: f.namespace, Context: f.kctx, Image: f.image, CPU: f.k8sCPU, Memory: f.k8sMemory}
		for _, kv := range f.nodeSelector {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				return spec, usagef("--node-selector %q: want KEY=VALUE", kv)
			}
			if spec.Kubernetes.NodeSelector == nil {
				spec.Kubernetes.NodeSelector = map[string]string{}
			}
			spec.Kubernetes.NodeSelector[k] = v
		}
		for _, tol := range f.tolerations {
			kv, effect, _ := strings.Cut(tol, ":")
			k, v, hasValue := strings.Cut(kv, "=")
			t := atelier.KubernetesToleration{Key: k, Value: v, Effect: effect, Operator: "Equal"}
			if !hasValue {
				t.Operator = "Exists"
			}
			spec.Kubernetes.Tolerations = append(spec.Kubernetes.Tolerations, t)
		}
		creds.Kubeconfig, err = secret("kubeconfig", f.kubeconfig, true)
	case atelier.ComputePodman:
		spec.Podman = &atelier.PodmanCompute{URL: f.url, Image: f.image, CPUs: f.cpus, MemoryGB: f.memoryGB}
	}
	return spec, err
}

// createCompute validates the spec here (so a typo costs no request), then creates it.
func createCompute(cmd *cobra.Command, cfg *clientConfig, spec atelier.ComputeTargetSpec, verb string) error {
	if err := spec.Validate(); err != nil {
		return usagef("%s", atelier.ErrorMessage(err))
	}
	c, err := cfg.client()
	if err != nil {
		return err
	}
	ct, err := c.CreateComputeTarget(cmd.Context(), cfg.workspace, spec)
	if err != nil {
		return err
	}
	cfg.done("compute target %s %s in workspace %s (activity %s)", ct.Name, verb, cfg.workspace, ct.Activity)
	return printComputeTarget(cmd, cfg, ct)
}

func computeCreateCmd(cfg *clientConfig) *cobra.Command {
	var f computeFlags
	cmd := &cobra.Command{
		Use:   "create NAME --kind local [--max-concurrent-runs N] [--description TEXT]",
		Short: "Create a local compute target: another queue on this server's machine",
		Long: `Create a local compute target: runs submitted to it execute on this server's machine, at
most --max-concurrent-runs at a time (more wait as Queued), beside those of the built-in
"local". Remote machines are attached instead ('atelier compute attach').`,
		Example: `  atelier compute create cpu4 --kind local --max-concurrent-runs 4 --description "four at a time"`,
		Args:    exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if f.spec.Kind == "" {
				f.spec.Kind = atelier.ComputeLocal
			}
			if f.spec.Kind != atelier.ComputeLocal {
				return usagef("create makes local targets; a %s target is attached: atelier compute attach %s --kind %s ...", f.spec.Kind, args[0], f.spec.Kind)
			}
			spec, err := f.build(cmd, args[0])
			if err != nil {
				return err
			}
			return createCompute(cmd, cfg, spec, "created")
		},
	}
	f.addCommon(cmd)
	cmd.Flags().Lookup("kind").Usage = "local (the default)"
	return cmd
}

func computeAttachCmd(cfg *clientConfig) *cobra.Command {
	var f computeFlags
	cmd := &cobra.Command{
		Use:   "attach NAME --kind ssh|slurm|kubernetes|podman [flags]",
		Short: "Attach a remote compute target",
		Long: `Attach a remote compute target. The server checks it (through its driver for the kind) before
storing it; the check is an activity ('atelier activity list'). Each kind takes its own flags:

  ssh         --host H --user U --key FILE [--port P --host-key 'ssh-ed25519 AAAA...' --key-passphrase -]
  slurm       --url URL (--token-secret NAME | --token -) [--partition P --account A --runner PATH --work-dir DIR]
  kubernetes  --namespace NS [--kubeconfig FILE --context C --image IMAGE --cpu Q --memory Q
              --node-selector K=V --toleration K[=V][:EFFECT]]
  podman      [--url unix:///run/podman/podman.sock --image IMAGE --cpus N --memory-gb GB]

Credentials (--key, --key-passphrase, --token, --kubeconfig) are stored encrypted on the
server and never shown again; '-' reads a value from stdin. A kind this server has no driver
for is refused, naming the kinds it has.`,
		Example: `  atelier compute attach gpu-box --kind ssh --host 10.0.0.7 --user ml --key ~/.ssh/id_ed25519
  atelier compute attach hpc --kind slurm --url http://slurm:6820 --token-secret SLURM_JWT --partition gpu
  atelier compute attach k8s --kind kubernetes --kubeconfig ~/.kube/config --namespace ml`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			switch f.spec.Kind {
			case "":
				return usagef("--kind is required: ssh, slurm, kubernetes or podman")
			case atelier.ComputeLocal:
				return usagef("a local target is created, not attached: atelier compute create %s --kind local", args[0])
			}
			spec, err := f.build(cmd, args[0])
			if err != nil {
				return err
			}
			return createCompute(cmd, cfg, spec, "attached")
		},
	}
	f.addCommon(cmd)
	cmd.Flags().Lookup("kind").Usage = "ssh, slurm, kubernetes or podman"
	f.addRemote(cmd)
	return cmd
}

func computeDetachCmd(cfg *clientConfig) *cobra.Command {
	return &cobra.Command{
		Use: "detach NAME", Short: "Detach a compute target (refused while runs are queued or active on it)", Args: exactArgs(1),
		Long: `Detach a compute target: the server forgets its configuration and credentials; nothing is
done on its machine. It is refused while runs are queued or active on the target (cancel them
with 'atelier run cancel RUN_ID', or let them end). The built-in "local" cannot be detached.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cfg.client()
			if err != nil {
				return err
			}
			if err := c.DetachComputeTarget(cmd.Context(), cfg.workspace, args[0]); err != nil {
				return err
			}
			if cfg.output == "json" {
				return printJSON(cmd.OutOrStdout(), map[string]string{"detached": args[0]})
			}
			cfg.done("compute target %s detached from workspace %s", args[0], cfg.workspace)
			return nil
		},
	}
}
