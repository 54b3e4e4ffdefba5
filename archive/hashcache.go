package archive

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// HashCache remembers file digests by absolute path, size, modification time and inode, so that
// scanning an unchanged tree again reads no file content. The CLI keeps one cache per source
// directory in the user cache directory (see CachePath), loads it before Scan and saves it after.
// It is safe for concurrent use.
type HashCache struct {
	path string
	mu   sync.Mutex
	old  map[string]cacheEntry // as loaded
	used map[string]cacheEntry // looked up or added since loading: what Save writes
}

type cacheEntry struct {
	Size    int64  `json:"size"`
	ModTime int64  `json:"mtime_ns"`
	Inode   uint64 `json:"inode,omitempty"`
	Digest  string `json:"digest"`
}

type cacheFile struct {
	Version int                   `json:"version"`
	Files   map[string]cacheEntry `json:"files"`
}

const cacheVersion = 1

// racyWindow: a file written in the same clock tick as its hash could change without changing its
// modification time (coarse timestamps on some file systems), so recently modified files are not
// cached. This is git's "racy clean" problem.
const racyWindow = 2 * time.Second

// CachePath returns where the CLI keeps the hash cache of the source directory dir:
// <user cache dir>/atelier/snapshot-hashes/<sha256 of the absolute dir>.json.
func CachePath(dir string) (string, error) { return cachePath("snapshot-hashes", dir) }

// ModelCachePath returns where the CLI keeps the digests of a local folder registered as a model
// (under model-hashes/): they tell which files the server may already hold.
func ModelCachePath(dir string) (string, error) { return cachePath("model-hashes", dir) }

func cachePath(kind, dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	base, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256([]byte(abs))
	return filepath.Join(base, "atelier", kind, hex.EncodeToString(sum[:16])+".json"), nil
}

// LoadHashCache reads the cache at path. A missing or unreadable cache is an empty one: it is
// only an optimisation and must never block a submit.
func LoadHashCache(path string) (*HashCache, error) {
	c := &HashCache{path: path, old: map[string]cacheEntry{}, used: map[string]cacheEntry{}}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return c, nil
	} else if err != nil {
		return nil, err
	}
	var f cacheFile
	if json.Unmarshal(data, &f) == nil && f.Version == cacheVersion && f.Files != nil {
		c.old = f.Files
	}
	return c, nil
}

// Save writes the entries of the files looked up since loading, so deleted files drop out.
// The file is replaced atomically: a concurrent reader sees the old or the new cache.
func (c *HashCache) Save() error {
	c.mu.Lock()
	data, err := json.Marshal(cacheFile{Version: cacheVersion, Files: c.used})
	c.mu.Unlock()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(c.path), 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(c.path), ".hashes-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), c.path)
}

// Lookup returns the digest cached for the file at path (absolute) if info, its current stat,
// still matches what was cached.
func (c *HashCache) Lookup(path string, info fs.FileInfo) (string, bool) {
	return c.lookup(path, cacheEntry{Size: info.Size(), ModTime: info.ModTime().UnixNano(), Inode: inode(info)})
}

// Add records digest as the content of the file at path as info (taken before reading it)
// describes it. A file modified less than racyWindow before its reading began (at since) is
// not recorded: it could change again without its stat changing.
func (c *HashCache) Add(path string, info fs.FileInfo, digest string, since time.Time) {
	if since.Sub(info.ModTime()) <= racyWindow {
		return
	}
	c.add(path, cacheEntry{Size: info.Size(), ModTime: info.ModTime().UnixNano(), Inode: inode(info), Digest: digest})
}

// lookup returns the digest cached for path if its stat still matches; a nil cache never hits.
func (c *HashCache) lookup(path string, key cacheEntry) (string, bool) {
	if c == nil {
		return "", false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.old[path]
	if !ok || e.Size != key.Size || e.ModTime != key.ModTime || e.Inode != key.Inode {
		return "", false
	}
	c.used[path] = e
	return e.Digest, true
}

func (c *HashCache) add(path string, e cacheEntry) {
	if c == nil {
		return
	}
	c.mu.Lock()
	c.used[path] = e
	c.old[path] = e
	c.mu.Unlock()
}
