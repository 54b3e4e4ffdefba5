package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"slices"
	"strings"

	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"
)

// A setting comes from, in order of precedence: its flag, its ATELIER_* variable, the server's
// config file, its default. The rule is applied once, after the command line is parsed (layer),
// to every flag of a set of settings: declaring a flag gives it its variable and its file key.
// Secrets are none of these: the master key and the artifact store's credentials are read from
// the environment only, so they are never in a file, a command line or --help.

// configFileName is the server's config file, read from the working directory when there is
// one and neither --config nor ATELIER_CONFIG names another.
const configFileName = "atelier.yaml"

// envName is a setting's variable: ATELIER_ and its flag's name in capitals, '-' as '_'.
func envName(flag string) string {
	return "ATELIER_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// documentEnv names each setting's variable in its help, the same way for all.
func documentEnv(settings *pflag.FlagSet) {
	settings.VisitAll(func(f *pflag.Flag) { f.Usage += " (env " + envName(f.Name) + ")" })
}

// setting is one effective value and where it came from.
type setting struct {
	Key   string `json:"key"`
	Value string `json:"value"`
	// Source is default, file, env or flag; Origin the file and line, or the variable.
	Source string `json:"source"`
	Origin string `json:"origin,omitempty"`
}

// configFile is a parsed config file: each key's value as written, and its line.
type configFile struct {
	path   string
	values map[string]fileValue
}

type fileValue struct {
	text string
	line int
}

// layer gives each flag of settings the command line left alone its variable's value, else the
// file's (file may be nil), and says where every value came from. An empty variable counts as
// unset.
func layer(settings *pflag.FlagSet, file *configFile, getenv func(string) string) ([]setting, error) {
	var out []setting
	var err error
	settings.VisitAll(func(f *pflag.Flag) {
		if err != nil {
			return
		}
		s := setting{Key: f.Name, Source: "default"}
		name := envName(f.Name)
		v, inFile := fileValue{}, false
		if file != nil {
			v, inFile = file.values[f.Name]
		}
		switch {
		case f.Changed:
			s.Source = "flag"
		case getenv(name) != "":
			if e := f.Value.Set(getenv(name)); e != nil {
				err = usagef("%s: %s", name, badValue(f, getenv(name)))
				return
			}
			s.Source, s.Origin = "env", name
		case inFile:
			if e := f.Value.Set(v.text); e != nil { // checked by readConfigFile; a flag may still refuse it
				err = usagef("%s: line %d: %s: %s", file.path, v.line, f.Name, badValue(f, v.text))
				return
			}
			s.Source, s.Origin = "file", fmt.Sprintf("%s:%d", file.path, v.line)
		}
		s.Value = f.Value.String()
		out = append(out, s)
	})
	return out, err
}

// typeNames say what a flag's value must be, by its pflag type.
var typeNames = map[string]string{"int": "an integer", "int64": "an integer", "duration": "a duration like 10s or 1m30s",
	"bool": "true or false"}

func badValue(f *pflag.Flag, v string) string {
	if want, ok := typeNames[f.Value.Type()]; ok {
		return fmt.Sprintf("%q is not %s", v, want)
	}
	return fmt.Sprintf("%q is not a valid value", v)
}

// readConfigFile reads a YAML mapping of settings named as the flags of scratch. An unknown or
// repeated key, a value that is not a single value, and a value its flag refuses are usage
// errors naming the file, the line and the key; each value is set on scratch (a set of the same
// flags, bound to nothing) to check it, also where a variable or a flag overrides it.
func readConfigFile(path string, scratch *pflag.FlagSet) (*configFile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, usagef("the config file %s: %v", path, err)
	}
	bad := func(line int, format string, args ...any) error {
		return usagef("%s: line %d: %s", path, line, fmt.Sprintf(format, args...))
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, usagef("%s: %s", path, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	file := &configFile{path: path, values: map[string]fileValue{}}
	if len(doc.Content) == 0 {
		return file, nil // empty, or only comments
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, bad(root.Line, "the configuration must be %s, not %s", kindNames[yaml.MappingNode], kindNames[root.Kind])
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		f := scratch.Lookup(k.Value)
		if f == nil || k.Kind != yaml.ScalarNode {
			var known []string
			scratch.VisitAll(func(f *pflag.Flag) { known = append(known, f.Name) })
			slices.Sort(known)
			return nil, bad(k.Line, "unknown key %q (known: %s)", k.Value, strings.Join(known, ", "))
		}
		if prev, ok := file.values[k.Value]; ok {
			return nil, bad(k.Line, "%s is set twice (first on line %d)", k.Value, prev.line)
		}
		if v.Kind != yaml.ScalarNode {
			return nil, bad(v.Line, "%s must be %s, not %s", k.Value, kindNames[yaml.ScalarNode], kindNames[v.Kind])
		}
		if v.Tag == "!!null" {
			return nil, bad(v.Line, "%s has no value (leave the key out for its default)", k.Value)
		}
		if err := f.Value.Set(v.Value); err != nil {
			return nil, bad(v.Line, "%s: %s", k.Value, badValue(f, v.Value))
		}
		file.values[k.Value] = fileValue{text: v.Value, line: v.Line}
	}
	return file, nil
}

// findConfigFile is the config file's path and where it was named: --config (flag), else
// ATELIER_CONFIG (env), else ./atelier.yaml when there is one (default); "" when none.
func findConfigFile(flag *pflag.Flag, getenv func(string) string) (setting, error) {
	s := setting{Key: flag.Name, Value: flag.Value.String(), Source: "flag"}
	if !flag.Changed {
		s.Value, s.Source, s.Origin = getenv(envName(flag.Name)), "env", envName(flag.Name)
	}
	if s.Value != "" || flag.Changed {
		return s, nil
	}
	s.Source, s.Origin = "default", ""
	if _, err := os.Stat(configFileName); err == nil {
		s.Value = configFileName
	} else if !errors.Is(err, fs.ErrNotExist) {
		return s, usagef("the config file %s: %v", configFileName, err)
	}
	return s, nil
}

// printSettings prints the effective configuration, secrets masked.
func printSettings(w io.Writer, format string, settings []setting) error {
	for i := range settings {
		settings[i].Value = masked(settings[i].Value)
	}
	switch format {
	case "json":
		return printJSON(w, settings)
	case "table":
		t := newTable(w, "KEY", "VALUE", "SOURCE")
		for _, s := range settings {
			t.row(s.Key, s.Value, strings.TrimSpace(s.Source+" "+s.Origin))
		}
		return t.flush()
	}
	return usagef("unknown output format %q: use table or json", format)
}

// urlParams are the query parameters of a URL setting (the artifact store's) that are not
// secret: any other, and user information, is masked in case it holds one.
var urlParams = []string{"endpoint", "region", "path_style", "account"}

func masked(v string) string {
	u, err := url.Parse(v)
	if err != nil || u.Scheme == "" || u.Opaque != "" || (u.User == nil && u.RawQuery == "") {
		return v
	}
	const mask = "xxxxx"
	if u.User != nil {
		u.User = url.User(mask)
	}
	// Masked in place, so that the rest reads as it was written.
	if u.RawQuery != "" {
		params := strings.Split(u.RawQuery, "&")
		for i, p := range params {
			if k, _, _ := strings.Cut(p, "="); !slices.Contains(urlParams, k) {
				params[i] = k + "=" + mask
			}
		}
		u.RawQuery = strings.Join(params, "&")
	}
	return u.String()
}
