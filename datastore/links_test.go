//go:build linux

package datastore_test

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/datastore"
	"github.com/atelier-ml/atelier/datastore/datastoretest"
)

// outside is a folder beside a datastore's, which no link may lead a request into.
type outside struct {
	dir  string
	want map[string]string // its files and their content
}

func mustOutside(t *testing.T, dir string) *outside {
	t.Helper()
	o := &outside{dir: dir, want: map[string]string{"secret": "OUTSIDE SECRET", "victim": "must stay", "sub/deep": "deep secret"}}
	for name, content := range o.want {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return o
}

// check fails the test unless the folder holds its files as they were, and nothing else.
func (o *outside) check(t *testing.T) {
	t.Helper()
	got := map[string]string{}
	filepath.WalkDir(o.dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		rel, _ := filepath.Rel(o.dir, p)
		got[filepath.ToSlash(rel)] = string(data)
		return err
	})
	for name, content := range o.want {
		if got[name] != content {
			t.Errorf("outside the datastore, %s holds %q, want %q", name, got[name], content)
		}
		delete(got, name)
	}
	for name := range got {
		t.Errorf("outside the datastore, %s was written", name)
	}
}

// leaks reports whether b holds a secret of the outside folder.
func (o *outside) leaks(b []byte) bool {
	for _, content := range o.want {
		if bytes.Contains(b, []byte(content)) {
			return true
		}
	}
	return false
}

func mustSymlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

func wantCode(t *testing.T, what string, err error, code string) {
	t.Helper()
	if atelier.ErrorCode(err) != code {
		t.Errorf("%s: %v (code %s), want %s", what, err, atelier.ErrorCode(err), code)
	}
}

func listAll(t *testing.T, b atelier.DatastoreBucket, q atelier.DatastoreFileQuery) []string {
	t.Helper()
	var out []string
	for {
		page, err := b.List(t.Context(), q)
		if err != nil {
			t.Fatalf("List(%+v): %v", q, err)
		}
		for _, f := range page.Files {
			out = append(out, f.Path)
		}
		if page.NextPageToken == "" {
			return out
		}
		q.PageToken = page.NextPageToken
	}
}

// A files datastore never reads, writes, lists, deletes or hashes anything outside its folder,
// whatever links the folder holds: links to files and folders, relative and absolute, made
// after the datastore was opened. Links that stay inside work as their targets.
func TestFilesLinks(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "ds")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	out := mustOutside(t, filepath.Join(base, "out"))
	b := mustOpen(t, datastore.NewOpener(t.TempDir()), &atelier.Datastore{Name: "local", Kind: atelier.DatastoreFiles, Path: dir}, atelier.DatastoreCredentials{})
	ctx := t.Context()
	datastoretest.MustWrite(t, b, "in.txt", []byte("inside"))
	datastoretest.MustWrite(t, b, "sub/f.txt", []byte("in sub"))

	// Made after the datastore was opened.
	escaping := map[string]string{
		"file-out-abs": filepath.Join(out.dir, "secret"),
		"file-out-rel": "../out/secret",
		"dir-out-abs":  out.dir,
		"dir-out-rel":  "../out",
		"dir-out-deep": "sub/../../out", // inside, then out
		"abs-in":       filepath.Join(dir, "in.txt"),
		"dangling-out": "../out/missing",
	}
	for link, target := range escaping {
		mustSymlink(t, target, filepath.Join(dir, link))
	}
	mustSymlink(t, "in.txt", filepath.Join(dir, "file-in"))
	mustSymlink(t, "sub", filepath.Join(dir, "dir-in"))
	mustSymlink(t, "../in.txt", filepath.Join(dir, "sub", "up-in"))
	mustSymlink(t, ".", filepath.Join(dir, "loop"))
	mustSymlink(t, "nowhere", filepath.Join(dir, "dangling-in"))

	t.Run("Escaping", func(t *testing.T) {
		for link := range escaping {
			for _, p := range []string{link, link + "/secret", link + "/sub/deep", link + "/victim"} {
				_, rc, err := b.Open(ctx, p)
				if err == nil {
					data, _ := io.ReadAll(rc)
					rc.Close()
					t.Errorf("Open(%s) read %q", p, data)
				}
				wantCode(t, "Open("+p+")", err, atelier.ENOTFOUND)
				_, err = b.Stat(ctx, p)
				wantCode(t, "Stat("+p+")", err, atelier.ENOTFOUND)
				f, err := b.Digest(ctx, p)
				if err == nil {
					t.Errorf("Digest(%s) = %+v", p, f)
				}
				wantCode(t, "Digest("+p+")", err, atelier.ENOTFOUND)
				if p != link {
					wantCode(t, "Delete("+p+")", b.Delete(ctx, p), atelier.ENOTFOUND)
				}
			}
			for _, p := range []string{link + "/new", link + "/sub/new", link + "/secret", link + "/deeper/new"} {
				_, err := b.Write(ctx, p, strings.NewReader("attack"), "", "")
				wantCode(t, "Write("+p+")", err, atelier.EINVALID)
				// A local file, as passed over the server's socket, copied by the kernel.
				_, lf := writeLocal(t, []byte("attack"))
				_, err = b.Write(ctx, p, lf, "", "")
				wantCode(t, "Write("+p+") of a local file", err, atelier.EINVALID)
			}
			for _, prefix := range []string{link + "/", link + "/sub/", link + "/s"} {
				for _, recursive := range []bool{false, true} {
					page, err := b.List(ctx, atelier.DatastoreFileQuery{Prefix: prefix, Recursive: recursive})
					if err == nil && len(page.Files) > 0 {
						t.Errorf("List(%s, recursive=%v) = %v", prefix, recursive, page.Files)
					}
					if err != nil && atelier.ErrorCode(err) != atelier.ENOTFOUND {
						t.Errorf("List(%s): %v, want nothing or not found", prefix, err)
					}
				}
			}
		}
		out.check(t)
		_, err := b.Write(ctx, "dir-out-abs/x", strings.NewReader("attack"), "", "")
		if msg := atelier.ErrorMessage(err); !strings.Contains(msg, "link that leads outside") || !strings.Contains(msg, "dir-out-abs/x") {
			t.Errorf("the refusal %q does not say why", msg)
		}
	})

	// Links inside the folder work as their targets; listings show what can be read, and a
	// link back to a parent is not entered again.
	t.Run("Inside", func(t *testing.T) {
		_, _, err := b.Open(ctx, "dangling-in")
		wantCode(t, "Open(dangling-in)", err, atelier.ENOTFOUND)
		for p, want := range map[string]string{"file-in": "inside", "dir-in/f.txt": "in sub", "sub/up-in": "inside", "loop/in.txt": "inside", "dir-in/up-in": "inside"} {
			if got := datastoretest.MustRead(t, b, p); string(got) != want {
				t.Errorf("read %s = %q, want %q", p, got, want)
			}
			if f, err := b.Digest(ctx, p); err != nil || f.SHA256 != datastoretest.Sum([]byte(want)) {
				t.Errorf("Digest(%s) = %+v, %v", p, f, err)
			}
		}
		datastoretest.MustWrite(t, b, "dir-in/new.txt", []byte("via link"))
		if got, err := os.ReadFile(filepath.Join(dir, "sub", "new.txt")); string(got) != "via link" {
			t.Errorf("a write through a link inside: sub/new.txt holds %q, %v", got, err)
		}
		if err := b.Delete(ctx, "dir-in/new.txt"); err != nil {
			t.Errorf("Delete through a link inside: %v", err)
		}
		if got := listAll(t, b, atelier.DatastoreFileQuery{Recursive: true}); !slices.Equal(got, []string{
			"dir-in/f.txt", "dir-in/up-in", "file-in", "in.txt", "sub/f.txt", "sub/up-in"}) {
			t.Errorf("recursive listing = %q", got)
		}
		if got := listAll(t, b, atelier.DatastoreFileQuery{Recursive: true, Limit: 1}); len(got) != 6 {
			t.Errorf("recursive listing by pages of 1 = %q", got)
		}
		if got := listAll(t, b, atelier.DatastoreFileQuery{}); !slices.Equal(got, []string{"dir-in/", "file-in", "in.txt", "sub/"}) {
			t.Errorf("listing = %q", got)
		}
		if got := listAll(t, b, atelier.DatastoreFileQuery{Prefix: "dir-in/"}); !slices.Equal(got, []string{"dir-in/f.txt", "dir-in/up-in"}) {
			t.Errorf("listing dir-in/ = %q", got)
		}
		page, err := b.List(ctx, atelier.DatastoreFileQuery{Prefix: "file-in"})
		if err != nil || len(page.Files) != 1 || page.Files[0].Size != int64(len("inside")) {
			t.Errorf("listing a link to a file = %+v, %v; want it with its target's size", page, err)
		}
	})

	// A link itself can be replaced or removed: that changes the folder, never the target.
	t.Run("TheLinkItself", func(t *testing.T) {
		datastoretest.MustWrite(t, b, "file-out-abs", []byte("replaced"))
		if fi, err := os.Lstat(filepath.Join(dir, "file-out-abs")); err != nil || !fi.Mode().IsRegular() {
			t.Errorf("after a write, file-out-abs is %v, %v; want a file", fi, err)
		}
		for _, link := range []string{"dir-out-abs", "file-out-rel", "dangling-out", "dangling-in"} {
			if err := b.Delete(ctx, link); err != nil {
				t.Errorf("Delete(%s): %v", link, err)
			}
			if _, err := os.Lstat(filepath.Join(dir, link)); !os.IsNotExist(err) {
				t.Errorf("%s is still there: %v", link, err)
			}
		}
		out.check(t)
	})
}

// A path swapped between a folder and a link to outside while requests run (an atomic
// exchange, so the path is always one or the other) never serves a byte from outside nor
// takes one there: each step is resolved beneath the datastore's folder, not checked first and
// used after.
func TestFilesLinkSwapRace(t *testing.T) {
	for name, target := range map[string]func(out string) string{
		"absolute": func(out string) string { return out },
		"relative": func(string) string { return "../out" },
	} {
		t.Run(name, func(t *testing.T) { testLinkSwap(t, target) })
	}
}

func testLinkSwap(t *testing.T, target func(out string) string) {
	base := t.TempDir()
	dir := filepath.Join(base, "ds")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	out := mustOutside(t, filepath.Join(base, "out"))
	out.want["x"] = "OUTSIDE X"
	if err := os.WriteFile(filepath.Join(out.dir, "x"), []byte(out.want["x"]), 0o644); err != nil {
		t.Fatal(err)
	}
	b := mustOpen(t, datastore.NewOpener(t.TempDir()), &atelier.Datastore{Name: "local", Kind: atelier.DatastoreFiles, Path: dir}, atelier.DatastoreCredentials{})
	ctx := t.Context()
	datastoretest.MustWrite(t, b, "d/x", []byte("inside x"))
	datastoretest.MustWrite(t, b, "d/victim", []byte("inside victim"))
	insideSum := datastoretest.Sum([]byte("inside x"))

	// d is a folder, then a link to outside, and again.
	d, alt := filepath.Join(dir, "d"), filepath.Join(dir, "d.alt")
	mustSymlink(t, target(out.dir), alt)
	exchange := func() error { return unix.Renameat2(unix.AT_FDCWD, d, unix.AT_FDCWD, alt, unix.RENAME_EXCHANGE) }
	if err := exchange(); err != nil {
		t.Skip("no atomic exchange of names here:", err)
	}
	stop := make(chan struct{})
	var flips atomic.Int64
	var flipper sync.WaitGroup
	flipper.Add(1)
	go func() {
		defer flipper.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := exchange(); err != nil {
				t.Errorf("exchanging d and its link: %v", err)
				return
			}
			flips.Add(1)
		}
	}()
	var once sync.Once
	halt := func() { once.Do(func() { close(stop); flipper.Wait() }) }
	defer halt()

	var served, refused atomic.Int64
	check := func(what string, data []byte, err error) {
		if err != nil {
			refused.Add(1)
			if code := atelier.ErrorCode(err); code == atelier.EINTERNAL {
				t.Errorf("%s: %v, want a client error", what, err)
			}
			return
		}
		if out.leaks(data) {
			t.Errorf("%s served %q from outside the datastore", what, data)
		}
		served.Add(1)
	}
	dst, err := os.Create(filepath.Join(t.TempDir(), "dst"))
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	deadline := time.Now().Add(2 * time.Minute)
	for i := 0; served.Load() < 200 || refused.Load() < 200 || flips.Load() < 200; i++ {
		if time.Now().After(deadline) {
			t.Fatalf("after %d rounds and %d swaps, %d requests served and %d refused: the swap was not met", i, flips.Load(), served.Load(), refused.Load())
		}
		_, rc, err := b.Open(ctx, "d/x")
		var data []byte
		if err == nil {
			// By the kernel into a file, as a download over the socket.
			dst.Truncate(0)
			dst.Seek(0, io.SeekStart)
			if _, err = io.Copy(dst, rc); err == nil {
				data, err = os.ReadFile(dst.Name())
			}
			rc.Close()
		}
		check("Open(d/x)", data, err)
		f, err := b.Digest(ctx, "d/x")
		if err == nil && f.SHA256 != "" && f.SHA256 != insideSum {
			t.Errorf("Digest(d/x) = %s: not the inside file's", f.SHA256)
		}
		check("Digest(d/x)", nil, err)
		_, err = b.Write(ctx, "d/w", strings.NewReader("written"), "", "")
		check("Write(d/w)", nil, err)
		_, lf := writeLocal(t, []byte("written by the kernel"))
		_, err = b.Write(ctx, "d/sub/l", lf, "", "")
		lf.Close()
		check("Write(d/sub/l)", nil, err)
		page, err := b.List(ctx, atelier.DatastoreFileQuery{Prefix: "d/", Recursive: i%2 == 0})
		if err == nil {
			for _, f := range page.Files {
				if p := strings.TrimPrefix(f.Path, "d/"); p == "secret" || p == "sub/deep" {
					t.Errorf("List(d/) shows %s, from outside", f.Path)
				}
			}
		}
		check("List(d/)", nil, err)
		err = b.Delete(ctx, "d/victim")
		check("Delete(d/victim)", nil, err)
		if err == nil {
			if _, err := b.Write(ctx, "d/victim", strings.NewReader("inside victim"), "", ""); err != nil {
				check("Write(d/victim)", nil, err)
			}
		}
	}
	halt()
	out.check(t)
}

// A path whose names are over 255 bytes is refused with the limit (every operation of every
// kind: see datastoretest); 255 bytes are taken, and the write's temporary file is named
// within the limit too.
func TestFilesNameLimit(t *testing.T) {
	dir := t.TempDir()
	b := mustOpen(t, datastore.NewOpener(t.TempDir()), &atelier.Datastore{Name: "local", Kind: atelier.DatastoreFiles, Path: dir}, atelier.DatastoreCredentials{})
	ctx := t.Context()
	long := strings.Repeat("é", 128) // 256 bytes
	for _, p := range []string{long, "a/" + long, long + "/b"} {
		_, err := b.Write(ctx, p, strings.NewReader("x"), "", "")
		if atelier.ErrorCode(err) != atelier.EINVALID || !strings.Contains(atelier.ErrorMessage(err), "255 bytes per path component") {
			t.Errorf("Write(%s): %v, want it refused with the limit", p, err)
		}
	}
	fits := "d/" + strings.Repeat("n", 255)
	datastoretest.MustWrite(t, b, fits, []byte("fits"))
	if got := datastoretest.MustRead(t, b, fits); string(got) != "fits" {
		t.Errorf("read %q", got)
	}
	if got := listAll(t, b, atelier.DatastoreFileQuery{Recursive: true}); !slices.Equal(got, []string{fits}) {
		t.Errorf("listing = %q", got)
	}
}

// A FIFO in the folder is no file: reading it is refused at once (the open does not wait for
// a writer), and listings leave it out.
func TestFilesFIFO(t *testing.T) {
	dir := t.TempDir()
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o644); err != nil {
		t.Skip("no FIFOs here:", err)
	}
	b := mustOpen(t, datastore.NewOpener(t.TempDir()), &atelier.Datastore{Name: "local", Kind: atelier.DatastoreFiles, Path: dir}, atelier.DatastoreCredentials{})
	_, _, err := b.Open(t.Context(), "fifo")
	wantCode(t, "Open(fifo)", err, atelier.ENOTFOUND)
	_, err = b.Digest(t.Context(), "fifo")
	wantCode(t, "Digest(fifo)", err, atelier.ENOTFOUND)
	if got := listAll(t, b, atelier.DatastoreFileQuery{Recursive: true}); len(got) != 0 {
		t.Errorf("listing = %q", got)
	}
}

// writeLocal writes content to a file outside any datastore and opens it, as a client passes
// one over the server's socket.
func writeLocal(t *testing.T, content []byte) (string, *os.File) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "local")
	if err := os.WriteFile(path, content, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return path, f
}
