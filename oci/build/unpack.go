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
	"syscall"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"

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

// UnpackImage writes img's filesystem to dir (see Workspaces.Unpack). Each layer is unpacked
// once, into a cache beside dir (see layerCache); dir is composed from the cached layers, its
// regular files hard links to theirs (copies where the filesystem does not link), so an image
// sharing all but its last layer with one unpacked before takes the time of that layer and of
// the links. The files are shared: whatever runs the image must not write to them (the local
// target binds dir read-only). Concurrent calls, from this process or others, are safe.
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
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, err
	}
	c := &layerCache{dir: filepath.Join(parent, layerCacheDir)}
	unlock, err := c.lock(syscall.LOCK_SH)
	if err != nil {
		return nil, err
	}
	defer unlock()
	layers, err := img.Layers()
	if err != nil {
		return nil, err
	}
	cached := make([]*unpackedLayer, len(layers))
	for i, l := range layers {
		if cached[i], err = c.get(ctx, l); err != nil {
			return nil, fmt.Errorf("unpacking image %s: %w", digest, err)
		}
	}
	tmp, err := os.MkdirTemp(parent, ".unpack-*")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	if err := os.Chmod(tmp, 0o755); err != nil {
		return nil, err
	}
	if err := compose(ctx, cached, tmp); err != nil {
		return nil, fmt.Errorf("unpacking image %s: %w", digest, err)
	}
	if err := writeUses(c, dir, cached); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, dir); err != nil {
		if _, serr := os.Stat(dir); serr == nil {
			return rt, nil // unpacked by someone else meanwhile
		}
		return nil, err
	}
	return rt, nil
}

// compose writes to dir what mutate.Extract's flattening of the layers, untarred, would write
// (the same entries in the same order, the same checks), a regular file being a link of the
// layer's cached file.
func compose(ctx context.Context, layers []*unpackedLayer, dir string) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	w := &composer{root: root, dirs: map[string]bool{}}
	defer w.closeParent()
	fileMap := map[string]bool{}
	opaqueDirs := map[string]bool{}
	for i := len(layers) - 1; i >= 0; i-- {
		l := layers[i]
		layerOpaque := map[string]bool{}
		for _, e := range l.entries {
			if err := ctx.Err(); err != nil {
				return err
			}
			if path.Base(e.Name) == opaqueWhiteout {
				layerOpaque[path.Dir(e.Name)] = true
				continue
			}
			name, tombstone := entryKey(e.Name, e.Typeflag)
			if _, ok := fileMap[name]; ok && !tombstone {
				continue
			}
			if inWhiteoutDir(fileMap, name) || inOpaqueDir(opaqueDirs, name) {
				continue
			}
			fileMap[name] = tombstone || e.Typeflag != tar.TypeDir
			if !tombstone {
				if err := w.write(l, &e); err != nil {
					return err
				}
			}
		}
		for d := range layerOpaque {
			opaqueDirs[d] = true
		}
	}
	return nil
}

// composer writes entries inside root as the unpacking of the flattened tar always did.
type composer struct {
	root *os.Root
	dirs map[string]bool // directories made or met, whose MkdirAll is skipped

	parentName string // the directory last opened for linking files in
	parent     *os.File
}

func (w *composer) closeParent() {
	if w.parent != nil {
		w.parent.Close()
		w.parent = nil
	}
}

// removed forgets what a removal may have changed.
func (w *composer) removed() {
	w.closeParent()
	clear(w.dirs)
}

// remove removes name, reporting whether something was.
func (w *composer) remove(name string) bool {
	if w.root.Remove(name) == nil {
		w.removed()
		return true
	}
	return false
}

func (w *composer) mkdirAll(name string) error {
	if w.dirs[name] {
		return nil
	}
	if err := w.root.MkdirAll(name, 0o755); err != nil {
		return err
	}
	w.dirs[name] = true
	return nil
}

func (w *composer) write(l *unpackedLayer, e *layerEntry) error {
	name := path.Clean("/" + e.Name)[1:]
	if name == "" {
		return nil
	}
	mode := fs.FileMode(e.Mode) & fs.ModePerm
	if parent := path.Dir(name); parent != "." {
		if err := w.mkdirAll(parent); err != nil {
			return fmt.Errorf("%s: %w", e.Name, err)
		}
	}
	switch e.Typeflag {
	case tar.TypeDir:
		if err := w.mkdirAll(name); err != nil {
			return fmt.Errorf("%s: %w", e.Name, err)
		}
		w.root.Chmod(name, mode|0o700)
	case tar.TypeReg:
		if err := w.link(l.file(e.File), name); err != nil {
			return fmt.Errorf("%s: %w", e.Name, err)
		}
	case tar.TypeSymlink:
		err := w.root.Symlink(e.Linkname, name)
		if errors.Is(err, fs.ErrExist) && w.remove(name) {
			err = w.root.Symlink(e.Linkname, name)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", e.Name, err)
		}
	case tar.TypeLink:
		target := path.Clean("/" + e.Linkname)[1:]
		w.remove(name)
		if err := w.root.Link(target, name); err != nil && !strings.Contains(err.Error(), "escapes") {
			return fmt.Errorf("%s: hard link to %s: %w", e.Name, e.Linkname, err)
		}
	default:
		// Devices and fifos are not needed to run a scoring runtime (/dev is mounted).
	}
	return nil
}

var linkat = unix.Linkat // tests fail it

// link makes name (inside root) a hard link of the cached file src, or a copy of it where
// the filesystem does not link (another filesystem, too many links).
func (w *composer) link(src, name string) error {
	parent := path.Dir(name)
	if w.parent == nil || w.parentName != parent {
		w.closeParent()
		f, err := w.root.Open(parent) // resolved inside root, like every path
		if err != nil {
			return err
		}
		w.parent, w.parentName = f, parent
	}
	base := path.Base(name)
	err := linkat(unix.AT_FDCWD, src, int(w.parent.Fd()), base, 0)
	if errors.Is(err, unix.EEXIST) && w.remove(name) {
		return w.link(src, name)
	}
	if errors.Is(err, unix.EXDEV) || errors.Is(err, unix.EMLINK) || errors.Is(err, unix.EPERM) {
		return w.copy(src, name)
	}
	return err
}

func (w *composer) copy(src, name string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := w.root.OpenFile(name, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, fi.Mode().Perm())
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}
