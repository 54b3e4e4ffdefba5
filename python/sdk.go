// Package python embeds the atelier Python SDK, so the server can put it on the PYTHONPATH of
// every script it runs without anything being installed.
package python

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"os"
	"path/filepath"
)

//go:embed atelier/*.py
var sdk embed.FS

// Install writes the SDK under dir/<content hash>/atelier (once per version) and returns the
// directory to put on PYTHONPATH.
func Install(dir string) (string, error) {
	h := sha256.New()
	files, err := fs.Glob(sdk, "atelier/*.py")
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
	if err := os.MkdirAll(filepath.Join(tmp, "atelier"), 0o755); err != nil {
		return "", err
	}
	for _, f := range files {
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
