package datastore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"io"
	"os"
	"sync"
	"time"

	"gocloud.dev/blob"

	"github.com/atelier-ml/atelier"
)

// sha256Key is the metadata key under which a write with a known digest stores it (S3
// x-amz-meta-sha256, Azure and GCS metadata): listings of S3 multipart objects and of Azure
// blocks carry no MD5, so this is what lets a re-upload of an unchanged file skip it.
const sha256Key = "sha256"

// DigestCache remembers the sha256 of files in server folders, so that a files datastore
// answers Digest for an unchanged file without reading it again. An entry holds only while the
// file keeps its size, modification time, inode and change time: the change time cannot be set
// by programs (unlike the modification time, which cp -p or rsync -t carry over), so a
// rewritten file is seen as changed even when its size and modification time are the old ones.
// It lives in memory, so a restarted server reads each file once more.
//
// File systems stamp times at a coarse granularity (a kernel tick, or up to 2 s), so a file
// rewritten within the same tick as its last change keeps every one of those values. As git
// does for its index, a digest is therefore not cached while the file's last change is
// recent (racyWindow): such a file is read again at its next Digest.
type DigestCache struct {
	mu  sync.Mutex
	max int
	m   map[string]cachedDigest
	// now is the wall clock the file system's timestamps are compared with.
	now func() time.Time
}

// racyWindow is how recent a file's last change may be for its digest to be cached: above any
// file system's timestamp granularity.
const racyWindow = 3 * time.Second

type cachedDigest struct {
	id     fileID
	sha256 string
}

// fileID is what must not change for a cached digest to hold.
type fileID struct {
	size    int64
	mod     time.Time
	ino     uint64 // 0 where the system does not report it
	changed int64  // the change time in ns, 0 where the system does not report it
}

// NewDigestCache keeps up to max entries.
func NewDigestCache(max int) *DigestCache {
	return &DigestCache{max: max, m: map[string]cachedDigest{}, now: time.Now}
}

func (c *DigestCache) get(file string, id fileID) string {
	if c == nil {
		return ""
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.m[file]; ok && e.id.equal(id) {
		return e.sha256
	}
	return ""
}

func (c *DigestCache) put(file string, id fileID, sum string) {
	if c == nil || c.now().Sub(id.lastChange()) < racyWindow {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[file]; !ok && len(c.m) >= c.max {
		// Any entry: a forgotten digest costs one more read of its file, nothing else.
		for k := range c.m {
			delete(c.m, k)
			break
		}
	}
	c.m[file] = cachedDigest{id: id, sha256: sum}
}

// lastChange is the later of the modification and change times.
func (a fileID) lastChange() time.Time {
	if c := time.Unix(0, a.changed); a.changed != 0 && c.After(a.mod) {
		return c
	}
	return a.mod
}

func (a fileID) equal(b fileID) bool {
	return a.size == b.size && a.mod.Equal(b.mod) && a.ino == b.ino && a.changed == b.changed
}

// idOf is a folder file's identity.
func idOf(fi os.FileInfo) fileID {
	id := fileID{size: fi.Size(), mod: fi.ModTime()}
	id.ino, id.changed = inodeAndChange(fi)
	return id
}

// Digest returns the file's attributes with its sha256 where it is known without the client
// reading the content: from the object's metadata on cloud storage; computed here (and cached)
// for a server folder.
func (b *Bucket) Digest(ctx context.Context, path string) (*atelier.DatastoreFile, error) {
	if err := validPath(path); err != nil {
		return nil, err
	}
	if b.folder != nil {
		return b.digestFolder(ctx, path)
	}
	a, err := b.b.Attributes(ctx, path)
	if err != nil {
		return nil, b.mapError("stat", path, err)
	}
	return fileOf(path, a), nil // with the metadata's digest, if any
}

// digestFolder is Digest for a folder's file.
func (b *Bucket) digestFolder(ctx context.Context, path string) (*atelier.DatastoreFile, error) {
	fi, err := b.folder.stat(path)
	if err != nil {
		return nil, b.folderError("stat", path, err)
	}
	f := &atelier.DatastoreFile{Path: path, Size: fi.Size(), ModifiedAt: fi.ModTime().UTC()}
	file := b.folder.dir + "\x00" + path
	if sum := b.digests.get(file, idOf(fi)); sum != "" {
		f.SHA256 = sum
		return f, nil
	}
	r, fi, err := b.folder.open(path)
	if err != nil {
		return nil, b.folderError("read", path, err)
	}
	defer r.Close()
	id := idOf(fi)
	f.Size, f.ModifiedAt = fi.Size(), fi.ModTime().UTC()
	buf := bufs.Get().(*[bufferSize]byte)
	defer bufs.Put(buf)
	h := sha256.New()
	if _, err := io.CopyBuffer(h, &ctxReader{ctx, r}, buf[:]); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, b.folderError("read", path, err)
	}
	// Kept only if the file did not change while it was read; otherwise no digest, and the
	// client sends its file again.
	if fi2, err := r.Stat(); err == nil && idOf(fi2).equal(id) {
		b.digests.put(file, id, hexSum(h))
		f.SHA256 = hexSum(h)
	}
	return f, nil
}

func hexSum(h hash.Hash) string { return hex.EncodeToString(h.Sum(nil)) }

// fileOf is the datastore file of attributes a, with the digest its metadata holds.
func fileOf(path string, a *blob.Attributes) *atelier.DatastoreFile {
	f := &atelier.DatastoreFile{Path: path, Size: a.Size, MD5: hex.EncodeToString(a.MD5), ModifiedAt: a.ModTime.UTC(), ETag: a.ETag}
	if d := a.Metadata[sha256Key]; atelier.ValidateDigest(d) == nil {
		f.SHA256 = d
	}
	return f
}
