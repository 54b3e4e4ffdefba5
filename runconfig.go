package atelier

import (
	"path"
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
}

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
}
