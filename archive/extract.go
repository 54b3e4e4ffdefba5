package archive

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/atelier-ml/atelier"
)

// Extract writes entries under dest, creating it and the directories on the way (executables get
// mode 0755). An entry whose path is invalid or would land outside dest, also through a symbolic
// link already there, is refused with EINVALID before anything is written for it. Each content
// must match its entry's size and digest.
func Extract(ctx context.Context, entries []atelier.SnapshotEntry, dest string, open func(e atelier.SnapshotEntry) (io.ReadCloser, error)) error {
	x, err := newExtractor(dest)
	if err != nil {
		return err
	}
	// Paths are checked (and directories made) one at a time; the files are then written by a
	// few workers. Content is checked by size: the object store verified each digest when it
	// stored the object, and skipping the hash lets the kernel copy local files
	// (copy_file_range) without the data passing through this process.
	targets := make([]string, len(entries))
	for i, e := range entries {
		if targets[i], err = x.prepare(e.Path); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
		next  atomic.Int64
	)
	for w := 0; w < min(runtime.NumCPU()+2, len(entries)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(entries) || ctx.Err() != nil {
					return
				}
				if err := extractOne(x, entries[i], targets[i], open); err != nil {
					once.Do(func() { first = err; cancel() })
					return
				}
			}
		}()
	}
	wg.Wait()
	if first != nil {
		return first
	}
	return ctx.Err()
}

func extractOne(x *extractor, e atelier.SnapshotEntry, target string, open func(e atelier.SnapshotEntry) (io.ReadCloser, error)) error {
	rc, err := open(e)
	if err != nil {
		return err
	}
	n, err := x.write(target, e.Executable, rc)
	rc.Close()
	if err == nil && n != e.Size {
		return atelier.Errorf(atelier.ECONFLICT, "the content of %s does not match its size: it changed after it was scanned", e.Path)
	}
	return err
}

// ExtractZip extracts the zip file at zipPath under dest, with ReadZip's checks: a zip with any
// bad entry is refused before a file is written.
func ExtractZip(zipPath, dest string, opt Options) error {
	f, err := os.Open(zipPath)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	x, err := newExtractor(dest)
	if err != nil {
		return err
	}
	return ReadZip(f, fi.Size(), opt, func(p string, executable bool, r io.Reader) error {
		target, err := x.prepare(p)
		if err != nil {
			return err
		}
		_, err = x.write(target, executable, r)
		return err
	})
}

type extractor struct {
	root string          // absolute, symlinks resolved, so that resolved links compare with it
	dirs map[string]bool // directories already checked or made
}

func newExtractor(dest string) (*extractor, error) {
	root, err := filepath.Abs(dest)
	if err == nil {
		err = os.MkdirAll(root, 0o755)
	}
	if err == nil {
		root, err = filepath.EvalSymlinks(root)
	}
	if err != nil {
		return nil, err
	}
	return &extractor{root: root, dirs: map[string]bool{}}, nil
}

// prepare checks that the slash path p lands inside the root and makes its directories. It walks
// them one by one because MkdirAll would follow a symlink out of the root.
func (x *extractor) prepare(p string) (string, error) {
	if err := atelier.ValidatePath(p); err != nil {
		return "", err
	}
	target := filepath.Join(x.root, filepath.FromSlash(p))
	if !within(x.root, target) {
		return "", atelier.Errorf(atelier.EINVALID, "snapshot entry %q escapes the destination directory", p)
	}
	elems := strings.Split(p, "/")
	dir := x.root
	for _, el := range elems[:len(elems)-1] {
		dir = filepath.Join(dir, el)
		if x.dirs[dir] {
			continue
		}
		fi, err := os.Lstat(dir)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			err = os.Mkdir(dir, 0o755)
		case err != nil:
		case fi.Mode()&fs.ModeSymlink != 0:
			if real, rerr := filepath.EvalSymlinks(dir); rerr != nil || !within(x.root, real) {
				return "", atelier.Errorf(atelier.EINVALID, "snapshot entry %q: %s is a symbolic link out of the destination directory", p, el)
			}
		case !fi.IsDir():
			return "", atelier.Errorf(atelier.EINVALID, "snapshot entry %q: %s is a file, not a directory", p, el)
		}
		if err != nil {
			return "", err
		}
		x.dirs[dir] = true
	}
	// A symlink already at the target would redirect the write; the snapshot puts a file there.
	if fi, err := os.Lstat(target); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
		if err := os.Remove(target); err != nil {
			return "", err
		}
	}
	return target, nil
}

func (x *extractor) write(target string, executable bool, r io.Reader) (int64, error) {
	f, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode(executable))
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(f, r)
	if err == nil {
		err = f.Chmod(mode(executable)) // an existing file keeps its mode otherwise
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return n, err
}
