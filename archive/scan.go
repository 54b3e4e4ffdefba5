package archive

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/atelier-ml/atelier"
)

// LocalFile is a file of a source directory, ready to upload.
type LocalFile struct {
	atelier.SnapshotEntry
	LocalPath string // absolute path to read the content from
	ModTime   time.Time
}

// Scan lists and hashes the files of the source directory dir, sorted by path.
//
// When dir/.amlignore exists, .amlignore files (at the root and below) say what to leave out and
// .gitignore files are not read; otherwise .gitignore files do. Both use gitignore syntax. .git is
// always left out. A symbolic link to a file inside dir is followed; one to a directory or out of
// dir is an error, so a snapshot never silently holds files from elsewhere. Sockets, pipes and
// devices are skipped. The limits of opt are checked before any file is read.
func Scan(ctx context.Context, dir string, opt Options) ([]LocalFile, error) {
	opt = opt.withDefaults()
	root, err := filepath.Abs(dir)
	if err == nil {
		root, err = filepath.EvalSymlinks(root)
	}
	if err != nil {
		return nil, atelier.Errorf(atelier.EINVALID, "cannot read the source directory %q: %v", dir, err)
	}
	w := &walker{ctx: ctx, root: root, ignoreName: ".gitignore",
		// Past the limit, count on a while so the message names the real culprits, then stop:
		// a tree with a million files must fail fast.
		stopAt: 10 * opt.MaxFiles}
	if _, err := os.Lstat(filepath.Join(root, ".amlignore")); err == nil {
		w.ignoreName = ".amlignore"
	}
	err = w.walk("", nil)
	if err != nil && err != errStopped {
		return nil, err
	}
	sizes := make([]sized, len(w.files))
	for i, f := range w.files {
		sizes[i] = sized{f.Path, f.Size}
	}
	if err := checkLimits(sizes, err == nil, opt); err != nil {
		return nil, err
	}
	if err := hashAll(ctx, w.files, opt.Cache); err != nil {
		return nil, err
	}
	out := make([]LocalFile, len(w.files))
	for i, f := range w.files {
		out[i] = f.LocalFile
	}
	return out, nil
}

var errStopped = errors.New("too many files")

type walker struct {
	ctx        context.Context
	root       string // absolute, symlinks resolved
	ignoreName string
	stopAt     int
	files      []scanned // in path order, since directories are read sorted
}

type scanned struct {
	LocalFile
	inode uint64
}

// walk adds the files of the directory dir (a slash path relative to the root, "" for the root).
// stack holds the ignore files of the directories above it.
func (w *walker) walk(dir string, stack []*ignoreFile) error {
	if err := w.ctx.Err(); err != nil {
		return err
	}
	abs := filepath.Join(w.root, filepath.FromSlash(dir))
	ents, err := os.ReadDir(abs)
	if err != nil {
		return readError(dir, err)
	}
	if data, err := os.ReadFile(filepath.Join(abs, w.ignoreName)); err == nil {
		// Clip so siblings do not share (and overwrite) the appended slot.
		stack = append(stack[:len(stack):len(stack)], parseIgnore(dir, data))
	} else if !errors.Is(err, fs.ErrNotExist) {
		return readError(path.Join(dir, w.ignoreName), err)
	}
	for _, de := range ents {
		if de.Name() == ".git" {
			continue // a repository, or a submodule's gitlink file: never source
		}
		rel, full := path.Join(dir, de.Name()), filepath.Join(abs, de.Name())
		info, err := de.Info()
		if err != nil {
			return readError(rel, err)
		}
		link := info.Mode()&fs.ModeSymlink != 0
		if link {
			// Match ignore patterns on the target's type, so "dir/" ignores a link to a directory.
			if ti, err := os.Stat(full); err == nil {
				info = ti
			} else if !ignored(stack, rel, false) {
				return atelier.Errorf(atelier.EINVALID, "symlink %s is broken: %v; remove it or list it in .amlignore", rel, err)
			}
		}
		if ignored(stack, rel, info.IsDir()) {
			continue
		}
		if link {
			target, err := filepath.EvalSymlinks(full)
			if err != nil || !within(w.root, target) {
				return atelier.Errorf(atelier.EINVALID, "symlink %s points outside the source directory; copy the file in or list the link in .amlignore", rel)
			}
			if info.IsDir() {
				return atelier.Errorf(atelier.EINVALID, "symlink %s points to a directory; snapshots follow links to files only, list it in .amlignore", rel)
			}
		}
		if info.IsDir() {
			if err := w.walk(rel, stack); err != nil {
				return err
			}
			continue
		}
		if !info.Mode().IsRegular() {
			continue // sockets, pipes, devices: not source, and reading a pipe would block
		}
		if err := atelier.ValidatePath(rel); err != nil {
			return err
		}
		w.files = append(w.files, scanned{
			LocalFile: LocalFile{
				SnapshotEntry: atelier.SnapshotEntry{Path: rel, Size: info.Size(), Executable: info.Mode()&0o111 != 0},
				LocalPath:     full,
				ModTime:       info.ModTime(),
			},
			inode: inode(info),
		})
		if len(w.files) > w.stopAt {
			return errStopped
		}
	}
	return nil
}

// readError reports a file the user cannot read as invalid input, naming it: it is theirs to fix.
func readError(rel string, err error) error {
	if rel == "" {
		rel = "."
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err // the path is named already
	}
	return atelier.Errorf(atelier.EINVALID, "cannot read %s in the source directory: %v", rel, err)
}

// hashAll fills the digests of files with one worker per CPU: hashing is CPU-bound once the page
// cache is warm, and reading in parallel also helps on cold SSDs.
func hashAll(ctx context.Context, files []scanned, cache *HashCache) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		next     atomic.Int64
		once     sync.Once
		firstErr error
		wg       sync.WaitGroup
	)
	start := time.Now()
	for range min(runtime.NumCPU(), len(files)) {
		wg.Go(func() {
			buf := make([]byte, 256<<10)
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= len(files) {
					return
				}
				if err := hashFile(&files[i], buf, cache, start); err != nil {
					once.Do(func() { firstErr = err; cancel() })
					return
				}
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	return ctx.Err()
}

func hashFile(f *scanned, buf []byte, cache *HashCache, start time.Time) error {
	key := cacheEntry{Size: f.Size, ModTime: f.ModTime.UnixNano(), Inode: f.inode}
	if d, ok := cache.lookup(f.LocalPath, key); ok {
		f.Digest = d
		return nil
	}
	file, err := os.Open(f.LocalPath)
	if err != nil {
		return readError(f.Path, err)
	}
	defer file.Close()
	h := sha256.New()
	// Hide WriterTo so that CopyBuffer uses buf: fewer, larger reads.
	n, err := io.CopyBuffer(h, struct{ io.Reader }{file}, buf)
	if err != nil {
		return readError(f.Path, err)
	}
	// The digest is of what was read, so the size must be too, even if the file just changed.
	f.Digest, f.Size = hex.EncodeToString(h.Sum(nil)), n
	if fi, err := file.Stat(); err == nil && fi.Size() == key.Size && fi.ModTime().UnixNano() == key.ModTime &&
		start.Sub(f.ModTime) > racyWindow {
		key.Digest = f.Digest
		cache.add(f.LocalPath, key)
	}
	return nil
}
