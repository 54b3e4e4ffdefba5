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

// RemoveUnpacked removes an image directory Unpack wrote and the cached layers no other image
// there uses (see RemoveUnpacked).
func (w *Workspaces) RemoveUnpacked(dir string) error { return RemoveUnpacked(dir) }

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
		id, err := diffIDHex(cfg, layers, i)
		if err != nil {
			return nil, fmt.Errorf("unpacking image %s: %w", digest, err)
		}
		if cached[i], err = c.get(ctx, l, id); err != nil {
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
	rootFD, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(rootFD)
	w := &composer{root: root, rootFD: rootFD, fds: map[string]int{}}
	defer w.forget()
	fileMap := map[string]bool{}
	opaqueDirs := map[string]bool{}
	for i := len(layers) - 1; i >= 0; i-- {
		l := layers[i]
		layerOpaque := map[string]bool{}
		files := -1
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
			if tombstone {
				continue
			}
			if e.Typeflag == tar.TypeReg && files < 0 {
				if files, err = unix.Open(filepath.Join(l.dir, "f"), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err != nil {
					return err
				}
				defer unix.Close(files)
			}
			if err := w.write(files, &e); err != nil {
				return err
			}
		}
		for d := range layerOpaque {
			opaqueDirs[d] = true
		}
	}
	return nil
}

// composer writes entries inside root as the unpacking of the flattened tar always did
// (os.Root: MkdirAll of the parent, Chmod of a directory, Remove then write), by descriptors
// of the directories met: a name is looked up in its parent without following symbolic links,
// and whatever is not a plain directory there is resolved by os.Root, as it was.
type composer struct {
	root   *os.Root
	rootFD int
	fds    map[string]int // open directories of the tree, by name
}

// forget closes the open directories (after a removal, which may have removed one).
func (w *composer) forget() {
	for _, fd := range w.fds {
		unix.Close(fd)
	}
	clear(w.fds)
}

// remove removes name, reporting whether something was.
func (w *composer) remove(name string) bool {
	if w.root.Remove(name) == nil {
		w.forget()
		return true
	}
	return false
}

// dir returns an open descriptor of directory name ("." the root), made with its parents
// (as MkdirAll) if it is not there.
func (w *composer) dir(name string) (int, error) {
	if name == "." {
		return w.rootFD, nil
	}
	if fd, ok := w.fds[name]; ok {
		return fd, nil
	}
	parent, err := w.dir(path.Dir(name))
	if err != nil {
		return -1, err
	}
	base := path.Base(name)
	const flags = unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC
	fd, err := unix.Openat(parent, base, flags, 0)
	if errors.Is(err, unix.ENOENT) {
		if err = unix.Mkdirat(parent, base, 0o755); err == nil || errors.Is(err, unix.EEXIST) {
			fd, err = unix.Openat(parent, base, flags, 0)
		}
	}
	if err != nil { // a symbolic link, or not a directory: as os.Root has it
		if err := w.root.MkdirAll(name, 0o755); err != nil {
			return -1, err
		}
		f, err := w.root.Open(name)
		if err != nil {
			return -1, err
		}
		fd, err = unix.Dup(int(f.Fd()))
		f.Close()
		if err != nil {
			return -1, err
		}
		unix.CloseOnExec(fd)
	}
	w.fds[name] = fd
	return fd, nil
}

// write writes entry e; files is the descriptor of its layer's cached files.
func (w *composer) write(files int, e *layerEntry) error {
	name := path.Clean("/" + e.Name)[1:]
	if name == "" {
		return nil
	}
	if len(w.fds) > 512 {
		w.forget()
	}
	mode := fs.FileMode(e.Mode) & fs.ModePerm
	parent, err := w.dir(path.Dir(name))
	if err != nil {
		return fmt.Errorf("%s: %w", e.Name, err)
	}
	base := path.Base(name)
	switch e.Typeflag {
	case tar.TypeDir:
		fd, err := w.dir(name)
		if err != nil {
			return fmt.Errorf("%s: %w", e.Name, err)
		}
		unix.Fchmod(fd, uint32(mode|0o700))
	case tar.TypeReg:
		if err := w.link(files, e.File, parent, name); err != nil {
			return fmt.Errorf("%s: %w", e.Name, err)
		}
	case tar.TypeSymlink:
		err := unix.Symlinkat(e.Linkname, parent, base)
		if errors.Is(err, unix.EEXIST) && w.remove(name) {
			return w.write(files, e)
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

// link makes name (inside root, in the open directory parent) a hard link of the cached file
// n of files, or a copy of it where the filesystem does not link (another filesystem, too many
// links).
func (w *composer) link(files, n, parent int, name string) error {
	src := strconv.Itoa(n)
	err := linkat(files, src, parent, path.Base(name), 0)
	if errors.Is(err, unix.EEXIST) && w.remove(name) {
		if parent, err = w.dir(path.Dir(name)); err != nil {
			return err
		}
		err = linkat(files, src, parent, path.Base(name), 0)
	}
	if errors.Is(err, unix.EXDEV) || errors.Is(err, unix.EMLINK) || errors.Is(err, unix.EPERM) {
		return w.copy(files, src, name)
	}
	return err
}

func (w *composer) copy(files int, src, name string) error {
	fd, err := unix.Openat(files, src, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	in := os.NewFile(uintptr(fd), src)
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return err
	}
	w.remove(name)
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
