package build

import (
	"archive/zip"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// builderPip is the pip the builder resolves with, whatever the host's is: taken from the
// package index once (its sha256 checked against the index's page) and kept, byte-compiled, in
// the builder's tools directory (Spec.ToolsDir). pip resolves the same way on every host, and pip 23.3 and later
// resolve a --dry-run from the wheels' metadata alone (the index view serves it) where older
// ones download every wheel to resolve. A host without the index (--no-index) or that cannot
// fetch it uses its own pip, as before.
const builderPip = "26.3"

// pipHome returns the directory to put on PYTHONPATH for the builder's pip ("" for the host's
// pip, and why in the log).
func (b *builder) pipHome(ctx context.Context, pre *prefetcher) string {
	if pre == nil || pre.index == "" || b.spec.ToolsDir == "" {
		return ""
	}
	if iso := b.spec.Isolation; iso != nil && iso.Launcher != nil {
		if _, _, other := iso.Launcher.Owner(); other {
			return "" // pip runs as a user who may not reach the cache directory
		}
	}
	file := "pip-" + builderPip + "-py3-none-any.whl"
	dir := filepath.Join(b.spec.ToolsDir, "pip-"+builderPip)
	if _, err := os.Stat(filepath.Join(dir, "pip", "__main__.py")); err == nil {
		return dir
	}
	home, err := b.installPip(ctx, pre, file, dir)
	if err != nil {
		fmt.Fprintf(b.log, "resolving with the host's pip: the builder's pip %s: %v\n", builderPip, err)
		return ""
	}
	return home
}

// installPip fetches the pip wheel from the index, unpacks it beside dir and renames it into
// place (complete or absent), byte-compiled for the host's Python.
func (b *builder) installPip(ctx context.Context, pre *prefetcher, file, dir string) (string, error) {
	u, sha, err := pre.lookup("pip", file)
	if err != nil {
		return "", err
	}
	f, _, remove, err := b.fetchWheel(ctx, wheelRef{Name: "pip", Version: builderPip, URL: u, SHA256: sha}, nil)
	if err != nil {
		return "", err
	}
	defer remove()
	fi, err := f.Stat()
	if err != nil {
		return "", err
	}
	zr, err := zip.NewReader(f, fi.Size())
	if err != nil {
		return "", fmt.Errorf("%s: %v", file, err)
	}
	if err := os.MkdirAll(b.spec.ToolsDir, 0o755); err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(b.spec.ToolsDir, ".pip-*.tmp")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	root, err := os.OpenRoot(tmp)
	if err != nil {
		return "", err
	}
	defer root.Close()
	for _, zf := range zr.File {
		name := strings.TrimSuffix(zf.Name, "/")
		if !filepath.IsLocal(name) {
			return "", fmt.Errorf("%s: entry %q leaves the directory", file, zf.Name)
		}
		if zf.FileInfo().IsDir() {
			if err := root.MkdirAll(name, 0o755); err != nil {
				return "", err
			}
			continue
		}
		if d := filepath.Dir(name); d != "." {
			if err := root.MkdirAll(d, 0o755); err != nil {
				return "", err
			}
		}
		if err := extractTo(root, name, zf); err != nil {
			return "", fmt.Errorf("%s: %s: %v", file, zf.Name, err)
		}
	}
	// pip runs with PYTHONDONTWRITEBYTECODE: compile it once here (a failure only costs speed).
	exec.CommandContext(ctx, b.spec.HostPython, "-m", "compileall", "-q", filepath.Join(tmp, "pip")).Run()
	if err := os.Chmod(tmp, 0o755); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, dir); err != nil {
		if _, serr := os.Stat(filepath.Join(dir, "pip", "__main__.py")); serr == nil {
			return dir, nil // installed by another build meanwhile
		}
		return "", err
	}
	fmt.Fprintf(b.log, "the builder's pip %s installed in %s\n", builderPip, dir)
	return dir, nil
}

func extractTo(root *os.Root, name string, zf *zip.File) error {
	rc, err := zf.Open()
	if err != nil {
		return err
	}
	defer rc.Close()
	out, err := root.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, io.LimitReader(rc, 256<<20)); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
