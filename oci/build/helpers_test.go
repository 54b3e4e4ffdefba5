package build

import (
	"archive/zip"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/atelier-ml/atelier/oci/build/buildtest"
)

// MustPython skips the test when the host has no python3 (the builder needs it for pip and for
// checking entry scripts).
func MustPython(tb testing.TB) string {
	tb.Helper()
	p, err := exec.LookPath("python3")
	if err != nil {
		tb.Skip("no python3 on this machine: the builder runs pip and the entry-script check with it")
	}
	return p
}

// MustBaseImage writes a tiny base image (package buildtest: one layer with /etc/os-release; a
// config declaring the platform and a Python version) as an OCI layout, and returns the layout
// directory.
func MustBaseImage(tb testing.TB, platform v1.Platform, pyVersion string) string {
	tb.Helper()
	dir := filepath.Join(tb.TempDir(), "base")
	if err := buildtest.WriteLayout(dir, platform, pyVersion); err != nil {
		tb.Fatal(err)
	}
	return dir
}

func baseImage(tb testing.TB, platform v1.Platform, pyVersion string) v1.Image {
	tb.Helper()
	img, err := buildtest.Image(platform, pyVersion)
	if err != nil {
		tb.Fatal(err)
	}
	return img
}

// MustWheel writes a pure-Python wheel of a package "greet" (greet.hello(name)) into a new
// directory, for pip --no-index --find-links.
func MustWheel(tb testing.TB) string {
	tb.Helper()
	dir := tb.TempDir()
	f, err := os.Create(filepath.Join(dir, "greet-1.0-py3-none-any.whl"))
	if err != nil {
		tb.Fatal(err)
	}
	zw := zip.NewWriter(f)
	files := map[string]string{
		"greet/__init__.py":                    "def hello(name):\n    return 'hello ' + name\n\n\ndef main():\n    print(hello('world'))\n",
		"greet-1.0.dist-info/METADATA":         "Metadata-Version: 2.1\nName: greet\nVersion: 1.0\n",
		"greet-1.0.dist-info/WHEEL":            "Wheel-Version: 1.0\nGenerator: atelier-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
		"greet-1.0.dist-info/top_level.txt":    "greet\n",
		"greet-1.0.dist-info/entry_points.txt": "[console_scripts]\ngreet = greet:main\n",
		"greet-1.0.dist-info/RECORD":           "greet/__init__.py,,\ngreet-1.0.dist-info/METADATA,,\ngreet-1.0.dist-info/WHEEL,,\ngreet-1.0.dist-info/top_level.txt,,\ngreet-1.0.dist-info/entry_points.txt,,\ngreet-1.0.dist-info/RECORD,,\n",
	}
	for _, name := range []string{"greet/__init__.py", "greet-1.0.dist-info/METADATA", "greet-1.0.dist-info/WHEEL", "greet-1.0.dist-info/top_level.txt", "greet-1.0.dist-info/entry_points.txt", "greet-1.0.dist-info/RECORD"} {
		w, err := zw.Create(name)
		if err != nil {
			tb.Fatal(err)
		}
		w.Write([]byte(files[name]))
	}
	if err := zw.Close(); err != nil {
		tb.Fatal(err)
	}
	if err := f.Close(); err != nil {
		tb.Fatal(err)
	}
	return dir
}

const scoreTemplate = `import json
import os

import greet

model = None
VERSION = %q


def init():
    global model
    with open(os.path.join(os.environ["AZUREML_MODEL_DIR"], "model.json")) as f:
        model = json.load(f)


def run(raw_data):
    data = json.loads(raw_data)
    return {"result": sum(data["data"]) * model["scale"], "greeting": greet.hello(data["name"]), "version": VERSION}
`

// fixture is a complete build input: source dir with score.py, requirements, a model, a base.
type fixture struct {
	spec Spec
	base v1.Image
	dir  string
}

func newFixture(tb testing.TB) *fixture {
	tb.Helper()
	MustPython(tb)
	dir := tb.TempDir()
	src := filepath.Join(dir, "serve")
	model := filepath.Join(dir, "model")
	for _, d := range []string{src, model} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			tb.Fatal(err)
		}
	}
	mustWrite(tb, filepath.Join(src, "score.py"), scoreSource("1"))
	mustWrite(tb, filepath.Join(src, "helper.py"), "X = 1\n")
	mustWrite(tb, filepath.Join(src, "requirements.txt"), "greet==1.0\n")
	mustWrite(tb, filepath.Join(model, "model.json"), `{"scale": 10}`)
	base, err := ImportBase(context.Background(), MustBaseImage(tb, DefaultPlatform(), "3.11"), DefaultPlatform())
	if err != nil {
		tb.Fatal(err)
	}
	return &fixture{dir: dir, base: base, spec: Spec{
		Name: "diabetes-svc", Version: "1",
		SourceDir: src, EntryScript: "score.py",
		Requirements: filepath.Join(src, "requirements.txt"),
		PipArgs:      []string{"--no-index", "--find-links", MustWheel(tb)},
		Models:       []Model{{Name: "diabetes", Version: "3", Dir: model}},
		CacheDir:     filepath.Join(dir, "cache"),
	}}
}

func scoreSource(version string) string {
	return fmt.Sprintf(scoreTemplate, version)
}

func mustWrite(tb testing.TB, name, content string) {
	tb.Helper()
	if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
		tb.Fatal(err)
	}
}
