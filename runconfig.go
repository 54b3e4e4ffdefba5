package atelier

import (
	"path"
	"regexp"
	"strings"
	"time"
)

// RunConfig says how a submitted script runs. It is stored on the run as submitted (after the
// CLI's defaults and flags are applied), so a run can always be reproduced.
type RunConfig struct {
	Script      string            `json:"script" yaml:"script"`
	Arguments   []string          `json:"arguments,omitempty" yaml:"arguments"`
	Compute     string            `json:"compute,omitempty" yaml:"compute"`
	Environment EnvironmentConfig `json:"environment" yaml:"environment"`
	// Timeout in seconds; 0 means none.
	Timeout    float64 `json:"timeout,omitempty" yaml:"-"`
	Experiment string  `json:"experiment,omitempty" yaml:"experiment"`
	// Data lists the datastore files the script reads (download) and the folders it writes
	// (upload); they are recorded on the run as its lineage.
	Data []DataReference `json:"data,omitempty" yaml:"data"`
	// Secrets names vault secrets the script receives as environment variables of the same
	// names. Only the names are stored; the values are decrypted when the run starts.
	Secrets []string `json:"secrets,omitempty" yaml:"secrets"`
	// NodeCount is how many nodes the run asks of a cluster target (slurm: the job's nodes;
	// kubernetes: the pods of an Indexed Job); 0 means one.
	NodeCount int `json:"node_count,omitempty" yaml:"node_count"`
	// GPUs is how many GPUs per node the run asks of a cluster target (slurm: gres gpu:N).
	GPUs int `json:"gpus,omitempty" yaml:"gpus"`
	// ProcessCountPerNode is how many processes of the script run on each node (Azure ML's
	// process_count_per_node); 0 means one. A run of more than one process in all is a
	// distributed run: each process gets MASTER_ADDR, MASTER_PORT, WORLD_SIZE, RANK,
	// LOCAL_RANK and NODE_RANK (slurm: the job's tasks, launched with srun; kubernetes: each
	// pod's runner starts its node's processes).
	ProcessCountPerNode int `json:"process_count_per_node,omitempty" yaml:"process_count_per_node"`
}

// Processes is how many processes of the script a run starts in all.
func (c *RunConfig) Processes() int { return max(c.NodeCount, 1) * max(c.ProcessCountPerNode, 1) }

// Bounds of a run's resources.
const (
	MaxRunNodes = 4096
	MaxRunGPUs  = 64
	// MaxRunProcessesPerNode bounds process_count_per_node.
	MaxRunProcessesPerNode = 256
)

// EnvironmentConfig is the software a script runs with.
type EnvironmentConfig struct {
	// Python is an interpreter path or command ("python3", "/usr/bin/python3", "python3.11").
	Python string `json:"python,omitempty" yaml:"python"`
	// Requirements is a pip requirements file, relative to the source directory.
	Requirements string `json:"requirements,omitempty" yaml:"requirements"`
	// Conda is a conda environment file, relative to the source directory; used when conda
	// or mamba is on the host.
	Conda     string            `json:"conda,omitempty" yaml:"conda"`
	Variables map[string]string `json:"variables,omitempty" yaml:"variables"`
}

// DefaultCompute is the compute target every workspace has.
const DefaultCompute = "local"

// MaxRunTimeout bounds a run's timeout (a year).
const MaxRunTimeout = 365 * 24 * time.Hour

// Validate checks a run configuration; snapshot is the submitted source, to check the files
// it names exist (nil skips that check).
func (c *RunConfig) Validate(snapshot *Snapshot) error {
	if c.Script == "" {
		return Errorf(EINVALID, "run config: script is required (the file to run, relative to the source directory)")
	}
	for _, f := range []struct{ key, file string }{{"script", c.Script}, {"environment.requirements", c.Environment.Requirements},
		{"environment.conda", c.Environment.Conda}} {
		if f.file == "" {
			continue
		}
		if err := ValidatePath(f.file); err != nil {
			return Errorf(EINVALID, "run config: %s: %s", f.key, ErrorMessage(err))
		}
		if snapshot != nil && !snapshot.Has(f.file) {
			return Errorf(EINVALID, "run config: %s %q is not in the submitted directory", f.key, f.file)
		}
	}
	if c.Compute == "" {
		c.Compute = DefaultCompute
	}
	if err := ValidateName("compute", c.Compute); err != nil {
		return Errorf(EINVALID, "run config: %s", ErrorMessage(err))
	}
	if c.Timeout < 0 || time.Duration(c.Timeout*float64(time.Second)) > MaxRunTimeout {
		return Errorf(EINVALID, "run config: timeout %gs is out of range (0 to %s)", c.Timeout, MaxRunTimeout)
	}
	if strings.ContainsAny(c.Environment.Python, "\x00\n") {
		return Errorf(EINVALID, "run config: environment.python %q is not a valid interpreter", c.Environment.Python)
	}
	for k := range c.Environment.Variables {
		if k == "" || strings.ContainsAny(k, "=\x00") || strings.HasPrefix(k, "ATELIER_") {
			return Errorf(EINVALID, "run config: environment variable name %q is not allowed (no '=', not ATELIER_*)", k)
		}
	}
	for _, a := range c.Arguments {
		if strings.ContainsRune(a, 0) {
			return Errorf(EINVALID, "run config: an argument contains a NUL byte")
		}
	}
	if c.NodeCount < 0 || c.NodeCount > MaxRunNodes {
		return Errorf(EINVALID, "run config: node_count %d is out of range (1 to %d; 0 for 1)", c.NodeCount, MaxRunNodes)
	}
	if c.GPUs < 0 || c.GPUs > MaxRunGPUs {
		return Errorf(EINVALID, "run config: gpus %d is out of range (0 to %d per node)", c.GPUs, MaxRunGPUs)
	}
	if c.ProcessCountPerNode < 0 || c.ProcessCountPerNode > MaxRunProcessesPerNode {
		return Errorf(EINVALID, "run config: process_count_per_node %d is out of range (1 to %d; 0 for 1)", c.ProcessCountPerNode, MaxRunProcessesPerNode)
	}
	if err := validateDataReferences(c.Data); err != nil {
		return err
	}
	if err := c.validateSecrets(); err != nil {
		return err
	}
	return nil
}

// MaxRunSecrets bounds the secrets of one run.
const MaxRunSecrets = 100

// validateSecrets checks the secret names: each once, and none that is also a configured
// environment variable (one would silently hide the other).
func (c *RunConfig) validateSecrets() error {
	if len(c.Secrets) > MaxRunSecrets {
		return Errorf(EINVALID, "run config: %d secrets; at most %d are allowed", len(c.Secrets), MaxRunSecrets)
	}
	seen := map[string]bool{}
	for _, name := range c.Secrets {
		if err := ValidateSecretName(name); err != nil {
			return Errorf(EINVALID, "run config: secrets: %s", ErrorMessage(err))
		}
		if seen[name] {
			return Errorf(EINVALID, "run config: secret %q is listed twice", name)
		}
		seen[name] = true
		if _, ok := c.Environment.Variables[name]; ok {
			return Errorf(EINVALID, "run config: %q is both a secret and an environment variable: keep one", name)
		}
	}
	return nil
}

// Has reports whether the snapshot holds the file p.
func (s *Snapshot) Has(p string) bool {
	p = path.Clean(p)
	for _, e := range s.Entries {
		if e.Path == p {
			return true
		}
	}
	return false
}

// RunSubmit is the request to run a script on a compute target.
type RunSubmit struct {
	Experiment string            `json:"experiment"`
	Name       string            `json:"name,omitempty"`
	SnapshotID string            `json:"snapshot_id"`
	Config     RunConfig         `json:"config"`
	Git        *GitInfo          `json:"git,omitempty"`
	Tags       map[string]string `json:"tags,omitempty"`
	Params     map[string]string `json:"params,omitempty"`
	// ParentID makes the submitted run a child of that run (Azure ML v1's run.submit_child):
	// a run's own token may submit children of itself and its descendants. The experiment
	// defaults to the parent's.
	ParentID string `json:"parent_id,omitempty"`
}

// Data reference modes.
const (
	// DataDownload copies the files into the run's machine before the script starts.
	DataDownload = "download"
	// DataUpload gives the script an empty folder and sends what it holds back after the
	// script ends.
	DataUpload = "upload"
	// DataMount gives the script a read-only folder of the files whose contents are fetched
	// when the script first opens each one (a FUSE file system; where none can be mounted,
	// the files are downloaded instead).
	DataMount = "mount"
)

// MaxDataReferences bounds the data references of one run.
const MaxDataReferences = 64

// DataReference names datastore files a run reads or writes. Path is a file or a folder of the
// datastore ("diabetes/", "diabetes/train.csv"); empty means the whole datastore. The script
// finds its local copy in the environment variable ATELIER_DATA_<NAME> (the name upper-cased).
type DataReference struct {
	Name      string `json:"name" yaml:"name"`
	Datastore string `json:"datastore" yaml:"datastore"`
	Path      string `json:"path,omitempty" yaml:"path"`
	// Mode is download (the default), mount or upload.
	Mode string `json:"mode,omitempty" yaml:"mode"`
}

var dataNamePattern = regexp.MustCompile(`^[A-Za-z0-9_]{1,64}$`)

// EnvVar is the environment variable that holds the reference's local path.
func (r DataReference) EnvVar() string { return "ATELIER_DATA_" + strings.ToUpper(r.Name) }

// Folder is the datastore path as a folder prefix: "" for the whole datastore, else ending in '/'.
func (r DataReference) Folder() string {
	p := strings.TrimSuffix(r.Path, "/")
	if p == "" {
		return ""
	}
	return p + "/"
}

// String is the reference as lineage shows it: "download lake:diabetes/".
func (r DataReference) String() string { return r.Mode + " " + r.Datastore + ":" + r.Path }

// validateDataReferences checks the references and fills in the default mode.
func validateDataReferences(refs []DataReference) error {
	if len(refs) > MaxDataReferences {
		return Errorf(EINVALID, "run config: %d data references; at most %d are allowed", len(refs), MaxDataReferences)
	}
	seen := map[string]string{}
	for i := range refs {
		r := &refs[i]
		if !dataNamePattern.MatchString(r.Name) {
			return Errorf(EINVALID, "run config: data name %q: use 1-64 letters, digits or '_' (it becomes ATELIER_DATA_<NAME>)", r.Name)
		}
		if other, ok := seen[strings.ToUpper(r.Name)]; ok {
			return Errorf(EINVALID, "run config: data names %q and %q are the same variable %s", other, r.Name, r.EnvVar())
		}
		seen[strings.ToUpper(r.Name)] = r.Name
		if r.Datastore == "" {
			return Errorf(EINVALID, "run config: data %q: datastore is required", r.Name)
		}
		if err := ValidateName("datastore", r.Datastore); err != nil {
			return Errorf(EINVALID, "run config: data %q: %s", r.Name, ErrorMessage(err))
		}
		if p := strings.TrimSuffix(r.Path, "/"); p != "" {
			if err := ValidatePath(p); err != nil {
				return Errorf(EINVALID, "run config: data %q: %s", r.Name, ErrorMessage(err))
			}
		}
		switch r.Mode {
		case "":
			r.Mode = DataDownload
		case DataDownload, DataMount, DataUpload:
		default:
			return Errorf(EINVALID, "run config: data %q: unknown mode %q: use download, mount or upload", r.Name, r.Mode)
		}
	}
	return nil
}
