package build

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/gob"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/atelier-ml/atelier/internal/atomicfile"
)

// The layer cache of UnpackImage: beside the unpacked images (in their parent directory, so on
// the same filesystem, which hard links need), each layer an image had is unpacked once, into
//
//	.layers/<diffid hex>/index   the layer's tar headers that can matter, in tar order (gob)
//	.layers/<diffid hex>/f/<n>   the content of its n-th regular file
//	.layers/<diffid hex>/from/<digest hex>  the blobs checked to hold the layer
//
// and an image's directory is composed from its layers' entries: directories and symbolic
// links made anew, regular files hard links to the cached contents. An entry is written in
// .layers/.tmp-* and renamed into place once its index is written, so an entry is whole or
// absent; one without a readable, finished index is not used (written again). Nothing is
// synced (the image directories never were): a crash of the machine may leave an entry whose
// files the filesystem had not written yet, as it could an image directory before.
// .layers/uses/<image directory name> lists the layers an unpacked image was composed from, for
// RemoveUnusedLayers. Unpacking holds a shared flock on .layers/.lock, removing unused layers
// an exclusive one.
const (
	layerCacheDir  = ".layers"
	layerIndexName = "index"
	layerIndexV    = 1
)

// layerEntry is one tar header of a layer, as the image's flattening needs it.
type layerEntry struct {
	Name     string // path.Clean of the header's name, as mutate.Extract has it
	Typeflag byte
	Mode     int64
	Linkname string
	File     int // n of f/<n> for a regular file's content; -1 for none
}

type layerIndex struct {
	Version int
	DiffID  string
	Entries []layerEntry
	Done    bool // the last field written: an index cut short does not decode to Done
}

// unpackedLayer is a layer unpacked in the cache.
type unpackedLayer struct {
	dir     string
	entries []layerEntry
}

func (l *unpackedLayer) file(n int) string { return filepath.Join(l.dir, "f", strconv.Itoa(n)) }

type layerCache struct{ dir string }

// lock takes a flock on the cache (shared for unpacking, exclusive for removing) and returns
// its release.
func (c *layerCache) lock(how int) (func(), error) {
	if err := os.MkdirAll(filepath.Join(c.dir, "uses"), 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(c.dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	for {
		err = syscall.Flock(int(f.Fd()), how)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("locking the layer cache: %w", err)
	}
	return func() { f.Close() }, nil // closing the last descriptor releases the flock
}

// diffIDHex is the hex of a layer's diff ID: the image config's (a compressed layer computes
// its own by reading it whole), checked to be a sha256 digest, as it names a directory.
func diffIDHex(cfg *v1.ConfigFile, layers []v1.Layer, i int) (string, error) {
	var d v1.Hash
	if len(cfg.RootFS.DiffIDs) == len(layers) {
		d = cfg.RootFS.DiffIDs[i]
	} else {
		var err error
		if d, err = layers[i].DiffID(); err != nil {
			return "", err
		}
	}
	if !isSHA256(d) {
		return "", fmt.Errorf("layer diff ID %s is not a sha256 digest", d)
	}
	return d.Hex, nil
}

func isSHA256(d v1.Hash) bool {
	return d.Algorithm == "sha256" && len(d.Hex) == 64 && strings.Trim(d.Hex, "0123456789abcdef") == ""
}

// blobHex is the hex of l's (compressed) digest, which names the blobs known to hold an
// entry's layer: .layers/<diff ID>/from/<digest>.
func blobHex(l v1.Layer) (string, error) {
	d, err := l.Digest()
	if err != nil {
		return "", err
	}
	if !isSHA256(d) {
		return "", fmt.Errorf("layer digest %s is not a sha256 digest", d)
	}
	return d.Hex, nil
}

// verify checks that l's content is the layer of diff ID id, unless its blob was checked
// before; an image may only get from the cache the content its own blobs have.
func verify(dir, id string, l v1.Layer) error {
	blob, err := blobHex(l)
	if err != nil {
		return err
	}
	marker := filepath.Join(dir, "from", blob)
	if _, err := os.Stat(marker); err == nil {
		return nil
	}
	rc, err := l.Uncompressed()
	if err != nil {
		return err
	}
	defer rc.Close()
	h := sha256.New()
	if _, err := io.Copy(h, rc); err != nil {
		return err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != id {
		return fmt.Errorf("layer sha256:%s: its content has diff ID sha256:%s", id, got)
	}
	return os.WriteFile(marker, nil, 0o644)
}

func readLayerIndex(dir, diffID string) (*unpackedLayer, error) {
	b, err := os.ReadFile(filepath.Join(dir, layerIndexName))
	if err != nil {
		return nil, err
	}
	var idx layerIndex
	if err := gob.NewDecoder(bytes.NewReader(b)).Decode(&idx); err != nil {
		return nil, err
	}
	if idx.Version != layerIndexV || idx.DiffID != diffID || !idx.Done {
		return nil, errors.New("an unfinished or foreign layer index")
	}
	return &unpackedLayer{dir: dir, entries: idx.Entries}, nil
}

// get returns l, of diff ID id (hex), unpacked in the cache, unpacking it when no whole entry
// is there.
func (c *layerCache) get(ctx context.Context, l v1.Layer, id string) (*unpackedLayer, error) {
	dir := filepath.Join(c.dir, id)
	if cl, err := readLayerIndex(dir, id); err == nil {
		return cl, verify(dir, id, l)
	}
	blob, err := blobHex(l)
	if err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp(c.dir, ".tmp-*")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	entries, err := unpackLayer(ctx, l, id, tmp)
	if err != nil {
		return nil, fmt.Errorf("unpacking layer sha256:%s: %w", id, err)
	}
	if err := os.WriteFile(filepath.Join(tmp, "from", blob), nil, 0o644); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(layerIndex{Version: layerIndexV, DiffID: id, Entries: entries, Done: true}); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(tmp, layerIndexName), buf.Bytes(), 0o644); err != nil {
		return nil, err
	}
	for range 3 {
		if err := os.Rename(tmp, dir); err == nil {
			return &unpackedLayer{dir: dir, entries: entries}, nil
		}
		if cl, err := readLayerIndex(dir, id); err == nil {
			return cl, verify(dir, id, l) // unpacked by someone else meanwhile
		}
		// A directory without a whole index (a crash, or an older layout): set it aside.
		aside, err := os.MkdirTemp(c.dir, ".tmp-*")
		if err != nil {
			return nil, err
		}
		if err := os.Rename(dir, filepath.Join(aside, "old")); err != nil && !errors.Is(err, os.ErrNotExist) {
			os.RemoveAll(aside)
			return nil, err
		}
		os.RemoveAll(aside)
	}
	return nil, fmt.Errorf("layer sha256:%s: could not put it in the cache", id)
}

// unpackLayer writes l's regular files to dir/f/<n> and returns its entries. It checks the
// uncompressed content against the layer's diff ID (the cache is keyed by it, and shared by
// every workspace's images), refuses paths that leave the root as mutate.Extract does, and
// leaves out the entries mutate.Extract would leave out whatever the layers above: links
// leaving the root, a name met before in the same layer, what is below a whiteout or a
// non-directory of the same layer.
func unpackLayer(ctx context.Context, l v1.Layer, id, dir string) ([]layerEntry, error) {
	rc, err := l.Uncompressed()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	for _, sub := range []string{"f", "from"} {
		if err := os.Mkdir(filepath.Join(dir, sub), 0o755); err != nil {
			return nil, err
		}
	}
	h := sha256.New()
	hashed := io.TeeReader(rc, h)
	tr := tar.NewReader(hashed)
	seen := map[string]bool{}
	var entries []layerEntry
	buf := make([]byte, 128<<10)
	files := 0
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		hd, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, err
		}
		name := path.Clean(hd.Name)
		if unsafeArchivePath(name) {
			return nil, fmt.Errorf("unsafe tar path %q", hd.Name)
		}
		if (hd.Typeflag == tar.TypeSymlink || hd.Typeflag == tar.TypeLink) && unsafeRelativeLink(name, hd.Linkname) {
			continue
		}
		e := layerEntry{Name: name, Typeflag: hd.Typeflag, Mode: hd.Mode, Linkname: hd.Linkname, File: -1}
		if path.Base(name) != opaqueWhiteout {
			key, tombstone := entryKey(name, hd.Typeflag)
			if _, ok := seen[key]; (ok && !tombstone) || inWhiteoutDir(seen, key) {
				continue
			}
			seen[key] = tombstone || hd.Typeflag != tar.TypeDir
			if hd.Typeflag == tar.TypeReg && !tombstone {
				if err := writeLayerFile(filepath.Join(dir, "f", strconv.Itoa(files)), hd.Mode, tr, buf); err != nil {
					return nil, fmt.Errorf("%s: %w", hd.Name, err)
				}
				e.File = files
				files++
			}
		}
		entries = append(entries, e)
	}
	if _, err := io.Copy(io.Discard, hashed); err != nil { // what follows the tar's end (padding) is hashed too
		return nil, err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != id {
		return nil, fmt.Errorf("its content has diff ID sha256:%s", got)
	}
	return entries, nil
}

// writeLayerFile writes a regular file's content with the mode the unpacking always gave
// (the tar's permission bits, at least owner read-write, less the umask).
func writeLayerFile(name string, mode int64, r io.Reader, buf []byte) error {
	f, err := os.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, os.FileMode(mode)&os.ModePerm|0o600)
	if err != nil {
		return err
	}
	_, err = io.CopyBuffer(struct{ io.Writer }{f}, r, buf)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// The whiteout names of the OCI image layout, and mutate.Extract's checks of names and links
// (go-containerregistry v0.22.1, pkg/v1/mutate/mutate.go), which the flattening follows.
const (
	whiteoutPrefix = ".wh."
	opaqueWhiteout = ".wh..wh..opq"
)

// entryKey is the name mutate.Extract tracks an entry under, and whether it is a whiteout.
func entryKey(name string, typeflag byte) (string, bool) {
	base := path.Base(name)
	tombstone := strings.HasPrefix(base, whiteoutPrefix)
	if typeflag == tar.TypeDir {
		return name, tombstone
	}
	if tombstone {
		base = base[len(whiteoutPrefix):]
	}
	return path.Join(path.Dir(name), base), tombstone
}

func inWhiteoutDir(fileMap map[string]bool, file string) bool {
	for file != "" {
		dirname := path.Dir(file)
		if file == dirname {
			break
		}
		if val, ok := fileMap[dirname]; ok && val {
			return true
		}
		file = dirname
	}
	return false
}

func inOpaqueDir(opaqueDirs map[string]bool, file string) bool {
	for file != "" {
		dirname := path.Dir(file)
		if file == dirname {
			break
		}
		if opaqueDirs[dirname] {
			return true
		}
		file = dirname
	}
	return false
}

func unsafeArchivePath(name string) bool {
	clean := cleanArchivePath(name)
	if clean == ".." || strings.HasPrefix(clean, "../") {
		return true
	}
	if strings.HasPrefix(name, "\\") {
		return true
	}
	return hasWindowsDrivePrefix(clean)
}

func unsafeRelativeLink(name, linkname string) bool {
	clean := cleanArchivePath(linkname)
	if path.IsAbs(clean) {
		return false
	}
	if hasWindowsDrivePrefix(clean) {
		return true
	}
	return strings.HasPrefix(path.Clean(path.Join(path.Dir(name), clean)), "..")
}

func cleanArchivePath(name string) string {
	return path.Clean(strings.ReplaceAll(name, "\\", "/"))
}

func hasWindowsDrivePrefix(name string) bool {
	return len(name) >= 2 &&
		(('A' <= name[0] && name[0] <= 'Z') || ('a' <= name[0] && name[0] <= 'z')) &&
		name[1] == ':'
}

// RemoveUnusedLayers removes from the layer cache of the images unpacked in parent (see
// UnpackImage) the layers no unpacked image there uses any more, and what an interrupted
// unpacking left; it returns how many layers it removed. Call it after removing image
// directories of parent: a layer's files are hard links of the images' files, so they take no
// room of their own while an image uses them. (The server removes no image directory yet:
// services/rootfs keeps every image a service ran, and so its layers.)
func RemoveUnusedLayers(parent string) (int, error) {
	c := &layerCache{dir: filepath.Join(parent, layerCacheDir)}
	if _, err := os.Stat(c.dir); errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	unlock, err := c.lock(syscall.LOCK_EX)
	if err != nil {
		return 0, err
	}
	defer unlock()
	used := map[string]bool{}
	uses, err := os.ReadDir(filepath.Join(c.dir, "uses"))
	if err != nil {
		return 0, err
	}
	for _, u := range uses {
		name := filepath.Join(c.dir, "uses", u.Name())
		if _, err := os.Lstat(filepath.Join(parent, u.Name())); errors.Is(err, os.ErrNotExist) {
			if err := os.Remove(name); err != nil {
				return 0, err
			}
			continue
		}
		b, err := os.ReadFile(name)
		if err != nil {
			return 0, err
		}
		for _, id := range strings.Fields(string(b)) {
			used[id] = true
		}
	}
	ents, err := os.ReadDir(c.dir)
	if err != nil {
		return 0, err
	}
	removed := 0
	for _, e := range ents {
		n := e.Name()
		switch {
		case n == ".lock" || n == "uses":
		case strings.HasPrefix(n, ".tmp-"): // no unpacking runs: left by one that was stopped
			if err := os.RemoveAll(filepath.Join(c.dir, n)); err != nil {
				return removed, err
			}
		case !used[n]:
			if err := os.RemoveAll(filepath.Join(c.dir, n)); err != nil {
				return removed, err
			}
			removed++
		}
	}
	return removed, nil
}

// RemoveUnpacked removes an image's directory written by UnpackImage, then the cached layers
// no other image of its parent uses.
func RemoveUnpacked(dir string) error {
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	_, err := RemoveUnusedLayers(filepath.Dir(dir))
	return err
}

func writeUses(c *layerCache, dir string, layers []*unpackedLayer) error {
	var b strings.Builder
	for _, l := range layers {
		b.WriteString(filepath.Base(l.dir) + "\n")
	}
	return atomicfile.WriteFile(filepath.Join(c.dir, "uses", filepath.Base(dir)), []byte(b.String()), 0o644)
}
