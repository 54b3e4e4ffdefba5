package local

import (
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/atelier-ml/atelier"
)

// A mount reference is a read-only FUSE file system of the reference's files, as Azure ML's
// blobfuse mounts a dataset: the listing is read when the run starts, and a file's contents
// are fetched from the datastore (through the job's host) the first time the script opens it,
// into a cache beside the mount, then read from there. Files the script never opens are never
// fetched. The file system is the server's (or runner's) process; it is unmounted when the run
// ends, and a mount a killed process left is removed by CleanupMounts.

// mountFSName is the mounts' type in /proc/mounts: fuse.atelier-data.
const mountFSName = "atelier-data"

// mountedData is one mounted reference.
type mountedData struct {
	ctx   context.Context
	host  atelier.JobHost
	job   *atelier.Job
	ref   atelier.DataReference
	cache string

	mu      sync.Mutex
	fetches map[string]*fetch // datastore path →
}

type fetch struct {
	done  chan struct{}
	local string
	err   error
}

// dataNode is a file of the mount.
type dataNode struct {
	fs.Inode
	m     *mountedData
	path  string // in the datastore
	size  int64
	mtime time.Time
}

var (
	_ fs.NodeOpener    = (*dataNode)(nil)
	_ fs.NodeGetattrer = (*dataNode)(nil)
)

func (n *dataNode) Getattr(ctx context.Context, fh fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	out.Mode = fuse.S_IFREG | 0o444
	out.Size = uint64(n.size)
	out.Nlink = 1
	if !n.mtime.IsZero() {
		out.SetTimes(nil, &n.mtime, &n.mtime)
	}
	return 0
}

func (n *dataNode) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	if flags&(syscall.O_WRONLY|syscall.O_RDWR|syscall.O_TRUNC|syscall.O_APPEND) != 0 {
		return nil, 0, syscall.EROFS
	}
	local, err := n.m.fetch(n.path)
	if err != nil {
		return nil, 0, syscall.EIO
	}
	f, err := os.Open(local)
	if err != nil {
		return nil, 0, fs.ToErrno(err)
	}
	// The cached file does not change: the kernel may keep its pages.
	return fs.NewLoopbackFileFromOS(f), fuse.FOPEN_KEEP_CACHE, 0
}

// fetch returns the cached copy of a datastore file, fetching it once.
func (m *mountedData) fetch(p string) (string, error) {
	m.mu.Lock()
	f := m.fetches[p]
	if f == nil {
		f = &fetch{done: make(chan struct{})}
		m.fetches[p] = f
		m.mu.Unlock()
		f.local, f.err = m.download(p)
		close(f.done)
		if f.err != nil {
			m.mu.Lock()
			delete(m.fetches, p) // the next open tries again
			m.mu.Unlock()
		}
		return f.local, f.err
	}
	m.mu.Unlock()
	<-f.done
	return f.local, f.err
}

func (m *mountedData) download(p string) (string, error) {
	rc, err := m.host.OpenData(m.ctx, m.job, m.ref, p)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	tmp, err := os.CreateTemp(m.cache, "fetch-*")
	if err != nil {
		return "", err
	}
	if _, err := io.Copy(tmp, rc); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return "", err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return "", err
	}
	return tmp.Name(), nil
}

// dataFolder is a folder of the mount: readable and searchable by anyone (the script may run
// as another user).
type dataFolder struct{ fs.Inode }

var _ fs.NodeGetattrer = (*dataFolder)(nil)

func (d *dataFolder) Getattr(ctx context.Context, fh fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	out.Mode = fuse.S_IFDIR | 0o555
	return 0
}

// mountRoot builds the tree of the listed files when the file system is mounted.
type mountRoot struct {
	dataFolder
	m     *mountedData
	files []*atelier.DatastoreFile
	rels  []string
}

var _ fs.NodeOnAdder = (*mountRoot)(nil)

func (r *mountRoot) OnAdd(ctx context.Context) {
	dirs := map[string]*fs.Inode{"": r.EmbeddedInode()}
	var dirOf func(d string) *fs.Inode
	dirOf = func(d string) *fs.Inode {
		if in := dirs[d]; in != nil {
			return in
		}
		parent, name := path.Split(d)
		p := dirOf(strings.TrimSuffix(parent, "/"))
		in := p.NewPersistentInode(ctx, &dataFolder{}, fs.StableAttr{Mode: fuse.S_IFDIR})
		p.AddChild(name, in, false)
		dirs[d] = in
		return in
	}
	for i, f := range r.files {
		d, name := path.Split(r.rels[i])
		parent := dirOf(strings.TrimSuffix(d, "/"))
		node := &dataNode{m: r.m, path: f.Path, size: f.Size, mtime: f.ModifiedAt}
		parent.AddChild(name, parent.NewPersistentInode(ctx, node, fs.StableAttr{Mode: fuse.S_IFREG}), false)
	}
}

// mount mounts the reference's files at dir (which exists and is empty) and returns the path
// to give the script (dir, or the file when the reference names one) and how to unmount it.
func mount(ctx context.Context, host atelier.JobHost, job *atelier.Job, ref atelier.DataReference, dir, cache string, log io.Writer) (string, func(), error) {
	where := ref.Datastore + ":" + ref.Path
	files, err := host.ListData(ctx, job, ref)
	if err != nil {
		return "", nil, atelier.Wrap(err, "data %q: listing %s", ref.Name, where)
	}
	if len(files) == 0 {
		return "", nil, atelier.Errorf(atelier.ENOTFOUND, "data %q: %s holds no files", ref.Name, where)
	}
	rels, single, err := localNames(ref, files)
	if err != nil {
		return "", nil, err
	}
	if err := os.MkdirAll(cache, 0o700); err != nil {
		return "", nil, err
	}
	m := &mountedData{ctx: context.WithoutCancel(ctx), host: host, job: job, ref: ref, cache: cache, fetches: map[string]*fetch{}}
	root := &mountRoot{m: m, files: files, rels: rels}
	timeout := time.Second
	opts := &fs.Options{EntryTimeout: &timeout, AttrTimeout: &timeout, MountOptions: fuse.MountOptions{
		FsName: "atelier:" + where, Name: mountFSName, DirectMount: true, MaxReadAhead: 1 << 20,
		// The script may run as another user (run-as): it must see the files.
		AllowOther: os.Geteuid() == 0, Options: []string{"ro", "default_permissions"},
	}}
	server, err := fs.Mount(dir, root, opts)
	if err != nil {
		return "", nil, err
	}
	var size int64
	for _, f := range files {
		size += f.Size
	}
	fmt.Fprintf(log, "mounted data %s at %s: %d files (%d bytes) from %s, each fetched when first opened\n", ref.Name, dir, len(files), size, where)
	unmount := func() {
		if err := server.Unmount(); err != nil {
			syscall.Unmount(dir, syscall.MNT_DETACH)
		}
		server.Wait()
	}
	if single {
		return filepath.Join(dir, filepath.FromSlash(rels[0])), unmount, nil
	}
	return dir, unmount, nil
}

// localNames are the files' names under the reference's local folder (the base name of a
// reference to one file); single tells whether it names one file.
func localNames(ref atelier.DataReference, files []*atelier.DatastoreFile) ([]string, bool, error) {
	single := len(files) == 1 && files[0].Path == ref.Path
	rels := make([]string, len(files))
	for i, f := range files {
		rel := strings.TrimPrefix(f.Path, ref.Folder())
		if single {
			rel = path.Base(f.Path)
		}
		if atelier.ValidatePath(rel) != nil {
			return nil, false, atelier.Errorf(atelier.EINVALID, "data %q: %s is not a file name this machine can use", ref.Name, f.Path)
		}
		rels[i] = rel
	}
	return rels, single, nil
}
