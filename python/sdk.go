// Package python embeds the atelier Python SDK, so the server can put it on the PYTHONPATH of
// every script it runs without anything being installed.
package python

import (
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// The azureml package (Azure ML v1's names over the SDK, issue 24) is installed beside it.
//
//go:embed atelier/*.py azureml/*.py azureml/*/*.py azureml/*/*/*.py
var sdk embed.FS

// sdkFiles are the embedded files, in a fixed order.
func sdkFiles() ([]string, error) {
	var files []string
	for _, pat := range []string{"atelier/*.py", "azureml/*.py", "azureml/*/*.py", "azureml/*/*/*.py"} {
		m, err := fs.Glob(sdk, pat)
		if err != nil {
			return nil, err
		}
		files = append(files, m...)
	}
	return files, nil
}

// Install writes the SDK under dir/<content hash>/atelier (once per version) and returns the
// directory to put on PYTHONPATH.
func Install(dir string) (string, error) {
	h := sha256.New()
	files, err := sdkFiles()
	if err != nil {
		return "", err
	}
	for _, f := range files {
		b, _ := sdk.ReadFile(f)
		h.Write([]byte(f))
		h.Write(b)
	}
	root := filepath.Join(dir, hex.EncodeToString(h.Sum(nil))[:16])
	if _, err := os.Stat(filepath.Join(root, "atelier", "__init__.py")); err == nil {
		return root, os.Chmod(root, 0o755) // runs of another user read it
	}
	tmp, err := os.MkdirTemp(dir, ".sdk-*")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	for _, f := range files {
		if err := os.MkdirAll(filepath.Join(tmp, filepath.Dir(filepath.FromSlash(f))), 0o755); err != nil {
			return "", err
		}
		b, _ := sdk.ReadFile(f)
		if err := os.WriteFile(filepath.Join(tmp, filepath.FromSlash(f)), b, 0o644); err != nil {
			return "", err
		}
	}
	if err := os.Rename(tmp, root); err != nil && !os.IsExist(err) {
		if _, statErr := os.Stat(root); statErr != nil {
			return "", err
		}
	}
	return root, os.Chmod(root, 0o755) // runs of another user read it
}

// Resolve finds the real interpreter behind a name the server trusts (its default,
// python3, may be a shim such as pyenv's, which a confined run cannot use) and the directory
// it lives in, to grant to runs. It runs the interpreter as the server: never call it with a
// name a user chose.
func Resolve(ctx context.Context, name string) (exe, prefix string, err error) {
	path, err := exec.LookPath(name)
	if err != nil {
		return "", "", fmt.Errorf("python interpreter %q not found: %w", name, err)
	}
	out, err := exec.CommandContext(ctx, path, "-c", "import os, sys; print(os.path.realpath(sys.executable)); print(sys.base_prefix)").Output()
	if err != nil {
		return "", "", fmt.Errorf("asking %s where it lives: %w", path, err)
	}
	lines := strings.Split(string(bytes.TrimSpace(out)), "\n")
	if len(lines) != 2 {
		return "", "", fmt.Errorf("asking %s where it lives: unexpected answer %q", path, out)
	}
	return strings.TrimSpace(lines[0]), strings.TrimSpace(lines[1]), nil
}
