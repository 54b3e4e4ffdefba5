package archive

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/atelier-ml/atelier"
	"github.com/google/go-cmp/cmp"
)

func sum(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func TestScanEntries(t *testing.T) {
	dir := t.TempDir()
	MustWriteTree(t, dir, map[string]string{"train.py": "#!/usr/bin/env python\n", "lib/util.py": "x = 1\n", "empty": ""})
	files, err := Scan(t.Context(), dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var got []atelier.SnapshotEntry
	for _, f := range files {
		got = append(got, f.SnapshotEntry)
		if data, err := os.ReadFile(f.LocalPath); err != nil || sum(string(data)) != f.Digest {
			t.Errorf("%s: LocalPath %s does not hold the content (%v)", f.Path, f.LocalPath, err)
		}
		if f.ModTime.IsZero() {
			t.Errorf("%s: no ModTime", f.Path)
		}
	}
	want := []atelier.SnapshotEntry{
		{Path: "empty", Digest: sum(""), Size: 0},
		{Path: "lib/util.py", Digest: sum("x = 1\n"), Size: 6},
		{Path: "train.py", Digest: sum("#!/usr/bin/env python\n"), Size: 22, Executable: true},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("entries (-want +got):\n%s", diff)
	}
	if _, _, err := atelier.NormalizeSnapshot(got); err != nil {
		t.Errorf("the domain refuses the scanned entries: %v", err)
	}
}

func TestScanSymlinks(t *testing.T) {
	outside := t.TempDir()
	MustWriteTree(t, outside, map[string]string{"secret": "s3cr3t"})
	tests := []struct {
		name    string
		ignore  string
		link    string // link path → target, relative to the source dir unless absolute
		target  string
		want    []string // paths scanned, when no error
		wantErr string
	}{
		{name: "to a file inside", link: "link.py", target: "src/real.py", want: []string{"link.py", "src/real.py"}},
		{name: "relative up inside", link: "src/up.py", target: "../src/real.py", want: []string{"src/real.py", "src/up.py"}},
		{name: "to a file outside", link: "leak", target: filepath.Join(outside, "secret"), wantErr: "symlink leak points outside the source directory"},
		{name: "relative escape", link: "src/leak", target: "../../" + filepath.Base(outside) + "/secret", wantErr: "symlink src/leak points outside"},
		{name: "to a directory inside", link: "srcdir", target: "src", wantErr: "symlink srcdir points to a directory"},
		{name: "to a directory outside", link: "out", target: outside, wantErr: "symlink out points outside"},
		{name: "broken", link: "gone", target: "nowhere", wantErr: "symlink gone is broken"},
		{name: "ignored outside link", ignore: "leak\n", link: "leak", target: filepath.Join(outside, "secret"), want: []string{".gitignore", "src/real.py"}},
		{name: "ignored broken link", ignore: "gone\n", link: "gone", target: "nowhere", want: []string{".gitignore", "src/real.py"}},
		{name: "directory link ignored by a dir pattern", ignore: "srcdir/\n", link: "srcdir", target: "src", want: []string{".gitignore", "src/real.py"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			parent := t.TempDir()
			dir := filepath.Join(parent, "proj")
			MustWriteTree(t, dir, map[string]string{"src/real.py": "print(1)\n"})
			if tt.ignore != "" {
				MustWriteTree(t, dir, map[string]string{".gitignore": tt.ignore})
			}
			target := tt.target
			if !filepath.IsAbs(target) && strings.Contains(tt.target, filepath.Base(outside)) {
				// Make the escape relative to where the link lives, through the real outside dir.
				rel, _ := filepath.Rel(filepath.Dir(filepath.Join(dir, tt.link)), filepath.Join(outside, "secret"))
				target = rel
			}
			if err := os.Symlink(target, filepath.Join(dir, filepath.FromSlash(tt.link))); err != nil {
				t.Fatal(err)
			}
			files, err := Scan(t.Context(), dir, Options{})
			if tt.wantErr != "" {
				wantInvalid(t, err, tt.wantErr)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, f := range files {
				got = append(got, f.Path)
				if strings.HasSuffix(f.Path, ".py") && f.Digest != sum("print(1)\n") {
					t.Errorf("%s: digest %s, want the target's content", f.Path, f.Digest)
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("paths (-want +got):\n%s", diff)
			}
		})
	}
}

func TestScanSourceDirIsSymlink(t *testing.T) {
	real := t.TempDir()
	MustWriteTree(t, real, map[string]string{"a.py": "a", "src/b.py": "b"})
	link := filepath.Join(t.TempDir(), "proj")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../a.py", filepath.Join(real, "src", "a.py")); err != nil {
		t.Fatal(err)
	}
	got := MustScanPaths(t, link, Options{})
	if diff := cmp.Diff([]string{"a.py", "src/a.py", "src/b.py"}, got); diff != "" {
		t.Errorf("paths (-want +got):\n%s", diff)
	}
}

func TestScanErrors(t *testing.T) {
	_, err := Scan(t.Context(), filepath.Join(t.TempDir(), "missing"), Options{})
	wantInvalid(t, err, "cannot read the source directory")

	dir := t.TempDir()
	MustWriteTree(t, dir, map[string]string{`back\slash`: ""})
	_, err = Scan(t.Context(), dir, Options{})
	wantInvalid(t, err, `back\\slash`)
}

func TestScanLimits(t *testing.T) {
	tree := map[string]string{"train.py": "print(1)\n", ".amlignore": "ignored/\n"}
	for i := range 12 {
		tree[fmt.Sprintf("data/part%02d.bin", i)] = strings.Repeat("x", 1000+i)
	}
	for i := range 30 {
		tree[fmt.Sprintf("node_modules/pkg%d/index.js", i%3)+strings.Repeat("x", i)] = "js"
	}
	for i := range 100 {
		tree[fmt.Sprintf("ignored/%d", i)] = strings.Repeat("y", 10000)
	}
	dir := t.TempDir()
	MustWriteTree(t, dir, tree)
	tests := []struct {
		name    string
		opt     Options
		want    []string
		notWant []string
	}{{
		name: "bytes",
		opt:  Options{MaxBytes: 5000},
		want: []string{"over the limit of 4.9 KiB", "holds 11.9 KiB in 44 files", "data/part11.bin  1011 B", "data/part02.bin", ".amlignore"},
		// Only the ten biggest are named.
		notWant: []string{"data/part01.bin", "train.py", "ignored/"},
	}, {
		name:    "files",
		opt:     Options{MaxFiles: 40},
		want:    []string{"44 files, over the limit of 40 files", "node_modules/  30 files", "node_modules/pkg0/  10 files", "data/  12 files", ".amlignore"},
		notWant: []string{"at least", "ignored"},
	}, {
		name: "files fail fast",
		opt:  Options{MaxFiles: 2},
		want: []string{"at least 21 files, over the limit of 2 files"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Scan(t.Context(), dir, tt.opt)
			wantInvalid(t, err, tt.want...)
			for _, nw := range tt.notWant {
				if strings.Contains(atelier.ErrorMessage(err), nw) {
					t.Errorf("message mentions %q:\n%s", nw, atelier.ErrorMessage(err))
				}
			}
		})
	}
	if _, err := Scan(t.Context(), dir, Options{MaxFiles: 44, MaxBytes: 1 << 20}); err != nil {
		t.Errorf("at the limits: %v", err)
	}
}

func TestScanCanceled(t *testing.T) {
	dir := t.TempDir()
	MustWriteTree(t, dir, map[string]string{"a": "a"})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := Scan(ctx, dir, Options{}); err != context.Canceled {
		t.Errorf("got %v, want context.Canceled", err)
	}
}

func TestHashCache(t *testing.T) {
	dir := t.TempDir()
	MustWriteTree(t, dir, map[string]string{"a.txt": "aaaa", "b.txt": "bbbb"})
	old := time.Now().Add(-time.Hour).Truncate(time.Second)
	for _, p := range []string{"a.txt", "b.txt"} {
		if err := os.Chtimes(filepath.Join(dir, p), old, old); err != nil {
			t.Fatal(err)
		}
	}
	cachePath := filepath.Join(t.TempDir(), "cache", "hashes.json")
	cache, err := LoadHashCache(cachePath)
	if err != nil {
		t.Fatal(err)
	}
	digests := func(c *HashCache) map[string]string {
		t.Helper()
		files, err := Scan(t.Context(), dir, Options{Cache: c})
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]string{}
		for _, f := range files {
			m[f.Path] = f.Digest
		}
		return m
	}
	first := digests(cache)
	if err := cache.Save(); err != nil {
		t.Fatal(err)
	}

	// Same size, same time, same inode, other content: only a cache hit still gives the old digest.
	if err := os.WriteFile(filepath.Join(dir, "a.txt"), []byte("AAAA"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(filepath.Join(dir, "a.txt"), old, old); err != nil {
		t.Fatal(err)
	}
	loaded, err := LoadHashCache(cachePath)
	if err != nil {
		t.Fatal(err)
	}
	if got := digests(loaded); got["a.txt"] != first["a.txt"] {
		t.Errorf("a.txt was hashed again: the saved cache was not used")
	}
	// A new modification time is a miss.
	if err := os.Chtimes(filepath.Join(dir, "a.txt"), old.Add(time.Second), old.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if got := digests(loaded); got["a.txt"] != sum("AAAA") {
		t.Errorf("a.txt digest %s, want the new content's", got["a.txt"])
	}
	// Without a cache the truth is always read.
	if got := digests(nil); got["a.txt"] != sum("AAAA") || got["b.txt"] != sum("bbbb") {
		t.Errorf("uncached digests %v", got)
	}

	// A file written just now is not trusted to the cache (racy timestamps).
	MustWriteTree(t, dir, map[string]string{"new.txt": "new"})
	fresh, _ := LoadHashCache(filepath.Join(t.TempDir(), "fresh.json"))
	digests(fresh)
	if _, ok := fresh.used[filepath.Join(evalSymlinks(t, dir), "new.txt")]; ok {
		t.Errorf("a file modified within %v was cached", racyWindow)
	}

	// A corrupt cache is an empty one.
	bad := MustWriteFile(t, "bad.json", []byte("{not json"))
	if c, err := LoadHashCache(bad); err != nil || len(c.old) != 0 {
		t.Errorf("LoadHashCache(corrupt) = %v, %v; want an empty cache", c, err)
	}
}

func evalSymlinks(tb testing.TB, p string) string {
	tb.Helper()
	r, err := filepath.EvalSymlinks(p)
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

func TestCachePath(t *testing.T) {
	a, err := CachePath("/src/a")
	if err != nil {
		t.Skip("no user cache dir:", err)
	}
	b, _ := CachePath("/src/b")
	if a == b || !strings.Contains(a, filepath.Join("atelier", "snapshot-hashes")) {
		t.Errorf("CachePath gave %q and %q", a, b)
	}
}

// MustZipDir scans dir and zips it.
func MustZipDir(tb testing.TB, dir string) []byte {
	tb.Helper()
	files, err := Scan(tb.Context(), dir, Options{})
	if err != nil {
		tb.Fatal(err)
	}
	var buf bytes.Buffer
	if err := WriteZip(&buf, entriesOf(files), openLocal(files)); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

func entriesOf(files []LocalFile) []atelier.SnapshotEntry {
	var es []atelier.SnapshotEntry
	for _, f := range files {
		es = append(es, f.SnapshotEntry)
	}
	return es
}

func openLocal(files []LocalFile) func(atelier.SnapshotEntry) (io.ReadCloser, error) {
	byPath := map[string]string{}
	for _, f := range files {
		byPath[f.Path] = f.LocalPath
	}
	return func(e atelier.SnapshotEntry) (io.ReadCloser, error) { return os.Open(byPath[e.Path]) }
}

func TestDeterministicZip(t *testing.T) {
	tree := map[string]string{"train.py": "#!/bin/sh\necho hi\n", "z/last.txt": "z", "a/first.txt": "a", "data.csv": strings.Repeat("1,2,3\n", 10000)}
	dir1, dir2 := t.TempDir(), t.TempDir()
	MustWriteTree(t, dir1, tree)
	MustWriteTree(t, dir2, tree)
	// Other times, same content: the zip must not change.
	if err := os.Chtimes(filepath.Join(dir2, "data.csv"), time.Unix(1e9, 0), time.Unix(1e9, 0)); err != nil {
		t.Fatal(err)
	}
	z1, z1again, z2 := MustZipDir(t, dir1), MustZipDir(t, dir1), MustZipDir(t, dir2)
	if !bytes.Equal(z1, z1again) || !bytes.Equal(z1, z2) {
		t.Fatalf("zips differ: %d, %d, %d bytes", len(z1), len(z1again), len(z2))
	}
}

func TestWriteZipChangedFile(t *testing.T) {
	dir := t.TempDir()
	MustWriteTree(t, dir, map[string]string{"a.txt": "before"})
	files, err := Scan(t.Context(), dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	MustWriteTree(t, dir, map[string]string{"a.txt": "after!"}) // same size
	err = WriteZip(io.Discard, entriesOf(files), openLocal(files))
	if atelier.ErrorCode(err) != atelier.ECONFLICT || !strings.Contains(atelier.ErrorMessage(err), "a.txt") {
		t.Errorf("got %v, want ECONFLICT naming a.txt", err)
	}
}

func TestRoundTrip(t *testing.T) {
	tree := map[string]string{
		"train.py": "#!/usr/bin/env python\nprint('hi')\n", "lib/model.py": "class M: pass\n", "empty": "",
		"deep/er/still/data.bin": strings.Repeat("\x00\x01\xff", 50000), "naïve é.txt": "unicode",
		".gitignore": "*.pyc\n", "lib/cache.pyc": "ignored",
	}
	src := t.TempDir()
	MustWriteTree(t, src, tree)
	zipPath := MustWriteFile(t, "snap.zip", MustZipDir(t, src))
	dest := filepath.Join(t.TempDir(), "out")
	if err := ExtractZip(zipPath, dest, Options{}); err != nil {
		t.Fatal(err)
	}
	want := ReadTree(t, src)
	delete(want, "lib/cache.pyc")
	if diff := cmp.Diff(want, ReadTree(t, dest)); diff != "" {
		t.Errorf("extracted tree (-want +got):\n%s", diff)
	}
}

// BenchmarkScan scans a 2000-file, 100 MB tree: cold (every file hashed) and with a warm hash
// cache (nothing read but directories and inodes).
func BenchmarkScan(b *testing.B) {
	dir := b.TempDir()
	const files, size = 2000, 50 << 10
	data := make([]byte, size)
	old := time.Now().Add(-time.Hour)
	for i := range files {
		rand.Read(data)
		p := filepath.Join(dir, fmt.Sprintf("d%02d", i%40), fmt.Sprintf("f%04d.bin", i))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			b.Fatal(err)
		}
		if err := os.Chtimes(p, old, old); err != nil { // past the racy window, as real trees are
			b.Fatal(err)
		}
	}
	opt := Options{MaxBytes: 1 << 30}
	b.Run("cold", func(b *testing.B) {
		b.SetBytes(files * size)
		for b.Loop() {
			if _, err := Scan(b.Context(), dir, opt); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("cached", func(b *testing.B) {
		cache, err := LoadHashCache(filepath.Join(b.TempDir(), "hashes.json"))
		if err != nil {
			b.Fatal(err)
		}
		opt := opt
		opt.Cache = cache
		if _, err := Scan(b.Context(), dir, opt); err != nil {
			b.Fatal(err)
		}
		b.SetBytes(files * size)
		for b.Loop() {
			if _, err := Scan(b.Context(), dir, opt); err != nil {
				b.Fatal(err)
			}
		}
	})
}
