package datastore

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"unicode/utf8"

	"github.com/atelier-ml/atelier"
)

// A files datastore is a server folder opened as an os.Root: every path is resolved beneath it
// one component at a time, each opened relative to the one before (openat, O_NOFOLLOW, links
// resolved and checked by os itself), so that no read, write, listing, delete or digest leaves
// the folder, whatever links it holds or gains while a request runs. A link whose target is inside the folder works as its
// target (a relative link: an absolute target counts as outside). A path through a link that
// leads outside, or whose target is missing, is not found for a read, a delete or a digest,
// and refused for a write; listings leave such links out, since nothing can be read through
// them (see list).
//
// Files are named as they are, with no sidecar and no escaping, so that other programs can use
// the folder. A write goes to a temporary file beside its final path (NAME.<hex>.tmp, never
// across file systems), renamed into place when complete; listings leave those out.
//
// The bytes go straight to and from the *os.File: a local source is copied by the kernel
// (copy_file_range), a network stream in large reads, and a download leaves by sendfile.
// Nothing is hashed on the way unless the client asked for a check: the server computes a
// folder's digests when a client compares (see Digest), so a write need not.

// folder is an open files datastore.
type folder struct {
	root *os.Root
	// dir is the folder's path: it names the folder's files in the digest cache.
	dir string
}

// openFolder opens dir, which must be a folder unless create is set (a built-in datastore's,
// made at its first use).
func openFolder(dir string, create bool) (*folder, error) {
	if create {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, err
		}
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	return &folder{root: root, dir: dir}, nil
}

// errNotFile is what a path that is a folder (or a device, a socket...) reads as: no file.
var errNotFile = errors.New("not a regular file")

// open opens the file at path for reading.
func (f *folder) open(path string) (*os.File, os.FileInfo, error) {
	// Non-blocking, so that a FIFO is refused below instead of holding the open until some
	// program writes to it; the flag changes nothing for a regular file.
	file, err := f.root.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, nil, err
	}
	fi, err := file.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = errNotFile
	}
	if err != nil {
		file.Close()
		return nil, nil, err
	}
	return file, fi, nil
}

// stat returns the attributes of the file at path.
func (f *folder) stat(path string) (os.FileInfo, error) {
	fi, err := f.root.Stat(path)
	if err == nil && !fi.Mode().IsRegular() {
		err = errNotFile
	}
	return fi, err
}

// folderTemp matches the names of writes' temporary files (see tempName).
var folderTemp = regexp.MustCompile(`\.[0-9a-f]+\.tmp$`)

// tempName is the name of a temporary file for a write to name. A long name is cut so that
// the temporary one keeps to the limit on a name.
func tempName(name string) string {
	const suffix = len(".0123456789abcdef.tmp")
	if len(name) > maxComponent-suffix {
		name = name[:maxComponent-suffix]
		for !utf8.ValidString(name) {
			name = name[:len(name)-1]
		}
	}
	var r [8]byte
	rand.Read(r[:])
	return name + "." + hex.EncodeToString(r[:]) + ".tmp"
}

// writeFolder writes r to path in a files datastore. h, when set, hashes the content, which
// must then match want before the file becomes visible.
func (b *Bucket) writeFolder(ctx context.Context, path string, r io.Reader, want string, h hash.Hash) (*atelier.DatastoreFile, error) {
	dir, name := b.folder.root, path
	if i := strings.LastIndexByte(path, '/'); i >= 0 {
		parent := path[:i]
		if err := b.folder.root.MkdirAll(parent, 0o750); err != nil {
			if errors.Is(err, syscall.ENOTDIR) || errors.Is(err, fs.ErrExist) {
				return nil, atelier.Errorf(atelier.EINVALID, "datastore %q: %s: a folder of the path is a file; nothing was stored", b.name, path)
			}
			return nil, b.folderError("write", path, err)
		}
		// The folder is held open: the temporary file is created, renamed and removed in it
		// even if its path is swapped for a link meanwhile.
		d, err := b.folder.root.OpenRoot(parent)
		if err != nil {
			return nil, b.folderError("write", path, err)
		}
		defer d.Close()
		dir, name = d, path[i+1:]
	}
	tmpName := tempName(name)
	tmp, err := dir.OpenFile(tmpName, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o666)
	if err != nil {
		return nil, b.folderError("write", path, err)
	}
	placed := false
	defer func() {
		tmp.Close()
		if !placed {
			dir.Remove(tmpName)
		}
	}()
	src := r
	if h != nil {
		src = io.TeeReader(r, h)
	}
	n, readErr, writeErr := copyToFile(tmp, src)
	switch {
	case readErr != nil:
		return nil, b.sourceError(path, readErr) // the source's failure, not the storage's
	case writeErr != nil:
		return nil, b.folderError("write", path, writeErr)
	case h != nil:
		if sum := hex.EncodeToString(h.Sum(nil)); sum != want {
			return nil, atelier.Errorf(atelier.EINVALID, "datastore %q: %s: the content does not match sha256 %s (got %s); nothing was stored", b.name, path, want, sum)
		}
	}
	// Its attributes before it takes its name, which another write may take next.
	fi, err := tmp.Stat()
	if err != nil {
		return nil, b.folderError("write", path, err)
	}
	if fi.Size() != n {
		return nil, fmt.Errorf("datastore %q: %s: wrote %d bytes, the file holds %d", b.name, path, n, fi.Size())
	}
	if err := tmp.Close(); err != nil {
		return nil, b.folderError("write", path, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err // the client is gone: nothing is stored
	}
	if err := dir.Rename(tmpName, name); err != nil {
		return nil, b.folderError("write", path, err)
	}
	placed = true
	return &atelier.DatastoreFile{Path: path, Size: n, ModifiedAt: fi.ModTime().UTC(), SHA256: want}, nil
}

// openFolder opens path of a files datastore with its *os.File exposed to io.Copy (see
// folderReader).
func (b *Bucket) openFolder(path string) (*atelier.DatastoreFile, io.ReadCloser, error) {
	f, fi, err := b.folder.open(path)
	if err != nil {
		return nil, nil, b.folderError("read", path, err)
	}
	return &atelier.DatastoreFile{Path: path, Size: fi.Size(), ModifiedAt: fi.ModTime().UTC()}, &folderReader{b: b, path: path, f: f}, nil
}

// folderReader reads a folder's file. WriteTo hands the *os.File itself to the destination,
// so that io.Copy into an HTTP response (or another file) is done by the kernel.
type folderReader struct {
	b    *Bucket
	path string
	f    *os.File
}

func (r *folderReader) Read(p []byte) (int, error) {
	n, err := r.f.Read(p)
	if err != nil && err != io.EOF {
		err = r.b.folderError("read", r.path, err)
	}
	return n, err
}

func (r *folderReader) WriteTo(w io.Writer) (int64, error) { return io.Copy(w, r.f) }

func (r *folderReader) Close() error { return r.f.Close() }

// statFolder returns the attributes of a folder's file.
func (b *Bucket) statFolder(path string) (*atelier.DatastoreFile, error) {
	fi, err := b.folder.stat(path)
	if err != nil {
		return nil, b.folderError("stat", path, err)
	}
	return &atelier.DatastoreFile{Path: path, Size: fi.Size(), ModifiedAt: fi.ModTime().UTC()}, nil
}

// deleteFolder removes a folder's file (or empty folder). A link is removed itself, never what
// it points to.
func (b *Bucket) deleteFolder(path string) error {
	if err := b.folder.root.Remove(path); err != nil {
		return b.folderError("delete", path, err)
	}
	return nil
}

// errStop ends a listing's walk.
var errStop = errors.New("stop")

// listFolder returns up to limit files whose paths start with prefix and sort after after, in
// order, and the last one's path when more follow. Without recursive, a folder that holds a
// file is one entry (its path ends with '/'), and its files are not listed, as in cloud
// storage: so a folder without files is not listed either.
//
// A link is listed as its target: a file, or a folder (whose files a recursive listing lists
// under the link's path, as reads find them). A link that leads outside the datastore, or to
// nothing, is left out, as are other kinds of files (devices, sockets, FIFOs), the temporary
// files of writes in progress and paths longer than a datastore path can be: nothing can be
// read through them. A recursive listing does not enter a folder again within itself (a link
// to one of its parents).
func (b *Bucket) listFolder(ctx context.Context, prefix string, recursive bool, after string, limit int) ([]*atelier.DatastoreFile, string, error) {
	l := &lister{f: b.folder, ctx: ctx, prefix: prefix, recursive: recursive, after: after, limit: limit}
	start := prefix[:strings.LastIndexByte(prefix, '/')+1]
	err := l.walk(start, nil)
	switch {
	case err == nil:
	case errors.Is(err, errStop):
		return l.out, l.out[len(l.out)-1].Path, nil
	case errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) || errors.Is(err, errNotFile):
		// No such folder: nothing under the prefix, as in cloud storage.
	default:
		return nil, "", b.folderError("list", prefix, err)
	}
	return l.out, "", nil
}

type lister struct {
	f         *folder
	ctx       context.Context
	prefix    string
	recursive bool
	after     string
	limit     int
	out       []*atelier.DatastoreFile
	// more is set when a file beyond the page was found.
	more bool
}

// entry is a listed name of a folder, with the attributes of what it is or links to.
type entry struct {
	key string // its datastore path, with a '/' at the end for a folder
	fi  os.FileInfo
}

// walk lists the folder dir ("" for the root, else a path ending in '/'), whose parents
// (those a recursive walk came through) are ancestors.
func (l *lister) walk(dir string, ancestors []os.FileInfo) error {
	if err := l.ctx.Err(); err != nil {
		return err
	}
	name := strings.TrimSuffix(dir, "/")
	if name == "" {
		name = "."
	}
	d, err := l.f.root.Open(name)
	if err != nil {
		return err
	}
	defer d.Close()
	self, err := d.Stat()
	if err != nil {
		return err
	}
	if !self.IsDir() {
		return errNotFile
	}
	for _, a := range ancestors {
		if os.SameFile(a, self) {
			return nil // a link back to a parent: entered already
		}
	}
	ancestors = append(ancestors, self)
	des, err := d.ReadDir(-1)
	if err != nil {
		return err
	}
	entries := make([]entry, 0, len(des))
	for _, de := range des {
		e, ok := l.entry(dir, de)
		if ok && strings.HasPrefix(e.key, l.prefix) {
			entries = append(entries, e)
		}
	}
	// In the order of their paths: a folder's files come after "a-b" and before "a0" for the
	// folder "a/", as its key sorts; so the walk lists every path in order.
	slices.SortFunc(entries, func(a, b entry) int { return cmp.Compare(a.key, b.key) })
	for _, e := range entries {
		if !e.fi.IsDir() {
			if e.key > l.after {
				if err := l.add(&atelier.DatastoreFile{Path: e.key, Size: e.fi.Size(), ModifiedAt: e.fi.ModTime().UTC()}); err != nil {
					return err
				}
			}
			continue
		}
		if !l.recursive {
			if e.key > l.after && l.holdsFile(e.key, ancestors) {
				if err := l.add(&atelier.DatastoreFile{Path: e.key, Dir: true}); err != nil {
					return err
				}
			}
			continue
		}
		if l.after >= e.key && !strings.HasPrefix(l.after, e.key) {
			continue // every path in it sorts before the page's start
		}
		if err := l.walk(e.key, ancestors); err != nil {
			if errors.Is(err, errStop) || l.ctx.Err() != nil {
				return err
			}
			// Gone since it was read, swapped for a link that leads outside, unreadable:
			// as in its parent's listing, left out.
		}
	}
	return nil
}

// entry describes de, a name in the folder dir, as listed; ok is false for what is left out.
func (l *lister) entry(dir string, de fs.DirEntry) (e entry, ok bool) {
	key := dir + de.Name()
	var err error
	switch t := de.Type(); {
	case t.IsRegular():
		if folderTemp.MatchString(key) {
			return e, false
		}
		e.fi, err = de.Info()
	case t.IsDir():
		e.fi, err = de.Info()
	case t&fs.ModeSymlink != 0:
		// Resolved beneath the root: a link that leads outside fails here.
		e.fi, err = l.f.root.Stat(key)
	default:
		return e, false
	}
	if err != nil || !(e.fi.Mode().IsRegular() || e.fi.IsDir()) {
		return e, false
	}
	if e.fi.IsDir() {
		key += "/"
	}
	if len(strings.TrimSuffix(key, "/")) > atelier.MaxPathLength {
		return e, false
	}
	e.key = key
	return e, true
}

// add adds f to the page, or stops the walk when the page is full.
func (l *lister) add(f *atelier.DatastoreFile) error {
	if len(l.out) == l.limit {
		l.more = true
		return errStop
	}
	l.out = append(l.out, f)
	return nil
}

// holdsFile reports whether the folder dir holds a file, at any depth.
func (l *lister) holdsFile(dir string, ancestors []os.FileInfo) bool {
	sub := &lister{f: l.f, ctx: l.ctx, prefix: dir, recursive: true}
	sub.walk(dir, ancestors)
	return sub.more
}

// folderError is what an error of a files datastore's folder tells the user.
func (b *Bucket) folderError(op, path string, err error) error {
	what := fmt.Sprintf("datastore %q: %s", b.name, path)
	write := op == "write"
	switch {
	case escapes(err):
		if write {
			return atelier.Errorf(atelier.EINVALID, "%s: the path goes through a link that leads outside the datastore's folder; nothing was stored", what)
		}
		return atelier.Errorf(atelier.ENOTFOUND, "%s: not found: the path goes through a link that leads outside the datastore's folder, which the datastore does not follow", what)
	case errors.Is(err, syscall.ENAMETOOLONG):
		return atelier.Errorf(atelier.EINVALID, "%s: a name is too long for the server's file system (at most %d bytes per path component)", what, maxComponent)
	case errors.Is(err, syscall.ELOOP):
		return atelier.Errorf(atelier.ENOTFOUND, "%s: no such file (its links form a loop)", what)
	case errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EPERM):
		return atelier.Errorf(atelier.EFORBIDDEN, "%s: the server is not allowed to %s it in the datastore's folder", what, op)
	case errors.Is(err, syscall.EISDIR) || errors.Is(err, syscall.ENOTEMPTY) || errors.Is(err, fs.ErrExist):
		if write {
			return atelier.Errorf(atelier.EINVALID, "%s is a folder; nothing was stored", what)
		}
		return atelier.Errorf(atelier.EINVALID, "%s is a folder: delete it recursively", what)
	case errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) || errors.Is(err, errNotFile):
		if write {
			return atelier.Errorf(atelier.ENOTFOUND, "%s: its folder was removed while it was written; nothing was stored", what)
		}
		return atelier.Errorf(atelier.ENOTFOUND, "%s: no such file", what)
	}
	return b.mapError(op, path, err)
}

// escapes reports whether err is os.Root's refusal of a path that leads outside it: a link to
// outside, or with an absolute target. (os does not export that error; a test pins its text.)
func escapes(err error) bool {
	for ; err != nil; err = errors.Unwrap(err) {
		if err.Error() == "path escapes from parent" {
			return true
		}
	}
	return false
}
