package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

// printConfig runs `atelier server --print-config ARGS...` in dir as a user would type it and
// returns the settings it prints as JSON.
func printConfig(t *testing.T, dir string, args ...string) (map[string]setting, error) {
	t.Helper()
	t.Chdir(dir)
	cmd := newRootCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(append([]string{"server", "--print-config"}, args...))
	if err := cmd.Execute(); err != nil {
		return nil, err
	}
	var list []setting
	if err := json.Unmarshal(out.Bytes(), &list); err != nil {
		t.Fatalf("--print-config printed no JSON: %v\n%s", err, out.String())
	}
	got := map[string]setting{}
	for _, s := range list {
		got[s.Key] = s
	}
	return got, nil
}

// clearConfigEnv unsets every variable a setting of the server or the client reads.
func clearConfigEnv(t *testing.T) {
	t.Helper()
	var cfg serverConfig
	cfg.flags().VisitAll(func(f *pflag.Flag) { t.Setenv(envName(f.Name), "") })
	for _, name := range []string{"ATELIER_CONFIG", "ATELIER_SERVER", "ATELIER_TOKEN", "ATELIER_WORKSPACE"} {
		t.Setenv(name, "")
	}
	t.Setenv("ATELIER_OUTPUT", "json")
}

func TestConfigPrecedence(t *testing.T) {
	const file = "addr: 127.0.0.1:1111\nmax-local-runs: 3\ncancel-grace: 2s\n"
	tests := []struct {
		name string
		file string // ./atelier.yaml, none when empty
		env  map[string]string
		args []string
		// want is each checked key's value and source.
		want map[string]setting
	}{
		{name: "defaults", want: map[string]setting{
			"addr":         {Value: "127.0.0.1:8600", Source: "default"},
			"cancel-grace": {Value: "10s", Source: "default"},
			"config":       {Value: "", Source: "default"},
		}},
		{name: "file over defaults", file: file, want: map[string]setting{
			"addr":         {Value: "127.0.0.1:1111", Source: "file", Origin: "atelier.yaml:1"},
			"cancel-grace": {Value: "2s", Source: "file", Origin: "atelier.yaml:3"},
			"data":         {Value: ".atelier", Source: "default"},
			"config":       {Value: "atelier.yaml", Source: "default"},
		}},
		{name: "env over file", file: file, env: map[string]string{"ATELIER_ADDR": "127.0.0.1:2222", "ATELIER_CANCEL_GRACE": "1m"},
			want: map[string]setting{
				"addr":           {Value: "127.0.0.1:2222", Source: "env", Origin: "ATELIER_ADDR"},
				"cancel-grace":   {Value: "1m0s", Source: "env", Origin: "ATELIER_CANCEL_GRACE"},
				"max-local-runs": {Value: "3", Source: "file", Origin: "atelier.yaml:2"},
			}},
		{name: "flag over env and file", file: file, env: map[string]string{"ATELIER_ADDR": "127.0.0.1:2222"},
			args: []string{"--addr", "127.0.0.1:3333", "--max-local-runs=5"},
			want: map[string]setting{
				"addr":           {Value: "127.0.0.1:3333", Source: "flag"},
				"max-local-runs": {Value: "5", Source: "flag"},
				"cancel-grace":   {Value: "2s", Source: "file", Origin: "atelier.yaml:3"},
			}},
		{name: "a flag set to its default still wins", file: file, env: map[string]string{"ATELIER_ADDR": "127.0.0.1:2222"},
			args: []string{"--addr", "127.0.0.1:8600"},
			want: map[string]setting{"addr": {Value: "127.0.0.1:8600", Source: "flag"}}},
		{name: "an empty variable is unset", file: file, env: map[string]string{"ATELIER_ADDR": ""},
			want: map[string]setting{"addr": {Value: "127.0.0.1:1111", Source: "file", Origin: "atelier.yaml:1"}}},
		{name: "every setting has its variable", env: map[string]string{"ATELIER_SNAPSHOT_MAX_FILES": "7", "ATELIER_DEBUG_ADDR": "127.0.0.1:6060"},
			want: map[string]setting{
				"snapshot-max-files": {Value: "7", Source: "env", Origin: "ATELIER_SNAPSHOT_MAX_FILES"},
				"debug-addr":         {Value: "127.0.0.1:6060", Source: "env", Origin: "ATELIER_DEBUG_ADDR"},
			}},
		{name: "ATELIER_CONFIG names the file", env: map[string]string{"ATELIER_CONFIG": "other.yaml"},
			want: map[string]setting{
				"config": {Value: "other.yaml", Source: "env", Origin: "ATELIER_CONFIG"},
				"data":   {Value: "elsewhere", Source: "file", Origin: "other.yaml:1"},
			}},
		{name: "--config over ATELIER_CONFIG", file: file, env: map[string]string{"ATELIER_CONFIG": "atelier.yaml"},
			args: []string{"--config", "other.yaml"},
			want: map[string]setting{
				"config": {Value: "other.yaml", Source: "flag"},
				"addr":   {Value: "127.0.0.1:8600", Source: "default"},
			}},
		{name: "--config '' reads no file", file: file, args: []string{"--config", ""},
			want: map[string]setting{
				"config": {Value: "", Source: "flag"},
				"addr":   {Value: "127.0.0.1:8600", Source: "default"},
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clearConfigEnv(t)
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			dir := t.TempDir()
			if tt.file != "" {
				writeFile(t, filepath.Join(dir, configFileName), tt.file)
			}
			writeFile(t, filepath.Join(dir, "other.yaml"), "data: elsewhere\n")
			got, err := printConfig(t, dir, tt.args...)
			if err != nil {
				t.Fatal(err)
			}
			for key, want := range tt.want {
				want.Key = key
				if got[key] != want {
					t.Errorf("%s = %+v, want %+v", key, got[key], want)
				}
			}
		})
	}
}

// The client's flags take their ATELIER_* variables too: ATELIER_OUTPUT for -o.
func TestClientConfigEnv(t *testing.T) {
	clearConfigEnv(t)
	t.Setenv("ATELIER_OUTPUT", "json")
	if _, err := printConfig(t, t.TempDir()); err != nil { // printConfig fails unless the output is JSON
		t.Fatal(err)
	}
	t.Chdir(t.TempDir())
	cmd := newRootCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetArgs([]string{"server", "--print-config", "-o", "table"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "KEY ") {
		t.Errorf("-o table with ATELIER_OUTPUT=json printed\n%s", out.String())
	}
}

func TestConfigFileErrors(t *testing.T) {
	tests := []struct{ name, file, want string }{
		{"unknown key", "addr: 127.0.0.1:1\nadress: x\n", `atelier.yaml: line 2: unknown key "adress" (known: addr, advertise-url, artifacts, cancel-grace,`},
		{"not an integer", "max-local-runs: many\n", `atelier.yaml: line 1: max-local-runs: "many" is not an integer`},
		{"not a duration", "\ncancel-grace: 10\n", `atelier.yaml: line 2: cancel-grace: "10" is not a duration like 10s or 1m30s`},
		{"a list", "run-readable:\n  - /opt\n", `atelier.yaml: line 2: run-readable must be a single value, not a list`},
		{"a mapping", "data: {path: x}\n", `atelier.yaml: line 1: data must be a single value, not a mapping of keys`},
		{"no value", "addr:\n", `atelier.yaml: line 1: addr has no value`},
		{"twice", "addr: a\ndata: d\naddr: b\n", `atelier.yaml: line 3: addr is set twice (first on line 1)`},
		{"not a mapping", "- addr\n", `atelier.yaml: line 1: the configuration must be a mapping of keys, not a list`},
		{"not YAML", "addr: \"x\n", `atelier.yaml: line 2: found unexpected end of stream`},
		{"an action, not a setting", "print-config: true\n", `atelier.yaml: line 1: unknown key "print-config"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clearConfigEnv(t)
			dir := t.TempDir()
			writeFile(t, filepath.Join(dir, configFileName), tt.file)
			// The flag overrides the file's value, which is refused all the same.
			_, err := printConfig(t, dir, "--max-local-runs", "2", "--cancel-grace", "1s")
			if err == nil {
				t.Fatalf("no error for\n%s", tt.file)
			}
			if !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("error = %q, want it to begin %q", err, tt.want)
			}
			if code := exitCode(err); code != exitUsage {
				t.Errorf("exit code = %d, want %d", code, exitUsage)
			}
		})
	}

	t.Run("bad variable", func(t *testing.T) {
		clearConfigEnv(t)
		t.Setenv("ATELIER_MAX_LOCAL_RUNS", "all")
		_, err := printConfig(t, t.TempDir())
		if err == nil || err.Error() != `ATELIER_MAX_LOCAL_RUNS: "all" is not an integer` || exitCode(err) != exitUsage {
			t.Errorf("error = %v, want a usage error naming ATELIER_MAX_LOCAL_RUNS", err)
		}
	})
	t.Run("missing file", func(t *testing.T) {
		clearConfigEnv(t)
		_, err := printConfig(t, t.TempDir(), "--config", "nope.yaml")
		var u usageError
		if !errors.As(err, &u) || err.Error() != "the config file nope.yaml: no such file or directory" {
			t.Errorf("error = %v, want a usage error naming nope.yaml", err)
		}
	})
}

func TestConfigMasksSecrets(t *testing.T) {
	tests := []struct{ in, want string }{
		{"127.0.0.1:8600", "127.0.0.1:8600"},
		{"localhost:8600", "localhost:8600"},
		{"/var/lib/atelier", "/var/lib/atelier"},
		{"s3://bucket/p?endpoint=http://127.0.0.1:7070&path_style=true", "s3://bucket/p?endpoint=http://127.0.0.1:7070&path_style=true"},
		{"azblob://c/p?account=a&sig=SECRET&sv=2020", "azblob://c/p?account=a&sig=xxxxx&sv=xxxxx"},
		{"s3://KEY:SECRET@bucket/p", "s3://xxxxx@bucket/p"},
	}
	for _, tt := range tests {
		if got := masked(tt.in); got != tt.want {
			t.Errorf("masked(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}

	clearConfigEnv(t)
	got, err := printConfig(t, t.TempDir(), "--artifacts", "azblob://c/p?account=a&sig=SECRET")
	if err != nil {
		t.Fatal(err)
	}
	if v := got["artifacts"].Value; strings.Contains(v, "SECRET") {
		t.Errorf("--print-config shows artifacts = %q", v)
	}
}

// docs/config.md names every setting and its variable.
func TestConfigDocumented(t *testing.T) {
	doc, err := os.ReadFile("../../docs/config.md")
	if err != nil {
		t.Fatal(err)
	}
	var cfg serverConfig
	cfg.flags().VisitAll(func(f *pflag.Flag) {
		if !bytes.Contains(doc, []byte("`"+f.Name+"`")) || !bytes.Contains(doc, []byte("`"+envName(f.Name)+"`")) {
			t.Errorf("docs/config.md does not document %s (%s)", f.Name, envName(f.Name))
		}
	})
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
