package build_test

import (
	"strings"
	"testing"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/oci/build"
)

func TestParseConda(t *testing.T) {
	for _, c := range []struct {
		name, file, python, pip string
	}{
		{"azure", "name: env\nchannels: [conda-forge]\ndependencies:\n  - python=3.11\n  - pip=23.0\n  - setuptools\n  - wheel\n  - pip:\n    - scikit-learn==1.5.0\n    - azureml-defaults\n",
			"3.11", "scikit-learn==1.5.0\nazureml-defaults\n"},
		{"no version", "dependencies:\n  - python\n  - pip:\n    - joblib\n", "", "joblib\n"},
		{"patch and star", "dependencies:\n  - python==3.11.4\n", "3.11.4", ""},
		{"star", "dependencies:\n  - conda-forge::python=3.10.*\n  - conda-forge::pip\n", "3.10", ""},
	} {
		env, err := build.ParseConda("env.yml", []byte(c.file))
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if env.Python != c.python || string(env.Requirements()) != c.pip {
			t.Errorf("%s: python %q, pip %q; want %q, %q", c.name, env.Python, env.Requirements(), c.python, c.pip)
		}
	}
	for _, c := range []struct{ name, file, want string }{
		{"conda packages", "dependencies:\n  - python=3.11\n  - numpy=1.26\n  - scikit-learn\n", "conda packages numpy=1.26, scikit-learn cannot be installed: atelier images have no conda, only pip; move them under `- pip:`"},
		{"range", "dependencies:\n  - python>=3.8,<3.12\n", "give one Python version"},
		{"not yaml", "dependencies: [", "is not a conda environment file (YAML)"},
		{"no dependencies", "name: x\n", "has no dependencies: list"},
		{"other mapping", "dependencies:\n  - conda: [x]\n", "only a pip: list may be a mapping"},
		{"pip not a list", "dependencies:\n  - pip: joblib\n", "pip: must be a list"},
	} {
		_, err := build.ParseConda("env.yml", []byte(c.file))
		if atelier.ErrorCode(err) != atelier.EINVALID || !strings.Contains(atelier.ErrorMessage(err), c.want) {
			t.Errorf("%s: %v, want EINVALID with %q", c.name, err, c.want)
		}
	}
}

func TestCondaPythonMustBeTheBase(t *testing.T) {
	for _, c := range []struct {
		want, base string
		ok         bool
	}{{"3.11", "3.11", true}, {"3.11.4", "3.11", true}, {"", "3.11", true}, {"3.9", "3.11", false}, {"3.1", "3.11", false}} {
		err := (&build.CondaEnv{Python: c.want}).CheckPython("env.yml", c.base)
		if (err == nil) != c.ok {
			t.Errorf("python %s on a base of %s: %v", c.want, c.base, err)
		}
		if err != nil && !strings.Contains(atelier.ErrorMessage(err), "asks for python "+c.want+", but the base image has Python "+c.base) {
			t.Errorf("the error does not name both versions: %v", err)
		}
	}
}
