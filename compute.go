package atelier

import (
	"context"
	"io"
	"net/url"
	"path"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"
)

// ComputeTarget is where runs execute. Every workspace has "local": this server's machine.
type ComputeTarget struct {
	Name              string `json:"name"`
	Kind              string `json:"kind"` // local, ssh, slurm, kubernetes or podman (see ComputeKinds)
	MaxConcurrentRuns int    `json:"max_concurrent_runs"`
	Queued            int    `json:"queued"`
	Running           int    `json:"running"`
	// Isolation names what keeps a run's script from the server's data on the target's
	// machine ("user+namespace+landlock-v7"), "none" when nothing does.
	Isolation string `json:"isolation,omitempty"`

	// The rest is a workspace's stored target (see ComputeTargetStore); the built-in "local"
	// has none of it but BuiltIn.
	Workspace   string `json:"workspace,omitempty"`
	Description string `json:"description,omitempty"`
	// BuiltIn marks a target of the server's own configuration (local): it cannot be
	// created, attached or detached.
	BuiltIn bool `json:"built_in,omitempty"`
	// The configuration of the target's kind: exactly the block of its kind is set (none for
	// a local target).
	SSH        *SSHCompute        `json:"ssh,omitempty"`
	Slurm      *SlurmCompute      `json:"slurm,omitempty"`
	Kubernetes *KubernetesCompute `json:"kubernetes,omitempty"`
	Podman     *PodmanCompute     `json:"podman,omitempty"`
	// Credentials names the credentials stored (e.g. "ssh_private_key"), never their values.
	Credentials []string `json:"credentials,omitempty"`
	// Activity is the id of the activity that created or attached the target (its check).
	Activity  string     `json:"activity,omitempty"`
	CreatedAt *time.Time `json:"created_at,omitempty"`
	CreatedBy string     `json:"created_by,omitempty"`

	// Capacity is what the target told of itself when shown alone (see ComputeDescriber);
	// CapacityError says in a line why it told nothing (unreachable, refused). Neither is
	// stored, and a list shows neither.
	Capacity      *ComputeCapacity `json:"capacity,omitempty"`
	CapacityError string           `json:"capacity_error,omitempty"`

	// Sealed is the encrypted ComputeCredentials, opaque to the store. It is never sent.
	Sealed []byte `json:"-"`
}

// ComputeService lists compute targets and submits and cancels runs on them.
type ComputeService interface {
	ListComputeTargets(ctx context.Context, workspace string) ([]*ComputeTarget, error)
	// SubmitRun queues a script run on a compute target.
	SubmitRun(ctx context.Context, workspace string, s RunSubmit) (*Run, error)
	// CancelRun cancels a queued run at once and asks an active one to stop.
	CancelRun(ctx context.Context, workspace, id string) (*Run, error)
}

// Job is a run handed to an executor.
type Job struct {
	Run      *Run
	Config   RunConfig
	Snapshot *Snapshot
	// Env is the run context the script receives (server URL, workspace, run id, MLflow's
	// tracking URI and run id).
	Env map[string]string
	// Secrets are the decrypted secrets the configuration names, by name, and the run's token
	// (ATELIER_TOKEN, MLFLOW_TRACKING_TOKEN): the executor puts them in the script's
	// environment and masks their values in what it captures.
	Secrets map[string]string
}

// JobResult is how a job ended.
type JobResult struct {
	ExitCode *int
	// Status is the run's final status: Completed, Failed or Canceled.
	Status RunStatus
	Error  string
}

// JobHost is what an executor needs from the server while it runs a job.
type JobHost interface {
	OpenObject(ctx context.Context, digest string) (io.ReadCloser, error)
	// SetStatus records Preparing, Running and Finalizing.
	SetStatus(ctx context.Context, job *Job, status RunStatus) error
	AppendLog(ctx context.Context, job *Job, path string, data []byte) error
	UploadFile(ctx context.Context, job *Job, path string, r io.Reader) error

	// ListData lists the datastore files a data reference of the job names: the file at its
	// path, or else every file under it as a folder. Paths are datastore paths.
	ListData(ctx context.Context, job *Job, ref DataReference) ([]*DatastoreFile, error)
	// OpenData reads a datastore file of the reference.
	OpenData(ctx context.Context, job *Job, ref DataReference, path string) (io.ReadCloser, error)
	// WriteData stores r as the datastore file path, which must be inside the reference's folder.
	WriteData(ctx context.Context, job *Job, ref DataReference, path string, r io.Reader) error
}

// Executor runs jobs on one kind of compute target.
type Executor interface {
	// Run executes a job and blocks until it ends. Canceling ctx cancels the job (the result
	// is then Canceled); the executor leaves no process behind either way.
	Run(ctx context.Context, host JobHost, job *Job) JobResult
}

// DefaultCancelGrace is how long a canceled script gets between SIGTERM and SIGKILL.
const DefaultCancelGrace = 10 * time.Second

// ComputeDriver launches and observes jobs on one kind of compute target. A job's phases
// (snapshot, data, environment, script, logs, outputs, its end) happen in the in-job runner
// (`atelier job exec`) the driver starts where the script runs, talking to the server with the
// run's token; the driver only launches it and says what became of it. A job's handle is the
// driver's name for it (a pid and start time, a Slurm job id, a Kubernetes Job uid): it is kept
// with the run's lease and outlives the server, so a restarted server (or another replica)
// asks the driver about it. Every driver passes the computetest suite.
type ComputeDriver interface {
	// Launch starts the runner of a claimed run and returns the job's handle. An error means
	// nothing was started.
	Launch(ctx context.Context, l *JobLaunch) (handle string, err error)
	// Status says what became of a job. A handle the driver cannot read is EINVALID.
	Status(ctx context.Context, handle string) (JobState, error)
	// Cancel asks a job to stop: its runner stops the script and records the end (Canceled
	// when the run was asked to cancel). Canceling a job that has ended is not an error.
	Cancel(ctx context.Context, handle string) error
	// Logs returns the runner's own output from offset (what it said besides the run's
	// logs: why it could not start, why it stopped).
	Logs(ctx context.Context, handle string, offset int64) (io.ReadCloser, error)
	// Release forgets a job that has ended: its files on the target.
	Release(ctx context.Context, handle string) error
}

// JobLaunch is what a driver needs to start a run's runner.
type JobLaunch struct {
	Run *Run
	// Server is the URL the runner reaches the server at. Token is the runner's (its word
	// ends the run); ScriptToken is the one the script gets (ATELIER_TOKEN), which cannot end
	// its own run while it runs.
	Server      string
	Token       string
	ScriptToken string
	// Secrets are the decrypted secrets the run's configuration names, by name.
	Secrets map[string]string
	// Target is the workspace's stored compute target the run executes on, with its
	// credentials decrypted (nil for a server's built-in target). A driver serving many
	// targets of its kind puts what it needs of the target into the job's handle.
	Target      *ComputeTarget
	Credentials ComputeCredentials
}

// JobPhase is where a launched job is, as its driver sees it.
type JobPhase string

const (
	JobRunning JobPhase = "Running" // the runner is alive
	JobExited  JobPhase = "Exited"  // the runner ended; ExitCode says how
	JobGone    JobPhase = "Gone"    // the job is not known to the target (vanished, or its handle names another)
)

// JobState is what a driver knows of a job.
type JobState struct {
	Phase JobPhase
	// ExitCode is the runner's exit code when Exited (0: it recorded a Completed run; see
	// `atelier job exec --help`).
	ExitCode int
	// Detail says in a sentence what the driver saw (why a job is Gone, why it is Queued).
	Detail string
	// Queued says a Running job waits in the target's own queue (a Slurm job PENDING): its
	// runner has not started, and Detail says why it waits. The server writes each new
	// Detail in the run's preparation log (logs/prepare_log.txt).
	Queued bool
}

// Compute target kinds. "local" is also the name of the built-in target every workspace has
// (DefaultCompute); a workspace may create more local targets (another queue and concurrency
// limit on the server's machine) and attach remote ones.
const (
	ComputeLocal      = "local"
	ComputeSSH        = "ssh"
	ComputeSlurm      = "slurm"
	ComputeKubernetes = "kubernetes"
	ComputePodman     = "podman"
)

// ComputeKinds lists the kinds a compute target may have, in the order users read them.
var ComputeKinds = []string{ComputeLocal, ComputeSSH, ComputeSlurm, ComputeKubernetes, ComputePodman}

// MaxComputeConcurrentRuns bounds a target's max_concurrent_runs.
const MaxComputeConcurrentRuns = 1000

// MaxComputeSecret bounds each credential of a compute target (a kubeconfig with embedded
// certificates is a few KB).
const MaxComputeSecret = 64 << 10

// SSHCompute is the configuration of an ssh target: a machine reached over SSH with a key.
type SSHCompute struct {
	Host string `json:"host"`
	// Port is 22 when zero.
	Port int    `json:"port,omitempty"`
	User string `json:"user"`
	// HostKey is the machine's public host key ("ssh-ed25519 AAAA..."), checked on connect;
	// empty means it is learned on first connect.
	HostKey string `json:"host_key,omitempty"`
}

// SlurmCompute is the configuration of a slurm target: a cluster's slurmrestd.
type SlurmCompute struct {
	URL       string `json:"url"`
	Partition string `json:"partition,omitempty"`
	Account   string `json:"account,omitempty"`
	// TokenSecret names the workspace secret (see 'atelier secret') holding the JWT the
	// server sends to slurmrestd; the token may instead be given as a credential.
	TokenSecret string `json:"token_secret,omitempty"`
	// Runner is the atelier binary on the cluster's nodes, of this server's version; empty
	// for the server's own path (a server on the cluster's shared filesystem).
	Runner string `json:"runner,omitempty"`
	// WorkDir is a directory on a filesystem the nodes share, where each job gets its own
	// directory; empty for the server's (<data>/slurm), which suits a server on the cluster.
	WorkDir string `json:"work_dir,omitempty"`
}

// KubernetesCompute is the configuration of a kubernetes target: a namespace of a cluster.
type KubernetesCompute struct {
	Namespace string `json:"namespace"`
	// Context is the kubeconfig context to use; empty for its current one.
	Context string `json:"context,omitempty"`
	// Image runs the in-job runner; empty for the server's default.
	Image string `json:"image,omitempty"`
	// CPU and Memory are each pod's requests (Kubernetes quantities: "4", "500m", "16Gi"; the
	// memory is its limit too); empty asks for none.
	CPU    string `json:"cpu,omitempty"`
	Memory string `json:"memory,omitempty"`
	// NodeSelector and Tolerations place the pods (as a pod spec's).
	NodeSelector map[string]string      `json:"node_selector,omitempty"`
	Tolerations  []KubernetesToleration `json:"tolerations,omitempty"`
}

// KubernetesToleration is a pod's toleration of a node taint.
type KubernetesToleration struct {
	Key string `json:"key,omitempty"`
	// Operator is Equal (the default) or Exists.
	Operator string `json:"operator,omitempty"`
	Value    string `json:"value,omitempty"`
	// Effect is NoSchedule, PreferNoSchedule or NoExecute; empty for all.
	Effect string `json:"effect,omitempty"`
}

// PodmanCompute is the configuration of a podman target: a Podman service's API.
type PodmanCompute struct {
	// URL is the service: unix:///path, tcp://host:port or ssh://user@host/path; empty for
	// the server user's default socket.
	URL string `json:"url,omitempty"`
	// Image runs the in-job runner; empty for the server's default.
	Image string `json:"image,omitempty"`
	// CPUs and MemoryGB limit each run's container (podman --cpus, --memory); zero for no limit.
	CPUs     float64 `json:"cpus,omitempty"`
	MemoryGB float64 `json:"memory_gb,omitempty"`
}

// Bounds of a podman target's limits.
const (
	MaxPodmanCPUs     = 1024
	MaxPodmanMemoryGB = 16384
)

// ComputeCredentials are a compute target's secrets: sealed with the server's master key and
// never returned. Only the fields of the target's kind apply.
type ComputeCredentials struct {
	SSHPrivateKey string `json:"ssh_private_key,omitempty"`
	SSHPassphrase string `json:"ssh_passphrase,omitempty"`
	Kubeconfig    string `json:"kubeconfig,omitempty"`
	Token         string `json:"token,omitempty"`
}

func (c *ComputeCredentials) fields() []struct {
	name  string
	value *string
} {
	return []struct {
		name  string
		value *string
	}{{"ssh_private_key", &c.SSHPrivateKey}, {"ssh_passphrase", &c.SSHPassphrase}, {"kubeconfig", &c.Kubeconfig}, {"token", &c.Token}}
}

// Names lists the credentials that are set, by their JSON names.
func (c ComputeCredentials) Names() []string {
	names := []string{}
	for _, f := range c.fields() {
		if *f.value != "" {
			names = append(names, f.name)
		}
	}
	return names
}

// Validate checks the credentials against the kind of target they are for.
func (c ComputeCredentials) Validate(kind string) error {
	for _, f := range c.fields() {
		if len(*f.value) > MaxComputeSecret || !utf8.ValidString(*f.value) || strings.ContainsRune(*f.value, 0) {
			return Errorf(EINVALID, "credentials.%s must be valid UTF-8 of at most %d bytes", f.name, MaxComputeSecret)
		}
	}
	allowed := map[string][]string{
		ComputeSSH:        {"ssh_private_key", "ssh_passphrase"},
		ComputeSlurm:      {"token"},
		ComputeKubernetes: {"kubeconfig"},
	}[kind]
	for _, n := range c.Names() {
		if !contains(allowed, n) {
			return Errorf(EINVALID, "credentials.%s does not apply to a %s compute target", n, kind)
		}
	}
	switch kind {
	case ComputeSSH:
		k := strings.TrimSpace(c.SSHPrivateKey)
		if k == "" {
			return Errorf(EINVALID, "an ssh compute target needs credentials.ssh_private_key (the private key file's content)")
		}
		if !strings.HasPrefix(k, "-----BEGIN ") || !strings.Contains(k, "PRIVATE KEY-----") {
			return Errorf(EINVALID, "credentials.ssh_private_key is not a PEM or OpenSSH private key (want '-----BEGIN ... PRIVATE KEY-----')")
		}
	case ComputeKubernetes:
		if c.Kubeconfig != "" && !strings.Contains(c.Kubeconfig, "clusters") {
			return Errorf(EINVALID, "credentials.kubeconfig is not a kubeconfig file: it has no clusters")
		}
	}
	return nil
}

// ComputeTargetSpec creates (kind local) or attaches (the other kinds) a compute target: its
// configuration, the block of its kind, and its credentials.
type ComputeTargetSpec struct {
	Name        string `json:"name"`
	Kind        string `json:"kind"`
	Description string `json:"description,omitempty"`
	// MaxConcurrentRuns is 1 when zero.
	MaxConcurrentRuns int                `json:"max_concurrent_runs,omitempty"`
	SSH               *SSHCompute        `json:"ssh,omitempty"`
	Slurm             *SlurmCompute      `json:"slurm,omitempty"`
	Kubernetes        *KubernetesCompute `json:"kubernetes,omitempty"`
	Podman            *PodmanCompute     `json:"podman,omitempty"`
	Credentials       ComputeCredentials `json:"credentials,omitempty"`
}

var (
	hostPattern      = regexp.MustCompile(`^(?:[A-Za-z0-9](?:[A-Za-z0-9_-]{0,62})(?:\.[A-Za-z0-9_-]{1,63})*\.?|\[?[0-9A-Fa-f:.]+\]?)$`)
	sshUserPattern   = regexp.MustCompile(`^[A-Za-z0-9._][A-Za-z0-9._-]{0,63}$`)
	hostKeyPattern   = regexp.MustCompile(`^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp256|ecdsa-sha2-nistp384|ecdsa-sha2-nistp521|sk-ssh-ed25519@openssh\.com|sk-ecdsa-sha2-nistp256@openssh\.com) [A-Za-z0-9+/]+={0,2}$`)
	slurmNamePattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)
	k8sNamePattern   = regexp.MustCompile(`^[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?$`)
	imagePattern     = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/:@+-]{0,511}$`)
	// A Kubernetes quantity (resource.ParseQuantity's grammar, without exponents), a label
	// key (an optional DNS-subdomain prefix and a name) and a label value.
	k8sQuantityPattern   = regexp.MustCompile(`^[0-9]{1,15}(\.[0-9]{1,9})?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$`)
	k8sLabelKeyPattern   = regexp.MustCompile(`^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$`)
	k8sLabelValuePattern = regexp.MustCompile(`^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$`)
)

// Validate checks a compute target before it is stored: its name (not "local", the built-in
// target's), its kind, the configuration block of its kind (and no other), and its
// credentials. Errors name the field.
func (s *ComputeTargetSpec) Validate() error {
	if err := ValidateName("compute target", s.Name); err != nil {
		return err
	}
	if s.Name == DefaultCompute {
		return Errorf(EINVALID, "the compute target name %q is reserved for the built-in target of this server's machine", s.Name)
	}
	if len(s.Description) > 4096 || !utf8.ValidString(s.Description) || strings.ContainsRune(s.Description, 0) {
		return Errorf(EINVALID, "description must be valid UTF-8 of at most 4096 bytes")
	}
	if s.MaxConcurrentRuns < 0 || s.MaxConcurrentRuns > MaxComputeConcurrentRuns {
		return Errorf(EINVALID, "max_concurrent_runs %d is out of range (1 to %d)", s.MaxConcurrentRuns, MaxComputeConcurrentRuns)
	}
	blocks := map[string]bool{ComputeSSH: s.SSH != nil, ComputeSlurm: s.Slurm != nil, ComputeKubernetes: s.Kubernetes != nil, ComputePodman: s.Podman != nil}
	if !contains(ComputeKinds, s.Kind) {
		return Errorf(EINVALID, "unknown compute kind %q: use %s", s.Kind, strings.Join(ComputeKinds, ", "))
	}
	for _, k := range ComputeKinds[1:] {
		if blocks[k] && k != s.Kind {
			return Errorf(EINVALID, "%s does not apply to a %s compute target", k, s.Kind)
		}
	}
	if s.Kind != ComputeLocal && !blocks[s.Kind] {
		return Errorf(EINVALID, "a %s compute target needs its configuration, %s", s.Kind, s.Kind)
	}
	if err := s.Credentials.Validate(s.Kind); err != nil {
		return err
	}
	switch s.Kind {
	case ComputeSSH:
		c := s.SSH
		if c.Host == "" {
			return Errorf(EINVALID, "ssh.host is required: the machine's name or address")
		}
		if len(c.Host) > 253 || !hostPattern.MatchString(c.Host) {
			return Errorf(EINVALID, "invalid ssh.host %q: want a host name or an IP address", c.Host)
		}
		if c.Port < 0 || c.Port > 65535 {
			return Errorf(EINVALID, "ssh.port %d is out of range (1 to 65535; 0 for 22)", c.Port)
		}
		if c.User == "" {
			return Errorf(EINVALID, "ssh.user is required: the account runs execute as")
		}
		if !sshUserPattern.MatchString(c.User) {
			return Errorf(EINVALID, "invalid ssh.user %q: use letters, digits, '.', '_' or '-'", c.User)
		}
		if c.HostKey != "" && !hostKeyPattern.MatchString(strings.TrimSpace(c.HostKey)) {
			return Errorf(EINVALID, "invalid ssh.host_key: want one public key line such as 'ssh-ed25519 AAAA...' (from ssh-keyscan, without the host name)")
		}
	case ComputeSlurm:
		c := s.Slurm
		if err := validateComputeURL("slurm.url", c.URL, "http", "https"); err != nil {
			return err
		}
		if c.Partition != "" && !slurmNamePattern.MatchString(c.Partition) {
			return Errorf(EINVALID, "invalid slurm.partition %q: use letters, digits, '.', '_' or '-'", c.Partition)
		}
		if c.Account != "" && !slurmNamePattern.MatchString(c.Account) {
			return Errorf(EINVALID, "invalid slurm.account %q: use letters, digits, '.', '_' or '-'", c.Account)
		}
		if c.TokenSecret != "" {
			if err := ValidateSecretName(c.TokenSecret); err != nil {
				return Errorf(EINVALID, "slurm.token_secret: %s", ErrorMessage(err))
			}
		}
		for _, f := range []struct{ name, value string }{{"slurm.runner", c.Runner}, {"slurm.work_dir", c.WorkDir}} {
			if f.value != "" && (!strings.HasPrefix(f.value, "/") || path.Clean(f.value) != f.value || len(f.value) > 4096 ||
				!utf8.ValidString(f.value) || strings.ContainsAny(f.value, "\x00\n")) {
				return Errorf(EINVALID, "invalid %s %q: want an absolute path on the cluster's nodes, without '..'", f.name, f.value)
			}
		}
		if (c.TokenSecret == "") == (s.Credentials.Token == "") {
			return Errorf(EINVALID, "a slurm compute target needs exactly one of slurm.token_secret (a workspace secret holding the JWT) or credentials.token")
		}
	case ComputeKubernetes:
		c := s.Kubernetes
		if c.Namespace == "" {
			return Errorf(EINVALID, "kubernetes.namespace is required")
		}
		if !k8sNamePattern.MatchString(c.Namespace) {
			return Errorf(EINVALID, "invalid kubernetes.namespace %q: use at most 63 lowercase letters, digits or '-'", c.Namespace)
		}
		if len(c.Context) > 253 || !utf8.ValidString(c.Context) || strings.ContainsAny(c.Context, "\x00\n") {
			return Errorf(EINVALID, "invalid kubernetes.context %q", c.Context)
		}
		if c.Image != "" && !imagePattern.MatchString(c.Image) {
			return Errorf(EINVALID, "invalid kubernetes.image %q: want an image reference such as registry/name:tag", c.Image)
		}
		if c.CPU != "" && !k8sQuantityPattern.MatchString(c.CPU) {
			return Errorf(EINVALID, "invalid kubernetes.cpu %q: want a Kubernetes quantity such as 4 or 500m", c.CPU)
		}
		if c.Memory != "" && !k8sQuantityPattern.MatchString(c.Memory) {
			return Errorf(EINVALID, "invalid kubernetes.memory %q: want a Kubernetes quantity such as 16Gi or 512Mi", c.Memory)
		}
		if len(c.NodeSelector) > 64 || len(c.Tolerations) > 64 {
			return Errorf(EINVALID, "kubernetes.node_selector and kubernetes.tolerations take at most 64 entries each")
		}
		for k, v := range c.NodeSelector {
			if !k8sLabelKeyPattern.MatchString(k) || len(k) > 316 || (v != "" && !k8sLabelValuePattern.MatchString(v)) {
				return Errorf(EINVALID, "invalid kubernetes.node_selector %q: %q: want a label key (prefix/name) and a label value of at most 63 letters, digits, '-', '_' or '.'", k, v)
			}
		}
		for i, tol := range c.Tolerations {
			if tol.Key != "" && (!k8sLabelKeyPattern.MatchString(tol.Key) || len(tol.Key) > 316) {
				return Errorf(EINVALID, "invalid kubernetes.tolerations[%d].key %q: want a label key", i, tol.Key)
			}
			if tol.Operator != "" && tol.Operator != "Equal" && tol.Operator != "Exists" {
				return Errorf(EINVALID, "invalid kubernetes.tolerations[%d].operator %q: want Equal or Exists", i, tol.Operator)
			}
			if tol.Value != "" && (tol.Operator == "Exists" || !k8sLabelValuePattern.MatchString(tol.Value)) {
				return Errorf(EINVALID, "invalid kubernetes.tolerations[%d].value %q: a label value, and none with operator Exists", i, tol.Value)
			}
			if tol.Key == "" && tol.Operator != "Exists" {
				return Errorf(EINVALID, "kubernetes.tolerations[%d] has no key: only operator Exists may tolerate every taint", i)
			}
			if tol.Effect != "" && tol.Effect != "NoSchedule" && tol.Effect != "PreferNoSchedule" && tol.Effect != "NoExecute" {
				return Errorf(EINVALID, "invalid kubernetes.tolerations[%d].effect %q: want NoSchedule, PreferNoSchedule or NoExecute", i, tol.Effect)
			}
		}
	case ComputePodman:
		c := s.Podman
		if c.URL != "" {
			if err := validateComputeURL("podman.url", c.URL, "unix", "tcp", "ssh", "http", "https"); err != nil {
				return err
			}
		}
		if c.Image != "" && !imagePattern.MatchString(c.Image) {
			return Errorf(EINVALID, "invalid podman.image %q: want an image reference such as registry/name:tag", c.Image)
		}
		if c.CPUs < 0 || c.CPUs > MaxPodmanCPUs || c.CPUs != c.CPUs {
			return Errorf(EINVALID, "podman.cpus %g is out of range (0 to %d; 0 for no limit)", c.CPUs, MaxPodmanCPUs)
		}
		if c.MemoryGB < 0 || c.MemoryGB > MaxPodmanMemoryGB || c.MemoryGB != c.MemoryGB {
			return Errorf(EINVALID, "podman.memory_gb %g is out of range (0 to %d; 0 for no limit)", c.MemoryGB, MaxPodmanMemoryGB)
		}
	}
	return nil
}

// validateComputeURL checks a target's URL: one of schemes, a host (a path for unix), no
// query, no password.
func validateComputeURL(field, s string, schemes ...string) error {
	if s == "" {
		return Errorf(EINVALID, "%s is required", field)
	}
	u, err := url.Parse(s)
	want := strings.Join(schemes, "://, ") + "://"
	if err != nil || len(s) > 2048 || !contains(schemes, u.Scheme) {
		return Errorf(EINVALID, "invalid %s %q: want a %s URL", field, s, want)
	}
	if _, hasPassword := u.User.Password(); hasPassword || u.RawQuery != "" || u.Fragment != "" {
		return Errorf(EINVALID, "invalid %s %q: no password, query or fragment (credentials go in credentials)", field, s)
	}
	if u.Scheme == "unix" {
		if u.Host != "" || !strings.HasPrefix(u.Path, "/") {
			return Errorf(EINVALID, "invalid %s %q: a unix URL names an absolute socket path, unix:///run/podman/podman.sock", field, s)
		}
	} else if u.Host == "" {
		return Errorf(EINVALID, "invalid %s %q: the URL has no host", field, s)
	}
	return nil
}

// Target returns the compute target the spec describes (without its sealed credentials).
func (s *ComputeTargetSpec) Target() *ComputeTarget {
	t := &ComputeTarget{Name: s.Name, Kind: s.Kind, Description: s.Description, MaxConcurrentRuns: s.MaxConcurrentRuns,
		SSH: s.SSH, Slurm: s.Slurm, Kubernetes: s.Kubernetes, Podman: s.Podman, Credentials: s.Credentials.Names()}
	if t.MaxConcurrentRuns == 0 {
		t.MaxConcurrentRuns = 1
	}
	if t.SSH != nil && t.SSH.Port == 0 {
		ssh := *t.SSH
		ssh.Port = 22
		t.SSH = &ssh
	}
	return t
}

// ComputeTargetStore is the part of the metadata store that keeps a workspace's compute
// targets (the built-in "local" is not stored). A run names its target by name in its
// workspace: (run.Workspace, run.Compute).
type ComputeTargetStore interface {
	// CreateComputeTarget stores t (ECONFLICT if the name is taken in the workspace).
	CreateComputeTarget(ctx context.Context, workspace string, t *ComputeTarget) error
	// FindComputeTarget returns a stored target with its sealed credentials.
	FindComputeTarget(ctx context.Context, workspace, name string) (*ComputeTarget, error)
	// ListComputeTargets lists a workspace's stored targets by name, with their sealed
	// credentials; with workspace "" every workspace's, by workspace and name (for the
	// scheduler, which serves them all).
	ListComputeTargets(ctx context.Context, workspace string) ([]*ComputeTarget, error)
	// DeleteComputeTarget removes a stored target; while runs of the workspace are queued or
	// active on it, it refuses (ECONFLICT) and removes nothing.
	DeleteComputeTarget(ctx context.Context, workspace, name string) error
	// ComputeTargetRuns counts the runs queued and the runs active (Preparing to
	// CancelRequested) on the compute target name of a workspace, or of every workspace when
	// workspace is "".
	ComputeTargetRuns(ctx context.Context, workspace, name string) (queued, active int, err error)
}

// ComputeChecker is what a compute driver may do besides running jobs: check that a target
// it is given can be used (the machine answers, the key is accepted, the namespace exists)
// before the target is stored. The server asks it when a target is created or attached.
type ComputeChecker interface {
	Check(ctx context.Context, t *ComputeTarget, creds ComputeCredentials) error
}

// ComputeDescriber is what a compute driver may tell besides running jobs: what a target has
// (its nodes, CPUs, memory, GPUs and, for Slurm, partitions) as the target reports it now. The
// server asks it for one target's show (`atelier compute show`, never the list), with a short
// timeout: a target that does not answer is shown with its stored facts and the reason.
type ComputeDescriber interface {
	Describe(ctx context.Context, t *ComputeTarget, creds ComputeCredentials) (*ComputeCapacity, error)
}

// MaxCapacityNodes bounds the nodes a ComputeCapacity lists one by one; its totals count all.
const MaxCapacityNodes = 1000

// ComputeCapacity is what a compute target told of itself at ObservedAt: Slurm's nodes and
// partitions (slurmrestd, as sinfo shows them), a Kubernetes cluster's nodes (their
// allocatable resources and conditions), or the one machine of an ssh, podman or local target.
type ComputeCapacity struct {
	ObservedAt time.Time `json:"observed_at"`
	// Source says where the numbers come from ("slurmrestd v0.0.38", "kubernetes nodes",
	// "ssh: nproc, /proc/meminfo, nvidia-smi -L", "podman info", "this server's machine").
	Source string        `json:"source"`
	Totals ComputeTotals `json:"totals"`
	// Nodes are the first MaxCapacityNodes nodes by name; NodesOmitted counts the others.
	Nodes        []ComputeNode      `json:"nodes"`
	NodesOmitted int                `json:"nodes_omitted,omitempty"`
	Partitions   []ComputePartition `json:"partitions,omitempty"`
}

// ComputeTotals sums a target's nodes. ReadyNodes take work (Slurm: not down, drained or
// failing; Kubernetes: Ready and schedulable; a single machine that answers); of them, Slurm
// tells IdleNodes (nothing running) and AllocatedNodes (running jobs: allocated or mixed).
type ComputeTotals struct {
	Nodes          int   `json:"nodes"`
	ReadyNodes     int   `json:"ready_nodes"`
	IdleNodes      int   `json:"idle_nodes"`
	AllocatedNodes int   `json:"allocated_nodes"`
	CPUs           int   `json:"cpus"`
	MemoryBytes    int64 `json:"memory_bytes"`
	GPUs           int   `json:"gpus"`
}

// ComputeNode is one node of a target: its state as the target says it (Slurm's "idle",
// "mixed", "allocated", "down+drain"...; Kubernetes' "Ready", "NotReady", "Ready,SchedulingDisabled";
// "up" for a single machine), its CPUs, memory and GPUs (their type when known: Slurm's
// "gpu:a100:4", the nvidia.com/gpu.product label, nvidia-smi's name), and its Slurm
// partitions or a few Kubernetes labels (instance type, zone).
type ComputeNode struct {
	Name        string            `json:"name"`
	State       string            `json:"state"`
	CPUs        int               `json:"cpus"`
	MemoryBytes int64             `json:"memory_bytes"`
	GPUs        int               `json:"gpus,omitempty"`
	GPUType     string            `json:"gpu_type,omitempty"`
	Partitions  []string          `json:"partitions,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
}

// ComputePartition is a Slurm partition: its state (UP, DOWN, DRAIN, INACTIVE), how many nodes
// it has, whether it is the cluster's default, and its longest job time in minutes (0 for no
// limit).
type ComputePartition struct {
	Name           string `json:"name"`
	State          string `json:"state"`
	Nodes          int    `json:"nodes"`
	Default        bool   `json:"default,omitempty"`
	MaxTimeMinutes int    `json:"max_time_minutes,omitempty"`
}

// ComputeTargetService creates, attaches, shows and detaches a workspace's compute targets;
// ComputeService lists them.
type ComputeTargetService interface {
	// CreateComputeTarget creates (kind local) or attaches (other kinds) a target, after its
	// driver checked it; the check is recorded as an activity named in the answer.
	CreateComputeTarget(ctx context.Context, workspace string, spec ComputeTargetSpec) (*ComputeTarget, error)
	// FindComputeTarget returns a target (the built-in "local" too), never its credentials.
	FindComputeTarget(ctx context.Context, workspace, name string) (*ComputeTarget, error)
	// DetachComputeTarget forgets a stored target; refused while runs are queued or active on it.
	DetachComputeTarget(ctx context.Context, workspace, name string) error
}
