package build

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"

	"github.com/atelier-ml/atelier"
)

// runtimeFS is the scoring runtime: the server script and, under compat/, the modules score.py
// files import from the Azure ML SDK (azureml.core.model, azureml.monitoring,
// azureml.contrib.services). all: keeps the packages' __init__.py files.
//
//go:embed runtime/atelier_runtime.py all:runtime/compat
var runtimeFS embed.FS

//go:embed runtime/check_entry.py
var checkEntrySource string

// checkEntry makes sure the entry script defines init() and run(raw), by parsing it with the
// host's Python (ast) rather than importing it: importing runs the user's code at build time,
// and its imports are the image's dependencies, built for the image's platform and Python,
// which the host may not be able to load at all.
func checkEntry(ctx context.Context, python, script string) error {
	src, err := os.ReadFile(script)
	if err != nil {
		return atelier.Errorf(atelier.EINVALID, "entry script %s: %v", script, err)
	}
	cmd := exec.CommandContext(ctx, python, "-I", "-c", checkEntrySource)
	cmd.Stdin = bytes.NewReader(src)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if errors.As(err, &exit) && exit.ExitCode() == 1 {
		return atelier.Errorf(atelier.EINVALID, "entry script %s: %s", script, strings.TrimSpace(string(out)))
	}
	if err != nil {
		return fmt.Errorf("checking entry script with %s: %v: %s", python, err, out)
	}
	return nil
}

// withoutAzureMLSDK drops the requirements of Azure ML SDK v1 packages (azureml-defaults,
// azureml-core, azureml-inference-server-http...) from a requirements file and names them:
// Azure's score.py environments list them, and installed into the image they would replace the
// azureml modules the scoring runtime stands in with (azureml.core.model,
// azureml.contrib.services, azureml.monitoring). Options and other lines stay as they are.
func withoutAzureMLSDK(req []byte) ([]byte, []string) {
	var kept []string
	var left []string
	for _, line := range strings.Split(string(req), "\n") {
		if name := requirementName(line); strings.HasPrefix(name, "azureml-") {
			left = append(left, strings.TrimSpace(line))
			continue
		}
		kept = append(kept, line)
	}
	if left == nil {
		return req, nil
	}
	return []byte(strings.Join(kept, "\n")), left
}

// requirementName is the normalized project name a requirements line asks for ("" for a
// comment, an option, a URL or a path).
func requirementName(line string) string {
	line, _, _ = strings.Cut(line, "#")
	line = strings.TrimSpace(line)
	end := strings.IndexFunc(line, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-')
	})
	if end < 0 {
		end = len(line)
	}
	if end == 0 || strings.HasPrefix(line, "-") {
		return ""
	}
	rest := strings.TrimSpace(line[end:])
	if rest != "" && !strings.ContainsAny(rest[:1], "[=<>!~;@,") {
		return "" // not NAME followed by extras, a version, a marker or a URL
	}
	return strings.ReplaceAll(strings.ReplaceAll(strings.ToLower(line[:end]), "_", "-"), ".", "-")
}

// hasRequirement tells whether a requirements file asks for anything (beyond options,
// comments and blank lines).
func hasRequirement(req []byte) bool {
	for _, line := range strings.Split(string(req), "\n") {
		line, _, _ = strings.Cut(line, "#")
		line = strings.TrimSpace(line)
		if line != "" && !strings.HasPrefix(line, "-") {
			return true
		}
		for _, opt := range []string{"-r", "--requirement", "-e", "--editable"} { // requirements elsewhere
			if strings.HasPrefix(line, opt) {
				return true
			}
		}
	}
	return false
}

// pipPlatforms are the wheel platform tags a glibc Linux image accepts: manylinux wheels up to
// glibc 2.36 (Debian bookworm). Pure-Python wheels are accepted whatever these are.
func pipPlatforms(arch string) []string {
	machine := wheelMachine(arch)
	if machine == "" {
		return nil
	}
	var tags []string
	for minor := 36; minor >= 17; minor-- {
		tags = append(tags, fmt.Sprintf("manylinux_2_%d_%s", minor, machine))
	}
	return append(tags, "manylinux2014_"+machine)
}

// wheelMachine is the machine of an OCI architecture as wheel platform tags end with it; ""
// when no wheels are known for it.
func wheelMachine(arch string) string {
	return map[string]string{"amd64": "x86_64", "arm64": "aarch64", "386": "i686", "ppc64le": "ppc64le", "s390x": "s390x"}[arch]
}

// pipArgs is the pip command line that resolves requirements for the image's Python and platform
// without installing anything (--dry-run; the wheels chosen, with their URLs and sha256, are
// written to report) and without running anything of the image: binary wheels only. The
// builder installs the wheels itself (wheel.go).
func pipArgs(target, report, requirements, pyVersion string, platforms, extra []string) []string {
	args := []string{"-m", "pip", "install", "--disable-pip-version-check", "--no-input", "--dry-run", "--ignore-installed",
		"--report", report, "--target", target, "--only-binary=:all:", "--implementation", "cp", "--python-version", pyVersion}
	for _, p := range platforms {
		args = append(args, "--platform", p)
	}
	args = append(args, extra...)
	return append(args, "--requirement", requirements)
}
