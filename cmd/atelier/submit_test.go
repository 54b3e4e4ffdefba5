package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/atelier-ml/atelier"
	"github.com/google/go-cmp/cmp"
)

func TestLoadRunConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		yaml string
		want *atelier.RunConfig
		// err lists what the error message must contain; want is ignored then.
		err []string
	}{
		{name: "all keys", yaml: `# the whole run configuration
script: src/train.py
arguments: ["--epochs", "10", "--lr=0.1"]
compute: local
experiment: diabetes
timeout: 1h30m
environment:
  python: python3.11
  requirements: requirements.txt
  conda: environment.yml
  variables:
    MODE: fast
    SEED: 42
`, want: &atelier.RunConfig{Script: "src/train.py", Arguments: []string{"--epochs", "10", "--lr=0.1"}, Compute: "local",
			Experiment: "diabetes", Timeout: 5400, Environment: atelier.EnvironmentConfig{Python: "python3.11",
				Requirements: "requirements.txt", Conda: "environment.yml", Variables: map[string]string{"MODE": "fast", "SEED": "42"}}}},
		{name: "timeout in seconds", yaml: "script: train.py\ntimeout: 90\n", want: &atelier.RunConfig{Script: "train.py", Timeout: 90}},
		{name: "timeout quoted seconds", yaml: "script: train.py\ntimeout: \"2.5\"\n", want: &atelier.RunConfig{Script: "train.py", Timeout: 2.5}},
		{name: "block list arguments", yaml: "script: train.py\narguments:\n  - a\n  - 1\n  - true\n",
			want: &atelier.RunConfig{Script: "train.py", Arguments: []string{"a", "1", "true"}}},
		{name: "empty file", yaml: "", want: &atelier.RunConfig{}},
		{name: "only comments", yaml: "# nothing yet\n", want: &atelier.RunConfig{}},
		{name: "unknown key", yaml: "script: train.py\n\nentry_script: train.py\n", err: []string{"line 3", "entry_script"}},
		{name: "unknown key under environment", yaml: "script: train.py\nenvironment:\n  pyhton: python3\n",
			err: []string{"line 3", "pyhton", "environment"}},
		{name: "arguments as a string", yaml: "script: train.py\narguments: --epochs 10\n", err: []string{"line 2", "arguments"}},
		{name: "environment as a number", yaml: "script: train.py\nenvironment: 5\n", err: []string{"line 2", "environment"}},
		{name: "variables as a list", yaml: "script: train.py\nenvironment:\n  variables: [A, B]\n", err: []string{"line 3", "variables"}},
		{name: "script as a map", yaml: "script:\n  path: train.py\n", err: []string{"line 2", "script"}},
		{name: "bad timeout", yaml: "script: train.py\ntimeout: soon\n", err: []string{"timeout", `"soon"`}},
		{name: "not YAML", yaml: "script: [train.py\n", err: []string{"line"}},
		{name: "a list, not a map", yaml: "- script: train.py\n", err: []string{"line 1"}},
		{name: "duplicate key", yaml: "script: a.py\nscript: b.py\n", err: []string{"line 2", "script"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "run.yaml")
			if err := os.WriteFile(path, []byte(tc.yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			got, err := loadRunConfig(path)
			if tc.err != nil {
				if err == nil {
					t.Fatalf("loadRunConfig = %+v, want an error containing %q", got, tc.err)
				}
				if atelier.ErrorCode(err) != atelier.EINVALID {
					t.Errorf("error code %s, want EINVALID", atelier.ErrorCode(err))
				}
				msg, ok := strings.CutPrefix(atelier.ErrorMessage(err), path+": ")
				if !ok {
					t.Errorf("error %q does not start with the file's path", atelier.ErrorMessage(err))
				}
				for _, s := range tc.err {
					if !strings.Contains(msg, s) {
						t.Errorf("error %q, want it to contain %q", msg, s)
					}
				}
				for _, s := range []string{"!!", "main.", "atelier.", "yaml: unmarshal errors"} {
					if strings.Contains(msg, s) {
						t.Errorf("error %q shows the decoder's internals (%q)", msg, s)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("loadRunConfig (-want +got):\n%s", diff)
			}
		})
	}
	if _, err := loadRunConfig(filepath.Join(t.TempDir(), "missing.yaml")); !os.IsNotExist(err) {
		t.Errorf("a missing file: %v, want not-exist", err)
	}
}

func TestParseTimeout(t *testing.T) {
	for in, want := range map[string]float64{"90": 90, "1h30m": 5400, "0.5": 0.5, "0": 0, "2h": 7200, "1m30s": 90} {
		d, err := parseTimeout(in)
		if err != nil || d.Seconds() != want {
			t.Errorf("parseTimeout(%q) = %v, %v; want %gs", in, d, err, want)
		}
	}
	for _, in := range []string{"", "soon", "1x", "h"} {
		if d, err := parseTimeout(in); err == nil {
			t.Errorf("parseTimeout(%q) = %v, want an error", in, d)
		}
	}
	// Values that parse but are no timeout must not slip through the run config's checks.
	for _, in := range []string{"-5", "NaN", "inf", "1e300", "-1h"} {
		d, err := parseTimeout(in)
		if err != nil {
			continue
		}
		c := atelier.RunConfig{Script: "train.py", Timeout: d.Seconds()}
		if err := c.Validate(nil); err == nil {
			t.Errorf("timeout %q parses as %v and passes Validate", in, d)
		}
	}
}
