package build

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/pgzip"

	"github.com/atelier-ml/atelier/internal/atomicfile"
)

// layerFormat names how layers are written; it is part of every cache key, so changing the
// writing (compression, tar details) never serves a layer written the old way.
const layerFormat = "atelier-layer-v2 tar klauspost-pgzip-1-1MiB"

// gzipBlock is the size of the blocks a layer is compressed in (part of layerFormat).
const gzipBlock = 1 << 20

// cache keeps built layers on disk by the digest of their inputs: <key>.tar.gz is the layer
// blob and <key>.json its digests, written last, so a key is present only when complete.
// Concurrent builds may write the same key; each writes a file of its own and renames it.
type cache struct {
	dir string
}

func openCache(dir string) (*cache, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("layer cache: %w", err)
	}
	return &cache{dir: dir}, nil
}

type layerMeta struct {
	Digest v1.Hash `json:"digest"`
	DiffID v1.Hash `json:"diffID"`
	Size   int64   `json:"size"`
	// Files indexes a wheel's layer: every path in it, with the content's hash (or "dir").
	Files map[string]string `json:"files,omitempty"`
}

// cachedLayer is a layer stored in the cache: its digests are known without reading it.
type cachedLayer struct {
	path string
	meta layerMeta
}

func (l *cachedLayer) Digest() (v1.Hash, error)            { return l.meta.Digest, nil }
func (l *cachedLayer) DiffID() (v1.Hash, error)            { return l.meta.DiffID, nil }
func (l *cachedLayer) Size() (int64, error)                { return l.meta.Size, nil }
func (l *cachedLayer) MediaType() (types.MediaType, error) { return types.OCILayer, nil }
func (l *cachedLayer) Compressed() (io.ReadCloser, error)  { return os.Open(l.path) }
func (l *cachedLayer) layer() (v1.Layer, error)            { return partial.CompressedToLayer(l) }
func (c *cache) paths(key string) (blob, meta string) {
	return filepath.Join(c.dir, key+".tar.gz"), filepath.Join(c.dir, key+".json")
}

// get returns the layer stored under key, or nil when there is none.
func (c *cache) get(key string) (*cachedLayer, error) {
	blob, metaPath := c.paths(key)
	b, err := os.ReadFile(metaPath)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	l := &cachedLayer{path: blob}
	if err := json.Unmarshal(b, &l.meta); err != nil {
		return nil, nil // a damaged entry is rebuilt
	}
	if fi, err := os.Stat(blob); err != nil || fi.Size() != l.meta.Size {
		return nil, nil
	}
	return l, nil
}

// put writes the tar stream that write produces as the layer of key; files is its index (nil
// for all but wheels' layers).
func (c *cache) put(key string, files map[string]string, write func(io.Writer) error) (*cachedLayer, error) {
	return c.putOn(key, files, write, false)
}

// putOn is put, writing on one goroutine when single (the CPU is kept for another process).
func (c *cache) putOn(key string, files map[string]string, write func(io.Writer) error, single bool) (*cachedLayer, error) {
	blob, metaPath := c.paths(key)
	f, err := os.CreateTemp(c.dir, "layer-*.tmp")
	if err != nil {
		return nil, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	if err := f.Chmod(0o644); err != nil {
		return nil, err
	}
	digest, diffID := sha256.New(), sha256.New()
	counter := &countWriter{w: io.MultiWriter(f, digest)}
	// BestSpeed: dependency layers are large and built once; the registry and clients do not
	// care. klauspost's gzip writes level 1 about 1.6 times as fast as the standard library's;
	// pgzip compresses blocks of 1 MiB on several goroutines (each with the previous block's
	// last 32 KiB as its dictionary) into one gzip member, so one large layer (scipy's 130 MB)
	// uses every core: 1.0 s -> 0.63 s here. The bytes depend on the block size only, not on
	// how many blocks are compressed at once, and the gzip header carries no time or name, so
	// equal tars compress to equal bytes.
	zw, err := pgzip.NewWriterLevel(counter, pgzip.BestSpeed)
	if err != nil {
		return nil, err
	}
	blocks := 2 * runtime.GOMAXPROCS(0)
	if single {
		blocks = 1
	}
	if err := zw.SetConcurrency(gzipBlock, blocks); err != nil {
		return nil, err
	}
	// Two stages on two goroutines, so one large layer uses two cores: write (for a wheel:
	// unzip and tar) and the diffID's hash here; gzip, the digest's hash and the file there.
	if single {
		if err := write(io.MultiWriter(zw, diffID)); err != nil {
			return nil, err
		}
	} else {
		pr, pw := io.Pipe()
		done := make(chan error, 1)
		go func() {
			_, err := io.Copy(zw, pr)
			pr.CloseWithError(err) // a failed gzip or disk stops write
			done <- err
		}()
		werr := write(io.MultiWriter(pw, diffID))
		pw.CloseWithError(werr)
		if err := <-done; werr == nil && err != nil {
			werr = err
		}
		if werr != nil {
			return nil, werr
		}
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	if err := f.Sync(); err != nil {
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	meta := layerMeta{
		Digest: v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(digest.Sum(nil))},
		DiffID: v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(diffID.Sum(nil))},
		Size:   counter.n,
		Files:  files,
	}
	if err := os.Rename(f.Name(), blob); err != nil {
		return nil, err
	}
	b, _ := json.Marshal(meta)
	if err := writeFileAtomic(metaPath, b); err != nil {
		return nil, err
	}
	return &cachedLayer{path: blob, meta: meta}, nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// writeFileAtomic replaces name with data (mode 0644): readers see the old file or the new one.
func writeFileAtomic(name string, data []byte) error {
	return atomicfile.WriteFile(name, data, 0o644)
}
