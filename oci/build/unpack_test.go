package build

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"golang.org/x/sys/unix"
)

// flattenReference writes img to dir as UnpackImage did before the layer cache: mutate.Extract's
// flattened tar, untarred inside an os.Root. The layer cache's composition must give the same tree.
func flattenReference(t *testing.T, img v1.Image, dir string) error {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	rc := mutate.Extract(img)
	defer rc.Close()
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return err
		}
		name := path.Clean("/" + h.Name)[1:]
		if name == "" {
			continue
		}
		mode := fs.FileMode(h.Mode) & fs.ModePerm
		if parent := path.Dir(name); parent != "." {
			if err := root.MkdirAll(parent, 0o755); err != nil {
				return fmt.Errorf("%s: %w", h.Name, err)
			}
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if err := root.MkdirAll(name, 0o755); err != nil {
				return fmt.Errorf("%s: %w", h.Name, err)
			}
			root.Chmod(name, mode|0o700)
		case tar.TypeReg:
			root.Remove(name)
			f, err := root.OpenFile(name, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode|0o600)
			if err != nil {
				return fmt.Errorf("%s: %w", h.Name, err)
			}
			_, err = io.Copy(f, tr)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
		case tar.TypeSymlink:
			root.Remove(name)
			if err := root.Symlink(h.Linkname, name); err != nil {
				return fmt.Errorf("%s: %w", h.Name, err)
			}
		case tar.TypeLink:
			root.Remove(name)
			if err := root.Link(path.Clean("/" + h.Linkname)[1:], name); err != nil && !strings.Contains(err.Error(), "escapes") {
				return fmt.Errorf("%s: %w", h.Name, err)
			}
		}
	}
}

// treeOf describes every path under dir: type, permissions, content or link target, and which
// paths share an inode.
func treeOf(t *testing.T, dir string) map[string]string {
	t.Helper()
	tree := map[string]string{}
	inodes := map[uint64][]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		desc := fmt.Sprintf("%s %v", fi.Mode().Type(), fi.Mode().Perm())
		switch {
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(b)
			desc += " " + hex.EncodeToString(sum[:8])
			st := fi.Sys().(*syscall.Stat_t)
			inodes[st.Ino] = append(inodes[st.Ino], rel)
		case fi.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			desc += " -> " + target
		}
		tree[rel] = desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, paths := range inodes {
		if len(paths) > 1 {
			sort.Strings(paths)
			for _, p := range paths {
				tree[p] += " linked with " + strings.Join(paths, ",")
			}
		}
	}
	return tree
}

func sameTree(t *testing.T, got, want string) {
	t.Helper()
	g, w := treeOf(t, got), treeOf(t, want)
	for p, d := range w {
		if g[p] != d {
			t.Errorf("%s: %q, want %q", p, g[p], d)
		}
	}
	for p, d := range g {
		if _, ok := w[p]; !ok {
			t.Errorf("%s: %q, not in the reference", p, d)
		}
	}
}

func inode(t *testing.T, name string) uint64 {
	t.Helper()
	fi, err := os.Lstat(name)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

// tarEntry is a header of a test layer; Body is a regular file's content.
type tarEntry struct {
	Name, Link, Body string
	Type             byte
	Mode             int64
}

func testLayer(t *testing.T, entries ...tarEntry) v1.Layer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		typ, mode := e.Type, e.Mode
		if typ == 0 {
			typ = tar.TypeReg
		}
		if mode == 0 {
			mode = 0o644
			if typ == tar.TypeDir {
				mode = 0o755
			}
		}
		h := &tar.Header{Name: e.Name, Linkname: e.Link, Typeflag: typ, Mode: mode, Format: tar.FormatPAX}
		if typ == tar.TypeReg {
			h.Size = int64(len(e.Body))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(e.Body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	buf.Write(make([]byte, 10240-buf.Len()%10240)) // padded to tar's records, as GNU tar writes it
	b := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// builtImages builds the fixture twice, score.py changed in between: two images sharing all
// but their source layer.
func builtImages(t *testing.T) (v1.Image, v1.Image) {
	t.Helper()
	f := newFixture(t)
	out := filepath.Join(t.TempDir(), "out")
	if res, err := Build(context.Background(), f.spec, f.base, Output{LayoutDir: out, Tag: "1"}); err != nil {
		t.Fatalf("%v\n%s", err, res.Log)
	}
	mustWrite(t, filepath.Join(f.spec.SourceDir, "score.py"), scoreSource("2"))
	if res, err := Build(context.Background(), f.spec, f.base, Output{LayoutDir: out, Tag: "2"}); err != nil {
		t.Fatalf("%v\n%s", err, res.Log)
	}
	return readLayout(t, out, "1"), readLayout(t, out, "2")
}

// withDeletions is img with layers on top that delete, replace and re-add files and
// directories of each other and of img: whiteouts, opaque directories, a directory replaced by a
// file and the other way round, hard links, modes, a name twice in a layer.
func withDeletions(t *testing.T, img v1.Image) v1.Image {
	t.Helper()
	l1 := testLayer(t,
		tarEntry{Name: "data/", Type: tar.TypeDir},
		tarEntry{Name: "data/keep", Body: "keep 1"},
		tarEntry{Name: "data/gone", Body: "gone 1"},
		tarEntry{Name: "data/sub/", Type: tar.TypeDir},
		tarEntry{Name: "data/sub/x", Body: "x"},
		tarEntry{Name: "opq/", Type: tar.TypeDir},
		tarEntry{Name: "opq/old", Body: "old"},
		tarEntry{Name: "opq/olddir/", Type: tar.TypeDir},
		tarEntry{Name: "opq/olddir/y", Body: "y"},
		tarEntry{Name: "tobefile/", Type: tar.TypeDir},
		tarEntry{Name: "tobefile/child", Body: "child"},
		tarEntry{Name: "tobedir", Body: "a file first"},
		tarEntry{Name: "hl/", Type: tar.TypeDir},
		tarEntry{Name: "hl/a", Body: "hard"},
		tarEntry{Name: "hl/b", Type: tar.TypeLink, Link: "hl/a"},
		tarEntry{Name: "./hl/c", Type: tar.TypeLink, Link: "./hl/a"},
		tarEntry{Name: "sym", Type: tar.TypeSymlink, Link: "data/keep"},
		tarEntry{Name: "modes/", Type: tar.TypeDir, Mode: 0o750},
		tarEntry{Name: "modes/ro", Body: "ro", Mode: 0o444},
		tarEntry{Name: "modes/exe", Body: "#!/bin/sh\n", Mode: 0o755},
		tarEntry{Name: "modes/private", Body: "p", Mode: 0o600},
		tarEntry{Name: "dup", Body: "first"},
		tarEntry{Name: "dup", Body: "second"},
		tarEntry{Name: "abs", Type: tar.TypeSymlink, Link: "/etc"},
		tarEntry{Name: "fifo", Type: tar.TypeFifo},
	)
	l2 := testLayer(t,
		tarEntry{Name: "data/.wh.gone"},
		tarEntry{Name: "data/.wh.sub"},
		tarEntry{Name: "data/keep", Body: "keep 2"},
		tarEntry{Name: "opq/", Type: tar.TypeDir},
		tarEntry{Name: "opq/.wh..wh..opq"},
		tarEntry{Name: "opq/new", Body: "new"},
		tarEntry{Name: "tobefile", Body: "now a file"},
		tarEntry{Name: "tobedir/", Type: tar.TypeDir},
		tarEntry{Name: "tobedir/c", Body: "c"},
		tarEntry{Name: "modes/", Type: tar.TypeDir, Mode: 0o711},
		tarEntry{Name: "newdir/deep/f", Body: "implicit parents"},
		tarEntry{Name: "sym", Body: "a file now"},
		tarEntry{Name: "etc/.wh.os-release"},
	)
	l3 := testLayer(t,
		tarEntry{Name: "data/gone", Body: "gone 3"},
		tarEntry{Name: "opq/.wh.new"},
		tarEntry{Name: "hl/b", Body: "b unlinked"},
	)
	img, err := mutate.AppendLayers(img, l1, l2, l3)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// TestUnpackSharesLayers unpacks two builds of one source (score.py changed): the second image's
// files of the layers it shares are the first one's (same inode), its tree what the flattened
// image gives; and removing the first leaves the shared layers to the second.
func TestUnpackSharesLayers(t *testing.T) {
	img1, img2 := builtImages(t)
	ctx := context.Background()
	parent := filepath.Join(t.TempDir(), "rootfs")
	dir1, dir2 := filepath.Join(parent, "one"), filepath.Join(parent, "two")
	rt, err := UnpackImage(ctx, img1, dir1)
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := img1.Digest(); rt.Digest != d.String() || len(rt.Entrypoint) == 0 {
		t.Errorf("runtime %+v", rt)
	}
	if _, err := UnpackImage(ctx, img2, dir2); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"etc/os-release"} {
		if inode(t, filepath.Join(dir1, f)) != inode(t, filepath.Join(dir2, f)) {
			t.Errorf("%s of the base layer: two inodes, want one", f)
		}
	}
	score := findFile(t, dir2, "score.py")
	if inode(t, filepath.Join(dir1, score)) == inode(t, filepath.Join(dir2, score)) {
		t.Errorf("%s: one inode for two contents", score)
	}
	if b, _ := os.ReadFile(filepath.Join(dir2, score)); !strings.Contains(string(b), `VERSION = "2"`) {
		t.Errorf("the second image's %s:\n%s", score, b)
	}
	for i, img := range []v1.Image{img1, img2} {
		ref := filepath.Join(t.TempDir(), "ref")
		if err := flattenReference(t, img, ref); err != nil {
			t.Fatal(err)
		}
		sameTree(t, []string{dir1, dir2}[i], ref)
	}
	// Unpacked again: nothing to do.
	if _, err := UnpackImage(ctx, img2, dir2); err != nil {
		t.Fatal(err)
	}

	layers1, _ := img1.Layers()
	layers2, _ := img2.Layers()
	ids := func(ls []v1.Layer) map[string]bool {
		m := map[string]bool{}
		for _, l := range ls {
			m[layerID(t, l)] = true
		}
		return m
	}
	only1 := 0
	for id := range ids(layers1) {
		if !ids(layers2)[id] {
			only1++
		}
	}
	if n, err := RemoveUnusedLayers(parent); err != nil || n != 0 {
		t.Fatalf("both images unpacked: removed %d layers, %v; want none", n, err)
	}
	if err := RemoveUnpacked(dir1); err != nil {
		t.Fatal(err)
	}
	cached := cachedLayerIDs(t, parent)
	if len(cached) != len(ids(layers2)) {
		t.Errorf("cached after removing the first image: %v, want the second's %d layers (%d were the first's only)", cached, len(ids(layers2)), only1)
	}
	for _, id := range cached {
		if !ids(layers2)[id] {
			t.Errorf("layer %s is cached, the second image does not have it", id)
		}
	}
	sameTreeAsReference(t, img2, dir2)
	if err := RemoveUnpacked(dir2); err != nil {
		t.Fatal(err)
	}
	if cached := cachedLayerIDs(t, parent); len(cached) != 0 {
		t.Errorf("cached with no image unpacked: %v", cached)
	}
}

func sameTreeAsReference(t *testing.T, img v1.Image, dir string) {
	t.Helper()
	ref := filepath.Join(t.TempDir(), "ref")
	if err := flattenReference(t, img, ref); err != nil {
		t.Fatal(err)
	}
	sameTree(t, dir, ref)
}

func cachedLayerIDs(t *testing.T, parent string) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(parent, layerCacheDir))
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, e := range ents {
		if len(e.Name()) == 64 {
			ids = append(ids, e.Name())
		}
	}
	return ids
}

func findFile(t *testing.T, dir, base string) string {
	t.Helper()
	var found string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Name() == base && d.Type().IsRegular() {
			found, _ = filepath.Rel(dir, p)
			return filepath.SkipAll
		}
		return nil
	})
	if found == "" {
		t.Fatalf("no %s under %s", base, dir)
	}
	return found
}

// TestUnpackWhiteouts unpacks an image whose layers delete and replace each other's files:
// the same tree as the flattened image, file for file, mode for mode, hard links included.
func TestUnpackWhiteouts(t *testing.T) {
	img := withDeletions(t, baseImage(t, DefaultPlatform(), "3.11"))
	dir := filepath.Join(t.TempDir(), "rootfs", "img")
	if _, err := UnpackImage(context.Background(), img, dir); err != nil {
		t.Fatal(err)
	}
	sameTreeAsReference(t, img, dir)
	// What the reference gives, that the comparison is not of two empty trees.
	tree := treeOf(t, dir)
	for p, want := range map[string]string{
		"data/keep":     "keep 2",
		"data/gone":     "gone 3",
		"tobefile":      "now a file",
		"tobedir/c":     "c",
		"newdir/deep/f": "implicit parents",
		"dup":           "first",
		"hl/a":          "hard",
		"hl/b":          "b unlinked",
	} {
		if b, err := os.ReadFile(filepath.Join(dir, p)); err != nil || string(b) != want {
			t.Errorf("%s: %q, %v; want %q", p, b, err, want)
		}
	}
	for _, p := range []string{"data/sub", "opq/old", "opq/olddir", "opq/new", "tobefile/child", "etc/os-release", "fifo"} {
		if _, ok := tree[p]; ok {
			t.Errorf("%s is there, want it deleted", p)
		}
	}
	if !strings.Contains(tree["hl/a"], "linked with hl/a,hl/c") {
		t.Errorf("hl/a: %s, want linked with hl/c", tree["hl/a"])
	}
	if !strings.HasPrefix(tree["modes"], "d--------- -rwx--x--x") || !strings.HasPrefix(tree["modes/ro"], "---------- -rw-r--r--") {
		t.Errorf("modes: %q, modes/ro: %q", tree["modes"], tree["modes/ro"])
	}
}

// TestUnpackHalfWrittenLayer: what an unpacking stopped midway left in the layer cache (a
// temporary directory, an entry without a whole index) is not used, and the unpacking is whole.
func TestUnpackHalfWrittenLayer(t *testing.T) {
	img := withDeletions(t, baseImage(t, DefaultPlatform(), "3.11"))
	parent := filepath.Join(t.TempDir(), "rootfs")
	layers, _ := img.Layers()
	cache := filepath.Join(parent, layerCacheDir)
	if err := os.MkdirAll(cache, 0o755); err != nil {
		t.Fatal(err)
	}
	var truncated string
	for i, l := range layers {
		id := layerID(t, l)
		// A whole entry, then cut short: its index, its files.
		cl, err := (&layerCache{dir: cache}).get(context.Background(), l, id)
		if err != nil {
			t.Fatal(err)
		}
		idx := filepath.Join(cl.dir, layerIndexName)
		b, _ := os.ReadFile(idx)
		switch i % 3 {
		case 0:
			os.WriteFile(idx, b[:len(b)*2/3], 0o644)
			truncated = id
		case 1:
			os.Remove(idx)
		case 2: // the files of a half-written layer, no index
			os.WriteFile(idx, nil, 0o644)
		}
		os.RemoveAll(filepath.Join(cl.dir, "f"))
		os.Mkdir(filepath.Join(cl.dir, "f"), 0o755)
		os.WriteFile(filepath.Join(cl.dir, "f", "0"), []byte("half"), 0o644)
	}
	if err := os.MkdirAll(filepath.Join(cache, ".tmp-123", "f"), 0o755); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(parent, "img")
	if _, err := UnpackImage(context.Background(), img, dir); err != nil {
		t.Fatal(err)
	}
	sameTreeAsReference(t, img, dir)
	if _, err := readLayerIndex(filepath.Join(cache, truncated), truncated); err != nil {
		t.Errorf("the cut-short entry was not written again: %v", err)
	}
	if _, err := RemoveUnusedLayers(parent); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(cache, ".tmp-123")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("what a stopped unpacking left is still there: %v", err)
	}
	sameTreeAsReference(t, img, dir)
}

// TestUnpackConcurrent unpacks two images sharing layers at once, twice each, into one
// directory: each whole, as the flattened image (run with -race).
func TestUnpackConcurrent(t *testing.T) {
	base := baseImage(t, DefaultPlatform(), "3.11")
	img1 := withDeletions(t, base)
	img2, err := mutate.AppendLayers(img1, testLayer(t, tarEntry{Name: "app/score.py", Body: "v2"}))
	if err != nil {
		t.Fatal(err)
	}
	parent := filepath.Join(t.TempDir(), "rootfs")
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range 4 {
		wg.Go(func() {
			img := []v1.Image{img1, img2}[i%2]
			_, errs[i] = UnpackImage(context.Background(), img, filepath.Join(parent, fmt.Sprint(i%2)))
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	sameTreeAsReference(t, img1, filepath.Join(parent, "0"))
	sameTreeAsReference(t, img2, filepath.Join(parent, "1"))
	if inode(t, filepath.Join(parent, "0", "data/keep")) != inode(t, filepath.Join(parent, "1", "data/keep")) {
		t.Error("data/keep: two inodes, want one")
	}
}

// TestUnpackRefusesEscapes: a layer's name leaving the root is refused; its links cannot
// write outside the directory; a layer whose content is not its diff ID is refused.
func TestUnpackRefusesEscapes(t *testing.T) {
	base := baseImage(t, DefaultPlatform(), "3.11")
	outside := t.TempDir()
	parent := filepath.Join(t.TempDir(), "rootfs")
	for name, layers := range map[string][]v1.Layer{
		"dot-dot name": {testLayer(t, tarEntry{Name: "../../escaped", Body: "x"})},
		"through an absolute symlink": {
			testLayer(t, tarEntry{Name: "out", Type: tar.TypeSymlink, Link: outside}),
			testLayer(t, tarEntry{Name: "out/escaped", Body: "x"}),
		},
		"a directory through a symlink": {
			testLayer(t, tarEntry{Name: "out", Type: tar.TypeSymlink, Link: outside}),
			testLayer(t, tarEntry{Name: "out/escaped/", Type: tar.TypeDir}),
		},
	} {
		img, err := mutate.AppendLayers(base, layers...)
		if err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join(parent, strings.ReplaceAll(name, " ", "-"))
		_, err = UnpackImage(context.Background(), img, dir)
		if err == nil {
			t.Errorf("%s: unpacked", name)
		}
		if _, serr := os.Stat(dir); !errors.Is(serr, os.ErrNotExist) {
			t.Errorf("%s: an error (%v), and the directory is there", name, err)
		}
		if ents, _ := os.ReadDir(outside); len(ents) != 0 {
			t.Fatalf("%s: written outside: %v", name, ents)
		}
	}
	// Relative links out of the root are left out, as mutate.Extract leaves them out.
	img, err := mutate.AppendLayers(base,
		testLayer(t, tarEntry{Name: "a/hl", Type: tar.TypeLink, Link: "../../../../../.." + outside + "/x"}),
		testLayer(t, tarEntry{Name: "a/b/out", Type: tar.TypeSymlink, Link: "../../../../../../../../.." + outside}),
		testLayer(t, tarEntry{Name: "a/b/out/escaped", Body: "x"}))
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(parent, "hard-link")
	if _, err := UnpackImage(context.Background(), img, dir); err != nil {
		t.Fatal(err)
	}
	sameTreeAsReference(t, img, dir)
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Fatalf("written outside: %v", ents)
	}

	// A layer whose content is not the diff ID it is known by.
	good := testLayer(t, tarEntry{Name: "f", Body: "good"})
	evil := testLayer(t, tarEntry{Name: "f", Body: "evil"})
	id, _ := good.DiffID()
	c := &layerCache{dir: filepath.Join(parent, layerCacheDir)}
	if _, err = c.get(context.Background(), evil, id.Hex); err == nil || !strings.Contains(err.Error(), "diff ID") {
		t.Errorf("a layer that is not its diff ID: %v", err)
	}
	// Cached from the good blob, the layer is not another blob's that claims its diff ID.
	if _, err := c.get(context.Background(), good, id.Hex); err != nil {
		t.Fatal(err)
	}
	if _, err = c.get(context.Background(), evil, id.Hex); err == nil || !strings.Contains(err.Error(), "diff ID") {
		t.Errorf("a cached layer, asked for with a blob that is not it: %v", err)
	}
	if _, err := c.get(context.Background(), good, id.Hex); err != nil {
		t.Fatal(err)
	}
}

func layerID(t *testing.T, l v1.Layer) string {
	t.Helper()
	id, err := l.DiffID()
	if err != nil {
		t.Fatal(err)
	}
	return id.Hex
}

// TestUnpackCopiesWithoutLinks: where hard links fail (another filesystem), the files are copied.
func TestUnpackCopiesWithoutLinks(t *testing.T) {
	linkat = func(int, string, int, string, int) error { return unix.EXDEV }
	defer func() { linkat = unix.Linkat }()
	img := withDeletions(t, baseImage(t, DefaultPlatform(), "3.11"))
	dir := filepath.Join(t.TempDir(), "rootfs", "img")
	if _, err := UnpackImage(context.Background(), img, dir); err != nil {
		t.Fatal(err)
	}
	sameTreeAsReference(t, img, dir)
	if fi, _ := os.Stat(filepath.Join(dir, "data/keep")); fi.Sys().(*syscall.Stat_t).Nlink != 1 {
		t.Error("data/keep is a link, want a copy")
	}
}

// TestMeasureUnpack builds a scikit-learn image on the CPython base ($ATELIER_PYTHON_BASE, the
// OCI layout scripts/build-python-base.sh writes), rebuilds it with score.py changed, and logs
// how long unpacking the changed image takes: flattened whole (mutate.Extract untarred, as
// UnpackImage did before the layer cache), and composed from the layer cache that unpacking the
// first image filled. It needs the package index: ATELIER_TEST_PIP_INDEX=1.
func TestMeasureUnpack(t *testing.T) {
	layoutDir := os.Getenv("ATELIER_PYTHON_BASE")
	if os.Getenv("ATELIER_TEST_PIP_INDEX") != "1" || layoutDir == "" {
		t.Skip("set ATELIER_TEST_PIP_INDEX=1 and ATELIER_PYTHON_BASE to a CPython base layout")
	}
	ctx := context.Background()
	f := newFixture(t)
	base, err := ImportBase(ctx, layoutDir, DefaultPlatform())
	if err != nil {
		t.Fatal(err)
	}
	f.base = base
	f.spec.PipArgs = nil
	mustWrite(t, f.spec.Requirements, "scikit-learn\nnumpy\njoblib\ninference-schema[numpy-support]\n")
	out := filepath.Join(t.TempDir(), "out")
	var imgs []v1.Image
	for i, score := range []string{"def init():\n    pass\n\n\ndef run(raw):\n    return raw\n", "def init():\n    pass\n\n\ndef run(raw):\n    return raw + raw\n"} {
		mustWrite(t, filepath.Join(f.spec.SourceDir, "score.py"), score)
		tag := fmt.Sprint(i + 1)
		start := time.Now()
		res, err := Build(ctx, f.spec, f.base, Output{LayoutDir: out, Tag: tag})
		if err != nil {
			t.Fatalf("%v\n%s", err, res.Log)
		}
		t.Logf("build %s: %s", tag, time.Since(start).Round(time.Millisecond))
		imgs = append(imgs, readLayout(t, out, tag))
	}
	for trial := range 3 {
		parent := filepath.Join(t.TempDir(), "rootfs")
		start := time.Now()
		if err := flattenReference(t, imgs[1], filepath.Join(t.TempDir(), "flat")); err != nil {
			t.Fatal(err)
		}
		flat := time.Since(start)
		start = time.Now()
		if _, err := UnpackImage(ctx, imgs[0], filepath.Join(parent, "one")); err != nil {
			t.Fatal(err)
		}
		cold := time.Since(start)
		start = time.Now()
		if _, err := UnpackImage(ctx, imgs[1], filepath.Join(parent, "two")); err != nil {
			t.Fatal(err)
		}
		warm := time.Since(start)
		files, dirs := 0, 0
		filepath.WalkDir(filepath.Join(parent, "two"), func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs++
			} else if err == nil {
				files++
			}
			return nil
		})
		t.Logf("trial %d: %d files, %d directories: flattened whole %s; layer cache cold (first image) %s, changed image from the cache %s",
			trial, files, dirs, flat.Round(time.Millisecond), cold.Round(time.Millisecond), warm.Round(time.Millisecond))
	}
}
