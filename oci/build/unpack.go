package build

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/atelier-ml/atelier"
)

// Unpack writes a built image's filesystem (its layers flattened, whiteouts applied) to dir,
// which must not exist, and returns how the image runs. It unpacks into a temporary directory
// beside dir and renames it, so dir is either complete or absent; every path is resolved inside
// it (os.Root), so a layer's links cannot write outside.
func (w *Workspaces) Unpack(ctx context.Context, workspace string, ref atelier.ImageRef, dir string) (*atelier.ImageRuntime, error) {
	repo, tag := workspace+"/"+ref.Name, strconv.FormatInt(ref.Version, 10)
	img, err := ReadImage(ctx, w.Blobs, w.Metadata, repo, tag)
	if err != nil {
		return nil, err
	}
	return UnpackImage(ctx, img, dir)
}

// UnpackImage writes img's filesystem to dir (see Workspaces.Unpack).
func UnpackImage(ctx context.Context, img v1.Image, dir string) (*atelier.ImageRuntime, error) {
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	digest, err := img.Digest()
	if err != nil {
		return nil, err
	}
	rt := &atelier.ImageRuntime{Digest: digest.String(), Entrypoint: append(cfg.Config.Entrypoint, cfg.Config.Cmd...),
		Env: cfg.Config.Env, WorkingDir: cfg.Config.WorkingDir}
	if _, err := os.Stat(dir); err == nil {
		return rt, nil // unpacked before
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), ".unpack-*")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	if err := os.Chmod(tmp, 0o755); err != nil {
		return nil, err
	}
	rc := mutate.Extract(img)
	defer rc.Close()
	if err := untar(ctx, tar.NewReader(rc), tmp); err != nil {
		return nil, fmt.Errorf("unpacking image %s: %w", digest, err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		if _, serr := os.Stat(dir); serr == nil {
			return rt, nil // unpacked by someone else meanwhile
		}
		return nil, err
	}
	return rt, nil
}

func untar(ctx context.Context, tr *tar.Reader, dir string) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return err
		}
		name := path.Clean("/" + h.Name)[1:]
		if name == "" {
			continue
		}
		mode := fs.FileMode(h.Mode) & fs.ModePerm
		if parent := path.Dir(name); parent != "." {
			if err := root.MkdirAll(parent, 0o755); err != nil {
				return fmt.Errorf("%s: %w", h.Name, err)
			}
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if err := root.MkdirAll(name, 0o755); err != nil {
				return fmt.Errorf("%s: %w", h.Name, err)
			}
			root.Chmod(name, mode|0o700)
		case tar.TypeReg:
			root.Remove(name)
			f, err := root.OpenFile(name, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode|0o600)
			if err != nil {
				return fmt.Errorf("%s: %w", h.Name, err)
			}
			_, err = io.Copy(f, tr)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("%s: %w", h.Name, err)
			}
		case tar.TypeSymlink:
			root.Remove(name)
			if err := root.Symlink(h.Linkname, name); err != nil {
				return fmt.Errorf("%s: %w", h.Name, err)
			}
		case tar.TypeLink:
			target := path.Clean("/" + h.Linkname)[1:]
			root.Remove(name)
			if err := root.Link(target, name); err != nil && !strings.Contains(err.Error(), "escapes") {
				return fmt.Errorf("%s: hard link to %s: %w", h.Name, h.Linkname, err)
			}
		default:
			// Devices and fifos are not needed to run a scoring runtime (/dev is mounted).
		}
	}
}
