package api_test

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/api"
	"github.com/atelier-ml/atelier/datastore/datastoretest"
)

// MustUnixClient serves s's API on a Unix socket too, as the binary does, and returns an admin
// client of it.
func MustUnixClient(tb testing.TB, s *Stack) *api.Client {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "atelier.sock")
	ln, err := api.ListenUnix(path)
	if err != nil {
		tb.Fatal(err)
	}
	srv := &http.Server{Handler: s.API, ConnContext: api.ConnContext}
	go srv.Serve(ln)
	tb.Cleanup(func() { srv.Close() })
	c := api.NewClient(api.UnixScheme+path, s.Token)
	if !c.PassesFiles() {
		tb.Fatal("a client of a Unix socket does not pass files")
	}
	return c
}

// Over the Unix socket files are passed as descriptors: uploads and downloads whole, with
// progress, to a files datastore and to the (in-memory) object-store-backed built-in one.
func TestLocalSocketTransfers(t *testing.T) {
	s := MustStack(t)
	c, ctx := MustUnixClient(t, s), Ctx(t)
	lake := t.TempDir()
	if _, err := c.RegisterDatastore(ctx, "default", atelier.DatastoreSpec{Name: "lake", Kind: atelier.DatastoreFiles, Path: lake}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	content := datastoretest.Content(5, 40<<20+3)
	src := filepath.Join(dir, "src.bin")
	if err := os.WriteFile(src, content, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, ds := range []string{"lake", "default"} {
		var up int64
		lf, err := api.OpenLocalFile(src, func(n int64) { up += n })
		if err != nil {
			t.Fatal(err)
		}
		f, err := c.WriteDatastoreFile(ctx, "default", ds, "data/src.bin", lf, "", "")
		lf.Close()
		if err != nil || f.Size != int64(len(content)) {
			t.Fatalf("%s: upload = %+v, %v", ds, f, err)
		}
		if up != int64(len(content)) {
			t.Errorf("%s: upload progress %d, want %d", ds, up, len(content))
		}
		// A download into a file the client passes.
		dst, err := os.Create(filepath.Join(dir, ds+".out"))
		if err != nil {
			t.Fatal(err)
		}
		var down int64
		got, err := c.DownloadDatastoreFile(ctx, "default", ds, "data/src.bin", dst, func(n int64) { down += n })
		dst.Close()
		if err != nil || got.Size != int64(len(content)) {
			t.Fatalf("%s: download = %+v, %v", ds, got, err)
		}
		if b, _ := os.ReadFile(dst.Name()); !bytes.Equal(b, content) {
			t.Errorf("%s: downloaded %d bytes that differ from the %d uploaded", ds, len(b), len(content))
		}
		if down != int64(len(content)) {
			t.Errorf("%s: download progress %d, want %d", ds, down, len(content))
		}
	}
	if b, _ := os.ReadFile(filepath.Join(lake, "data", "src.bin")); !bytes.Equal(b, content) {
		t.Errorf("the files datastore's folder holds %d bytes that differ", len(b))
	}
	// A digest given with a passed file is checked.
	lf, _ := api.OpenLocalFile(src, nil)
	_, err := c.WriteDatastoreFile(ctx, "default", "lake", "data/bad.bin", lf, datastoretest.Sum([]byte("other")), "")
	lf.Close()
	if atelier.ErrorCode(err) != atelier.EINVALID || !strings.Contains(atelier.ErrorMessage(err), "does not match sha256") {
		t.Errorf("a passed file with a wrong sha256: %v", err)
	}
	// The rest of the API works over the socket too.
	if page, err := c.ListDatastoreFiles(ctx, "default", "lake", atelier.DatastoreFileQuery{Recursive: true}); err != nil || len(page.Files) != 1 {
		t.Errorf("list over the socket = %+v, %v", page, err)
	}
}

// A passed file that grows while the server copies it is refused, and nothing is stored.
func TestLocalSocketChangingFile(t *testing.T) {
	s := MustStack(t)
	c, ctx := MustUnixClient(t, s), Ctx(t)
	path := filepath.Join(t.TempDir(), "growing.bin")
	if err := os.WriteFile(path, datastoretest.Content(6, 128<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	lf, err := api.OpenLocalFile(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	// The server moves the passed descriptor's offset as it copies (the client's own file
	// description): once it has started, the file grows.
	done := make(chan struct{})
	go func() {
		defer close(done)
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Microsecond) {
			if api.LocalFileOffset(lf) > 0 {
				f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
				if err == nil {
					f.Write([]byte("more"))
					f.Close()
				}
				return
			}
		}
	}()
	_, err = c.WriteDatastoreFile(ctx, "default", "default", "growing.bin", lf, "", "")
	<-done
	if atelier.ErrorCode(err) != atelier.EINVALID || !strings.Contains(atelier.ErrorMessage(err), "changed while it was copied") {
		t.Fatalf("upload of a growing file: %v, want it refused", err)
	}
	if _, _, err := c.OpenDatastoreFile(ctx, "default", "default", "growing.bin"); atelier.ErrorCode(err) != atelier.ENOTFOUND {
		t.Errorf("after the refused upload: %v, want not found", err)
	}
}

// Bad input: the header without a descriptor (or over TCP), descriptors of the wrong kind or
// access, and many descriptors at once.
func TestLocalSocketBadInput(t *testing.T) {
	s := MustStack(t)
	c, ctx := MustUnixClient(t, s), Ctx(t)
	if _, err := s.Client.WriteDatastoreFile(ctx, "default", "default", "x", strings.NewReader("x"), "", ""); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	os.WriteFile(file, []byte("content"), 0o644)

	// Over TCP the header is refused.
	for name, url := range map[string]string{"tcp": s.Server.URL} {
		req, _ := http.NewRequest("PUT", url+"/api/v1/workspaces/default/datastores/default/files/y", strings.NewReader("body"))
		req.Header.Set("Authorization", "Bearer "+s.Token)
		req.Header.Set(api.LocalFileHeader, "1")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 400 || !strings.Contains(string(body), "only over the server's Unix socket") {
			t.Errorf("%s: the header without a socket: %d %s", name, resp.StatusCode, body)
		}
	}
	raw := api.NewRawUnixRequester(c) // sends a request with the given descriptors
	for _, tc := range []struct {
		name, method string
		open         func() (*os.File, error)
		want         string
	}{
		{"no descriptor", "PUT", nil, "no file descriptor came with the request"},
		{"a folder to read", "PUT", func() (*os.File, error) { return os.Open(dir) }, "is not a regular file"},
		{"a write-only file to read", "PUT", func() (*os.File, error) { return os.OpenFile(file, os.O_WRONLY, 0) }, "is not open for reading"},
		{"a read-only file to write", "GET", func() (*os.File, error) { return os.Open(file) }, "is not open for writing"},
		{"an append-only file to write", "GET", func() (*os.File, error) { return os.OpenFile(file, os.O_WRONLY|os.O_APPEND, 0) }, "is open for appending"},
		{"a pipe to write", "GET", func() (*os.File, error) { _, w, err := os.Pipe(); return w, err }, "is not a regular file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var fds []*os.File
			if tc.open != nil {
				f, err := tc.open()
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				fds = append(fds, f)
			}
			status, body := raw(ctx, tc.method, "/api/v1/workspaces/default/datastores/default/files/x", fds)
			if status != 400 || !strings.Contains(body, tc.want) {
				t.Errorf("%s: %d %s, want 400 with %q", tc.name, status, body, tc.want)
			}
		})
	}
	// Many descriptors in one message: one is kept, the rest closed; the request still works.
	var fds []*os.File
	for i := 0; i < 5; i++ {
		f, _ := os.Open(file)
		defer f.Close()
		fds = append(fds, f)
	}
	if status, body := raw(ctx, "PUT", "/api/v1/workspaces/default/datastores/default/files/many", fds); status != 201 {
		t.Errorf("five descriptors: %d %s", status, body)
	}
}
