package build

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"go.yaml.in/yaml/v3"

	"github.com/atelier-ml/atelier"
)

// CondaEnv is what atelier takes of a conda environment file (Azure ML's conda_file): images
// have no conda, so its conda dependencies may only be python (whose version must be the base
// image's), pip, setuptools and wheel; its pip section is installed with pip as a requirements
// file is.
type CondaEnv struct {
	// Python is the version the file asks for ("3.11", "3.11.4"), "" for any.
	Python string
	// Pip are the lines of its pip section, in order.
	Pip []string
}

// condaTools are the conda packages a pip install has anyway.
var condaTools = map[string]bool{"pip": true, "setuptools": true, "wheel": true}

// condaSpec splits a conda match spec ("python=3.11", "numpy >=1.26", "conda-forge::pip") into
// its package name and version constraint.
var condaSpec = regexp.MustCompile(`^(?:[A-Za-z0-9_.-]+::)?([A-Za-z0-9_.-]+)\s*(.*)$`)

// ParseConda reads a conda environment file. Conda packages other than python, pip, setuptools
// and wheel are refused (EINVALID) naming them: atelier has no conda, they go under pip:.
func ParseConda(name string, data []byte) (*CondaEnv, error) {
	var doc struct {
		Dependencies []yaml.Node `yaml:"dependencies"`
	}
	var top map[string]yaml.Node
	if err := yaml.Unmarshal(data, &top); err != nil {
		return nil, atelier.Errorf(atelier.EINVALID, "conda file %s is not a conda environment file (YAML): %v", name, err)
	}
	if _, ok := top["dependencies"]; !ok {
		return nil, atelier.Errorf(atelier.EINVALID, "conda file %s is not a conda environment file: it has no dependencies: list", name)
	}
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, atelier.Errorf(atelier.EINVALID, "conda file %s is not a conda environment file: dependencies: must be a list (%v)", name, err)
	}
	env := &CondaEnv{}
	var others []string
	for _, n := range doc.Dependencies {
		switch n.Kind {
		case yaml.ScalarNode:
			m := condaSpec.FindStringSubmatch(strings.TrimSpace(n.Value))
			if m == nil {
				return nil, atelier.Errorf(atelier.EINVALID, "conda file %s: unreadable dependency %q", name, n.Value)
			}
			pkg, constraint := strings.ToLower(m[1]), strings.TrimSpace(m[2])
			switch {
			case pkg == "python":
				v, err := condaPython(constraint)
				if err != nil {
					return nil, atelier.Errorf(atelier.EINVALID, "conda file %s: python%s: %s", name, constraint, err)
				}
				env.Python = v
			case condaTools[pkg]:
			default:
				others = append(others, n.Value)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				key, val := n.Content[i].Value, n.Content[i+1]
				if key != "pip" {
					return nil, atelier.Errorf(atelier.EINVALID, "conda file %s: a dependency %q: only a pip: list may be a mapping", name, key)
				}
				var lines []string
				if err := val.Decode(&lines); err != nil {
					return nil, atelier.Errorf(atelier.EINVALID, "conda file %s: pip: must be a list of requirements", name)
				}
				env.Pip = append(env.Pip, lines...)
			}
		default:
			return nil, atelier.Errorf(atelier.EINVALID, "conda file %s: dependencies must be package names and a pip: list", name)
		}
	}
	if len(others) > 0 {
		return nil, atelier.Errorf(atelier.EINVALID, "conda file %s: conda packages %s cannot be installed: atelier images have no conda, only pip; "+
			"move them under `- pip:` in the file (as PyPI names and versions, e.g. numpy==1.26.4), keeping only python, pip, setuptools and wheel as conda dependencies",
			name, strings.Join(others, ", "))
	}
	return env, nil
}

var condaVersion = regexp.MustCompile(`^=?=?\s*(3(?:\.\d+){1,2})(?:\.\*|\*)?$`)

// condaPython reads python's constraint: none, or one version ("=3.11", "3.11.*", "==3.11.4").
func condaPython(constraint string) (string, error) {
	if constraint == "" {
		return "", nil
	}
	m := condaVersion.FindStringSubmatch(strings.ReplaceAll(constraint, " ", ""))
	if m == nil {
		return "", fmt.Errorf("give one Python version (python=3.11): ranges cannot be checked against the base image")
	}
	return m[1], nil
}

// CheckPython refuses an environment asking for a Python other than the base image's
// (baseVersion, major.minor; unknown when "").
func (e *CondaEnv) CheckPython(name, baseVersion string) error {
	if e.Python == "" || baseVersion == "" {
		return nil
	}
	want := strings.Split(e.Python, ".")
	if slices.Equal(want[:2], strings.Split(baseVersion, ".")[:min(2, len(strings.Split(baseVersion, ".")))]) {
		return nil
	}
	return atelier.Errorf(atelier.EINVALID, "conda file %s asks for python %s, but the base image has Python %s: atelier installs no other Python "+
		"(change it to python=%s, or build on a base image with Python %s)", name, e.Python, baseVersion, baseVersion, e.Python)
}

// Requirements is the pip section as a requirements file.
func (e *CondaEnv) Requirements() []byte {
	if len(e.Pip) == 0 {
		return nil
	}
	return []byte(strings.Join(e.Pip, "\n") + "\n")
}

// basePython is the Python version (major.minor) a base image declares, "" when it says none.
func basePython(img v1.Image) (string, error) {
	cfg, err := img.ConfigFile()
	if err != nil {
		return "", err
	}
	_, v := (&builder{}).python(cfg)
	return v, nil
}

// CheckConda checks a conda file against the base an image is built on, before the build is
// queued: only python (the base's version), pip, setuptools and wheel as conda packages.
func (w *Workspaces) CheckConda(ctx context.Context, workspace, base, name string, data []byte) error {
	env, err := ParseConda(name, data)
	if err != nil {
		return err
	}
	img, err := w.base(ctx, workspace, base)
	if err != nil {
		return err
	}
	v, err := basePython(img)
	if err != nil {
		return err
	}
	return env.CheckPython(name, v)
}
