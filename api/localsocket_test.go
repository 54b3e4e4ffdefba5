package api_test

import (
	"bytes"
	"encoding/json"
	"fmt"
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

// MustUnixClient serves s's API on a Unix socket too, as the binary does (at the path the
// server tells, if it tells one), and returns an admin client of it.
func MustUnixClient(tb testing.TB, s *Stack) *api.Client {
	tb.Helper()
	path := s.API.LocalSocket
	if path == "" {
		path = filepath.Join(tb.TempDir(), "atelier.sock")
	}
	ln, err := api.ListenUnix(path)
	if err != nil {
		tb.Fatal(err)
	}
	srv := &http.Server{Handler: s.API}
	api.AcceptPassedFiles(srv)
	go srv.Serve(ln)
	tb.Cleanup(func() { srv.Close() })
	c := api.NewClient(api.UnixScheme+path, s.Token)
	if !c.PassesFiles() {
		tb.Fatal("a client of a Unix socket does not pass files")
	}
	return c
}

// A client that reaches the server over loopback TCP learns where its socket is from the
// health check, and switches to it when the socket is its user's.
func TestViaLocalSocket(t *testing.T) {
	ctx := Ctx(t)
	anyOwner := func(string) bool { return true }
	if other := MustStack(t); other.Client.ViaLocalSocket(ctx, anyOwner) != other.Client {
		t.Error("switched to a socket the server does not have")
	}
	// The field is set before the server serves: the race detector sees no order between a
	// write after and the server's reads.
	socket := filepath.Join(t.TempDir(), "atelier.sock")
	s := MustStack(t, WithLocalSocket(socket))
	if c := s.Client.ViaLocalSocket(ctx, anyOwner); c != s.Client {
		t.Error("switched to a socket nothing listens on")
	}
	MustUnixClient(t, s)
	h, err := s.Client.Health(ctx)
	if err != nil || h.Socket != socket {
		t.Fatalf("health over loopback = %+v, %v; want the socket %s", h, err, socket)
	}
	var asked string
	c := s.Client.ViaLocalSocket(ctx, func(p string) bool { asked = p; return true })
	if !c.PassesFiles() || asked != socket {
		t.Fatalf("not switched to the socket (ownership asked for %q)", asked)
	}
	// The same server, with the same token: an admin's call works.
	if _, err := c.ListDatastores(ctx, "default"); err != nil {
		t.Errorf("over the socket found from TCP: %v", err)
	}
	if c := s.Client.ViaLocalSocket(ctx, func(string) bool { return false }); c != s.Client {
		t.Error("switched to a socket of another user's")
	}
	// Through a proxy the peer may be anywhere: the socket is not told.
	for _, header := range []string{"X-Forwarded-For", "Forwarded"} {
		req, _ := http.NewRequestWithContext(ctx, "GET", s.Server.URL+"/api/v1/health", nil)
		req.Header.Set(header, "for=192.0.2.7")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var got api.Health
		json.NewDecoder(resp.Body).Decode(&got)
		resp.Body.Close()
		if got.Status != "ok" || got.Socket != "" {
			t.Errorf("health with %s = %+v, want ok without the socket", header, got)
		}
	}
	// A server elsewhere is not asked.
	remote := api.NewClient("http://192.0.2.7:8600", s.Token)
	if c := remote.ViaLocalSocket(ctx, anyOwner); c != remote {
		t.Error("a client of another machine switched to a socket")
	}
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
	const size = 128 << 20
	// The server moves the passed descriptor's offset as it copies (the client's own file
	// description): once it has started, the file grows. An attempt whose growth came after
	// the server had read the whole file (this goroutine was not scheduled in time on a loaded
	// machine) proves nothing, and is made again.
	for attempt := 1; ; attempt++ {
		name := fmt.Sprintf("growing-%d.bin", attempt)
		path := filepath.Join(t.TempDir(), name)
		if err := os.WriteFile(path, datastoretest.Content(6, size), 0o644); err != nil {
			t.Fatal(err)
		}
		lf, err := api.OpenLocalFile(path, nil)
		if err != nil {
			t.Fatal(err)
		}
		midCopy := make(chan bool, 1)
		go func() {
			for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Microsecond) {
				if api.LocalFileOffset(lf) > 0 {
					f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
					if err == nil {
						f.Write([]byte("more"))
						f.Close()
					}
					midCopy <- err == nil && api.LocalFileOffset(lf) < size
					return
				}
			}
			midCopy <- false
		}()
		_, err = c.WriteDatastoreFile(ctx, "default", "default", name, lf, "", "")
		grewMidCopy := <-midCopy
		lf.Close()
		if !grewMidCopy && err == nil && attempt < 10 {
			t.Logf("attempt %d: the file grew after the server had read it; again", attempt)
			continue
		}
		if atelier.ErrorCode(err) != atelier.EINVALID || !strings.Contains(atelier.ErrorMessage(err), "changed while it was copied") {
			t.Fatalf("upload of a file that grew while it was copied: %v, want it refused", err)
		}
		if _, _, err := c.OpenDatastoreFile(ctx, "default", "default", name); atelier.ErrorCode(err) != atelier.ENOTFOUND {
			t.Errorf("after the refused upload: %v, want not found", err)
		}
		return
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
	// Five descriptors for one file: refused, all closed.
	var fds []*os.File
	for i := 0; i < 5; i++ {
		f, _ := os.Open(file)
		defer f.Close()
		fds = append(fds, f)
	}
	if status, body := raw(ctx, "PUT", "/api/v1/workspaces/default/datastores/default/files/many", fds); status != 400 || !strings.Contains(body, "5 descriptors came with the request for 1 files") {
		t.Errorf("five descriptors: %d %s", status, body)
	}
}

// Many files in one request over the socket: each stored or written whole, with its own error
// where it fails, and the batch refused whole when its descriptors do not match its files.
func TestLocalSocketBatches(t *testing.T) {
	s := MustStack(t)
	c, ctx := MustUnixClient(t, s), Ctx(t)
	dir := t.TempDir()
	var up []api.PassedTransfer
	var contents [][]byte
	for i := 0; i < 5; i++ {
		content := datastoretest.Content(uint64(10+i), 1000*i+1)
		path := filepath.Join(dir, "in", string(rune('a'+i)))
		os.MkdirAll(filepath.Dir(path), 0o755)
		if err := os.WriteFile(path, content, 0o644); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		contents = append(contents, content)
		up = append(up, api.PassedTransfer{Path: "batch/" + string(rune('a'+i)), File: f})
	}
	up[3].SHA256 = datastoretest.Sum([]byte("not its content"))
	var reported int64
	got, errs, err := c.UploadPassedFiles(ctx, "default", "default", up, func(n int64) { reported += n })
	if err != nil {
		t.Fatal(err)
	}
	for i := range up {
		if i == 3 {
			if atelier.ErrorCode(errs[i]) != atelier.EINVALID || got[i] != nil {
				t.Errorf("file 4, with a wrong sha256: %+v, %v; want it refused", got[i], errs[i])
			}
			continue
		}
		if errs[i] != nil || got[i].Size != int64(len(contents[i])) {
			t.Errorf("file %d: %+v, %v", i+1, got[i], errs[i])
		}
	}
	if reported == 0 {
		t.Errorf("no progress reported")
	}

	// Downloads: the stored ones, and one missing.
	var down []api.PassedTransfer
	for i, p := range []string{"batch/a", "batch/e", "batch/missing"} {
		f, err := os.Create(filepath.Join(dir, "out"+string(rune('0'+i))))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		down = append(down, api.PassedTransfer{Path: p, File: f})
	}
	got, errs, err = c.DownloadPassedFiles(ctx, "default", "default", down, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range [][]byte{contents[0], contents[4]} {
		if errs[i] != nil || got[i].Size != int64(len(want)) {
			t.Errorf("download %d: %+v, %v", i+1, got[i], errs[i])
		}
		if b, _ := os.ReadFile(down[i].File.Name()); !bytes.Equal(b, want) {
			t.Errorf("download %d: %d bytes that differ from the %d stored", i+1, len(b), len(want))
		}
	}
	if atelier.ErrorCode(errs[2]) != atelier.ENOTFOUND {
		t.Errorf("download of a missing file: %v, want not found", errs[2])
	}

	// Each file of the upload batch is in the audit log as its PUT would be, with its status;
	// the download batch, a read, is not there.
	entries, err := s.Client.ListAudit(ctx, "default", atelier.AuditFilter{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	statuses := map[string]int{}
	for _, e := range entries {
		statuses[e.Method+" "+e.Path] = e.Status
		if strings.HasSuffix(e.Path, "/downloads") {
			t.Errorf("a batch download is audited: %+v", e)
		}
	}
	const files = "PUT /api/v1/workspaces/default/datastores/default/files/batch/"
	if statuses[files+"a"] != 201 || statuses[files+"d"] != 400 {
		t.Errorf("audit of the batch's files: a %d, d %d; want 201 and 400 (entries %v)", statuses[files+"a"], statuses[files+"d"], statuses)
	}

	// Refused whole: more descriptors than files, a bad path, too many files, over TCP.
	raw := api.NewRawUnixRequester(c)
	f, _ := os.Open(filepath.Join(dir, "in", "a"))
	defer f.Close()
	for _, tc := range []struct {
		name, body string
		fds        []*os.File
		want       string
	}{
		{"two descriptors for one file", `{"files":[{"path":"x"}]}`, []*os.File{f, f}, "2 descriptors came with the request for 1 files"},
		{"a path that escapes", `{"files":[{"path":"../x"}]}`, []*os.File{f}, "path"},
		{"no files", `{"files":[]}`, []*os.File{f}, "a batch holds 1 to"},
	} {
		status, body := raw(ctx, "POST", "/api/v1/workspaces/default/datastores/default/uploads", tc.fds, tc.body)
		if status != 400 || !strings.Contains(body, tc.want) {
			t.Errorf("%s: %d %s, want 400 with %q", tc.name, status, body, tc.want)
		}
	}
	if _, _, err := s.Client.UploadPassedFiles(ctx, "default", "default", up[:1], nil); atelier.ErrorCode(err) != atelier.EINVALID {
		t.Errorf("a batch over TCP: %v, want refused", err)
	}
	if _, _, err := c.UploadPassedFiles(ctx, "default", "default", make([]api.PassedTransfer, api.MaxPassedFiles+1), nil); atelier.ErrorCode(err) != atelier.EINVALID {
		t.Errorf("a batch of too many files: %v, want refused", err)
	}
}

// A descriptor passed with a request that did not take it (refused here for its token) is
// closed with its connection, which the server closes after that request: it never stands for
// another request's file. Descriptors come only with a connection's first request.
func TestLocalSocketLeftovers(t *testing.T) {
	s := MustStack(t)
	c, ctx := MustUnixClient(t, s), Ctx(t)
	dir := t.TempDir()
	open := func(name, content string) *os.File {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return f
	}
	const path = "/api/v1/workspaces/default/datastores/default/files/kept.txt"
	sess, err := api.NewRawUnixSession(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	if status, body := sess.Do(ctx, api.RawRequest{Method: "PUT", Path: path, Token: "atl_wrong", FDs: []*os.File{open("a", "from the refused request")}}); status != 401 {
		t.Fatalf("a wrong token: %d %s", status, body)
	}
	if status, body := sess.Do(ctx, api.RawRequest{Method: "PUT", Path: path, FDs: []*os.File{open("b", "from the second request")}}); status != 0 {
		t.Errorf("a second request on the connection that passed a descriptor: %d %s, want the connection closed", status, body)
	}
	// A keep-alive connection whose first request passed nothing takes none later.
	sess2, err := api.NewRawUnixSession(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	defer sess2.Close()
	if status, body := sess2.Do(ctx, api.RawRequest{Method: "GET", Path: "/api/v1/workspaces/default/datastores/default/access"}); status != 204 {
		t.Fatalf("a request without descriptors: %d %s", status, body)
	}
	if status, body := sess2.Do(ctx, api.RawRequest{Method: "PUT", Path: path, FDs: []*os.File{open("c", "later on the connection")}}); status != 400 || !strings.Contains(body, "first request only") {
		t.Errorf("a descriptor on a later request: %d %s, want 400", status, body)
	}
	// A new connection, as clients passing files make: stored.
	if status, body := api.NewRawUnixRequester(c)(ctx, "PUT", path, []*os.File{open("d", "from its own connection")}); status != 201 {
		t.Fatalf("a new connection: %d %s", status, body)
	}
	if got := MustReadDatastoreFile(t, s.Client, "kept.txt"); string(got) != "from its own connection" {
		t.Errorf("stored %q, want the file of the request that passed it", got)
	}
}
