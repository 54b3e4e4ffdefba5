package api_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/api"
	"github.com/atelier-ml/atelier/datastore/datastoretest"
	"golang.org/x/crypto/bcrypt"
)

// secretValue is a credential that must never come back: not in a response, not in the
// database file.
const secretValue = "s3cr3t-Do-Not-Leak-4711"

func s3Spec(name, endpoint string) atelier.DatastoreSpec {
	return atelier.DatastoreSpec{Name: name, Kind: atelier.DatastoreS3, Endpoint: endpoint, Bucket: "lake", PathStyle: true,
		AccessKey: "AKIDEXAMPLE", SecretKey: secretValue}
}

func TestDatastoreRegistry(t *testing.T) {
	s := MustStack(t)
	c, ctx := s.Client, Ctx(t)

	// Every workspace has its built-in default.
	list, err := c.ListDatastores(ctx, "default")
	if err != nil || len(list) != 1 || list[0].Name != "default" || !list[0].IsDefault || list[0].Kind != "files" || list[0].Path != "" {
		t.Fatalf("ListDatastores on a fresh server = %+v, %v", list, err)
	}

	d, err := c.RegisterDatastore(ctx, "default", s3Spec("lake", "http://127.0.0.1:1"))
	if err != nil {
		t.Fatal(err)
	}
	if d.IsDefault || d.Bucket != "lake" || d.CreatedBy != "admin" || strings.Join(d.Credentials, ",") != "access_key,secret_key" {
		t.Errorf("RegisterDatastore = %+v", d)
	}
	if _, err := c.RegisterDatastore(ctx, "default", s3Spec("lake", "")); atelier.ErrorCode(err) != atelier.ECONFLICT {
		t.Errorf("registering twice: %v, want ECONFLICT", err)
	}

	// No response holds the secret.
	for _, path := range []string{"/api/v1/workspaces/default/datastores", "/api/v1/workspaces/default/datastores/lake"} {
		resp := s.MustDo(t, Request{Method: "GET", Path: path})
		if resp.Status != 200 || bytes.Contains(resp.Body, []byte(secretValue)) || bytes.Contains(resp.Body, []byte("AKIDEXAMPLE")) {
			t.Errorf("GET %s: %d %s", path, resp.Status, resp.Body)
		}
	}
	resp := s.MustDo(t, Request{Method: "PATCH", Path: "/api/v1/workspaces/default/datastores/lake",
		Body: `{"access_key": "AKIDOTHER", "secret_key": "` + secretValue + `2"}`})
	if resp.Status != 200 || bytes.Contains(resp.Body, []byte(secretValue)) {
		t.Errorf("PATCH: %d %s", resp.Status, resp.Body)
	}

	// Exactly one default; the default needs force; the built-in one stays.
	if d, err := c.SetDefaultDatastore(ctx, "default", "lake"); err != nil || !d.IsDefault {
		t.Fatalf("SetDefaultDatastore = %+v, %v", d, err)
	}
	list, _ = c.ListDatastores(ctx, "default")
	if len(list) != 2 || list[0].IsDefault || !list[1].IsDefault {
		t.Errorf("after set-default: %+v", list)
	}
	if err := c.DeleteDatastore(ctx, "default", "lake", false); atelier.ErrorCode(err) != atelier.ECONFLICT {
		t.Errorf("deleting the default without force: %v", err)
	}
	if err := c.DeleteDatastore(ctx, "default", "default", true); atelier.ErrorCode(err) != atelier.ECONFLICT {
		t.Errorf("deleting the built-in datastore: %v", err)
	}
	if err := c.DeleteDatastore(ctx, "default", "lake", true); err != nil {
		t.Fatal(err)
	}
	if d, err := c.FindDatastore(ctx, "default", "default"); err != nil || !d.IsDefault {
		t.Errorf("after deleting the default, the built-in one = %+v, %v", d, err)
	}

	// At rest the secrets are sealed: neither the database nor its WAL holds them.
	if _, err := c.RegisterDatastore(ctx, "default", s3Spec("kept", "")); err != nil {
		t.Fatal(err)
	}
	if err := s.DB.Close(); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"atelier.db", "atelier.db-wal"} {
		data, err := os.ReadFile(filepath.Join(s.Dir, name))
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		if bytes.Contains(data, []byte(secretValue)) {
			t.Errorf("%s holds a datastore secret in clear", name)
		}
	}
}

func TestDatastoreFiles(t *testing.T) {
	s := MustStack(t)
	c, ctx := s.Client, Ctx(t)
	content := datastoretest.Content(3, 3<<20)
	f, err := c.WriteDatastoreFile(ctx, "default", "default", "data/train.bin", bytes.NewReader(content), datastoretest.Sum(content), "")
	if err != nil {
		t.Fatal(err)
	}
	if f.Size != int64(len(content)) || f.SHA256 != datastoretest.Sum(content) {
		t.Errorf("upload = %+v", f)
	}
	// The built-in datastore is a plain folder of the data directory.
	if onDisk, err := os.ReadFile(filepath.Join(s.Dir, "datastores", "default", "data", "train.bin")); err != nil || !bytes.Equal(onDisk, content) {
		t.Errorf("the file on disk: %d bytes, %v", len(onDisk), err)
	}
	got, rc, err := c.OpenDatastoreFile(ctx, "default", "default", "data/train.bin")
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(data, content) || got.Size != int64(len(content)) || got.ModifiedAt.IsZero() {
		t.Errorf("download: %d bytes, %+v", len(data), got)
	}
	for _, p := range []string{"data/a.csv", "data/sub/b.csv", "top.txt"} {
		if _, err := c.WriteDatastoreFile(ctx, "default", "default", p, strings.NewReader(p), "", "text/csv"); err != nil {
			t.Fatal(err)
		}
	}
	page, err := c.ListDatastoreFiles(ctx, "default", "default", atelier.DatastoreFileQuery{Prefix: "data/"})
	if err != nil || len(page.Files) != 3 || !page.Files[1].Dir || page.Files[1].Path != "data/sub/" {
		t.Errorf("list data/ = %+v, %v", page, err)
	}
	// Digests, for a client to skip unchanged files: computed by the server for a files
	// datastore, in the order asked, missing files left out.
	digests, err := c.DatastoreFileDigests(ctx, "default", "default", []string{"data/a.csv", "data/none.csv", "data/train.bin"})
	if err != nil || len(digests) != 2 || digests[0].Path != "data/a.csv" || digests[0].SHA256 != datastoretest.Sum([]byte("data/a.csv")) ||
		digests[1].Path != "data/train.bin" || digests[1].SHA256 != datastoretest.Sum(content) || digests[1].Size != int64(len(content)) {
		t.Errorf("digests = %+v, %v", digests, err)
	}

	// A wrong checksum stores nothing.
	_, err = c.WriteDatastoreFile(ctx, "default", "default", "data/bad.bin", strings.NewReader("abc"), datastoretest.Sum([]byte("xyz")), "")
	if atelier.ErrorCode(err) != atelier.EINVALID || !strings.Contains(atelier.ErrorMessage(err), "nothing was stored") {
		t.Errorf("upload with a wrong sha256: %v", err)
	}
	if _, _, err := c.OpenDatastoreFile(ctx, "default", "default", "data/bad.bin"); atelier.ErrorCode(err) != atelier.ENOTFOUND {
		t.Errorf("the refused upload is readable: %v", err)
	}

	// Delete one file, then a folder.
	if n, err := c.DeleteDatastoreFiles(ctx, "default", "default", "top.txt", false); err != nil || n != 1 {
		t.Errorf("delete top.txt = %d, %v", n, err)
	}
	if n, err := c.DeleteDatastoreFiles(ctx, "default", "default", "data", true); err != nil || n != 3 {
		t.Errorf("delete data -r = %d, %v", n, err)
	}
	page, err = c.ListDatastoreFiles(ctx, "default", "default", atelier.DatastoreFileQuery{Recursive: true})
	if err != nil || len(page.Files) != 0 {
		t.Errorf("after deletes: %+v, %v", page, err)
	}
	if _, err := c.DeleteDatastoreFiles(ctx, "default", "default", "data", true); atelier.ErrorCode(err) != atelier.ENOTFOUND {
		t.Errorf("deleting a missing folder: %v", err)
	}
}

// TestDatastoreMisconfigured: a user's misconfiguration is a 4xx (or a 503 for an endpoint
// that does not answer) naming the datastore, never a 500.
func TestDatastoreMisconfigured(t *testing.T) {
	s := MustStack(t)
	c, ctx := s.Client, Ctx(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String()
	ln.Close()
	if _, err := c.RegisterDatastore(ctx, "default", s3Spec("offline", closed)); err != nil {
		t.Fatal(err)
	}
	resp := s.MustDo(t, Request{Method: "GET", Path: "/api/v1/workspaces/default/datastores/offline/files"})
	MustAPIError(t, resp, http.StatusServiceUnavailable, `datastore "offline"`, "cannot be reached")

	if _, err := c.RegisterDatastore(ctx, "default", atelier.DatastoreSpec{Name: "gone", Kind: "files", Path: filepath.Join(t.TempDir(), "nope")}); err != nil {
		t.Fatal(err)
	}
	resp = s.MustDo(t, Request{Method: "GET", Path: "/api/v1/workspaces/default/datastores/gone/files"})
	MustAPIError(t, resp, http.StatusNotFound, `datastore "gone"`)

	t.Run("S3", func(t *testing.T) {
		srv := datastoretest.StartVersityGW(t)
		spec := s3Spec("wrongkey", srv.Endpoint)
		spec.AccessKey = srv.AccessKey
		if _, err := c.RegisterDatastore(ctx, "default", spec); err != nil {
			t.Fatal(err)
		}
		resp := s.MustDo(t, Request{Method: "PUT", Path: "/api/v1/workspaces/default/datastores/wrongkey/files/x.txt", Body: "x", ContentType: "text/plain"})
		MustAPIError(t, resp, http.StatusForbidden, `datastore "wrongkey"`, "credentials")
		if bytes.Contains(resp.Body, []byte(secretValue)) {
			t.Errorf("the error shows the secret: %s", resp.Body)
		}
		// Fixed credentials, but the bucket does not exist.
		if _, err := c.UpdateDatastoreCredentials(ctx, "default", "wrongkey", atelier.DatastoreCredentials{AccessKey: srv.AccessKey, SecretKey: srv.SecretKey}); err != nil {
			t.Fatal(err)
		}
		resp = s.MustDo(t, Request{Method: "PUT", Path: "/api/v1/workspaces/default/datastores/wrongkey/files/x.txt", Body: "x", ContentType: "text/plain"})
		MustAPIError(t, resp, http.StatusNotFound, `datastore "wrongkey"`, "bucket")
	})
}

func TestDatastoreBadInput(t *testing.T) {
	s := MustStack(t)
	const base = "/api/v1/workspaces/default/datastores"
	long := strings.Repeat("n", 256) // a name over the 255 bytes a file system takes
	for _, tc := range []struct {
		name   string
		req    Request
		status int
		want   []string
	}{
		{"unknown kind", Request{Method: "POST", Path: base, Body: `{"name":"x","kind":"ftp"}`}, 400, []string{"unknown datastore kind"}},
		{"bad name", Request{Method: "POST", Path: base, Body: `{"name":"bad name","kind":"s3","bucket":"b"}`}, 400, []string{"invalid datastore name"}},
		{"reserved name", Request{Method: "POST", Path: base, Body: `{"name":"default","kind":"files","path":"/tmp"}`}, 400, []string{"reserved"}},
		{"s3 without bucket", Request{Method: "POST", Path: base, Body: `{"name":"x","kind":"s3","access_key":"a","secret_key":"b"}`}, 400, []string{"bucket"}},
		{"s3 without keys", Request{Method: "POST", Path: base, Body: `{"name":"x","kind":"s3","bucket":"abc"}`}, 400, []string{"access_key and secret_key"}},
		{"field of another kind", Request{Method: "POST", Path: base, Body: `{"name":"x","kind":"s3","bucket":"abc","container":"c","access_key":"a","secret_key":"b"}`}, 400, []string{"container does not apply"}},
		{"secret of another kind", Request{Method: "POST", Path: base, Body: `{"name":"x","kind":"s3","bucket":"abc","sas":"sv=1","access_key":"a","secret_key":"b"}`}, 400, []string{"sas does not apply"}},
		{"bad endpoint", Request{Method: "POST", Path: base, Body: `{"name":"x","kind":"s3","bucket":"abc","endpoint":"ftp://h","access_key":"a","secret_key":"b"}`}, 400, []string{"invalid endpoint"}},
		{"endpoint with credentials", Request{Method: "POST", Path: base, Body: `{"name":"x","kind":"s3","bucket":"abc","endpoint":"http://u:p@h","access_key":"a","secret_key":"b"}`}, 400, []string{"invalid endpoint"}},
		{"bad prefix", Request{Method: "POST", Path: base, Body: `{"name":"x","kind":"s3","bucket":"abc","prefix":"../up","access_key":"a","secret_key":"b"}`}, 400, []string{"invalid prefix"}},
		{"azure two secrets", Request{Method: "POST", Path: base, Body: `{"name":"x","kind":"azureblob","account":"acct","container":"data","account_key":"a","sas":"sv=1"}`}, 400, []string{"exactly one"}},
		{"gcs bad json", Request{Method: "POST", Path: base, Body: `{"name":"x","kind":"gcs","bucket":"abc","credentials_json":"nope"}`}, 400, []string{"credentials_json"}},
		{"relative files path", Request{Method: "POST", Path: base, Body: `{"name":"x","kind":"files","path":"data"}`}, 400, []string{"absolute path"}},
		{"files path in the data dir", Request{Method: "POST", Path: base, Body: `{"name":"x","kind":"files","path":"` + s.Dir + `/datastores"}`}, 400, []string{"data directory"}},
		{"files path around the data dir", Request{Method: "POST", Path: base, Body: `{"name":"x","kind":"files","path":"/"}`}, 400, []string{"data directory"}},
		{"unknown field", Request{Method: "POST", Path: base, Body: `{"name":"x","kind":"files","path":"/tmp","password":"p"}`}, 400, []string{"unknown field"}},
		{"patch the built-in datastore", Request{Method: "PATCH", Path: base + "/default", Body: `{"access_key":"a"}`}, 400, []string{"built-in datastore", "the server's own storage"}},
		{"unknown datastore", Request{Method: "GET", Path: base + "/nope"}, 404, []string{`datastore "nope" not found`}},
		{"unknown workspace", Request{Method: "GET", Path: "/api/v1/workspaces/nope/datastores"}, 404, []string{"workspace"}},
		{"bad force", Request{Method: "DELETE", Path: base + "/default?force=maybe"}, 400, []string{"force"}},
		{"bad sha256", Request{Method: "PUT", Path: base + "/default/files/a.txt", Body: "x", ContentType: "text/plain", Header: map[string]string{"X-Content-Sha256": "abc"}}, 400, []string{"digest"}},
		{"backslash path", Request{Method: "PUT", Path: base + "/default/files/a%5Cb", Body: "x", ContentType: "text/plain"}, 400, []string{"invalid path"}},
		{"dot-dot path", Request{Method: "GET", Path: base + "/default/files/a/%2E%2E/b"}, 400, []string{"invalid"}},
		{"missing file", Request{Method: "GET", Path: base + "/default/files/none.txt"}, 404, []string{`datastore "default"`, "none.txt"}},
		{"bad limit", Request{Method: "GET", Path: base + "/default/files?limit=-1"}, 400, []string{"limit"}},
		{"bad token", Request{Method: "GET", Path: base + "/default/files?page_token=%21%21"}, 400, []string{"page token"}},
		{"bad prefix query", Request{Method: "GET", Path: base + "/default/files?prefix=../x"}, 400, []string{"invalid prefix"}},
		{"bad recursive", Request{Method: "DELETE", Path: base + "/default/files/x?recursive=yes-please"}, 400, []string{"recursive"}},
		{"digest of a bad path", Request{Method: "POST", Path: base + "/default/digests", Body: `{"paths":["a/../b"]}`}, 400, []string{"invalid path"}},
		{"too many digests", Request{Method: "POST", Path: base + "/default/digests", Body: `{"paths":[` + strings.Repeat(`"a",`, 1000) + `"a"]}`}, 413, []string{"at most 1000"}},
		{"digests of an unknown datastore", Request{Method: "POST", Path: base + "/nope/digests", Body: `{"paths":["a"]}`}, 404, []string{`datastore "nope" not found`}},
		{"long name GET", Request{Method: "GET", Path: base + "/default/files/d/" + long}, 400, []string{"255 bytes per path component"}},
		{"long name PUT", Request{Method: "PUT", Path: base + "/default/files/d/" + long, Body: "x", ContentType: "text/plain"}, 400, []string{"255 bytes per path component"}},
		{"long name DELETE", Request{Method: "DELETE", Path: base + "/default/files/" + long + "/f"}, 400, []string{"255 bytes per path component"}},
		{"long name DELETE recursive", Request{Method: "DELETE", Path: base + "/default/files/" + long + "?recursive=true"}, 400, []string{"255 bytes per path component"}},
		{"long name digests", Request{Method: "POST", Path: base + "/default/digests", Body: `{"paths":["ok.txt","d/` + long + `"]}`}, 400, []string{"255 bytes per path component"}},
		{"long name list", Request{Method: "GET", Path: base + "/default/files?prefix=" + long + "/"}, 400, []string{"255 bytes per path component"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			MustAPIError(t, s.MustDo(t, tc.req), tc.status, tc.want...)
		})
	}
}

// A datastore deleted and registered again under its name is used at once in its new place:
// the server keeps datastores open between requests, and forgets one it deletes.
func TestDatastoreReregistered(t *testing.T) {
	s := MustStack(t)
	c, ctx := s.Client, Ctx(t)
	for i, dir := range []string{t.TempDir(), t.TempDir()} {
		if _, err := c.RegisterDatastore(ctx, "default", atelier.DatastoreSpec{Name: "moving", Kind: atelier.DatastoreFiles, Path: dir}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.WriteDatastoreFile(ctx, "default", "moving", "f.txt", strings.NewReader("x"), "", ""); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(dir, "f.txt")); err != nil {
			t.Errorf("registration %d: the file is not in its folder: %v", i+1, err)
		}
		if err := c.DeleteDatastore(ctx, "default", "moving", false); err != nil {
			t.Fatal(err)
		}
		if _, err := c.WriteDatastoreFile(ctx, "default", "moving", "g.txt", strings.NewReader("x"), "", ""); atelier.ErrorCode(err) != atelier.ENOTFOUND {
			t.Errorf("registration %d: a write after the delete: %v, want not found", i+1, err)
		}
	}
}

// DatastoreAccess answers what a transfer would meet: a Reader may read, not write; a
// stranger does not see the workspace; a missing datastore is not found.
func TestDatastoreAccess(t *testing.T) {
	s := MustStack(t)
	s.Service.PasswordCost = bcrypt.MinCost
	ctx := Ctx(t)
	if err := s.Client.CreateWorkspace(ctx, &atelier.Workspace{Name: "team"}); err != nil {
		t.Fatal(err)
	}
	reader, _ := mustUserClient(t, s, "reader", "team", atelier.RoleReader)
	writer, _ := mustUserClient(t, s, "writer", "team", atelier.RoleContributor)
	stranger, _ := mustUserClient(t, s, "stranger", "default", atelier.RoleOwner)
	for _, tc := range []struct {
		name  string
		c     *api.Client
		ds    string
		write bool
		code  string
	}{
		{"reader reads", reader, "default", false, ""},
		{"reader writes", reader, "default", true, atelier.EFORBIDDEN},
		{"contributor writes", writer, "default", true, ""},
		{"stranger reads", stranger, "default", false, atelier.ENOTFOUND},
		{"missing datastore", writer, "nowhere", false, atelier.ENOTFOUND},
	} {
		err := tc.c.DatastoreAccess(ctx, "team", tc.ds, tc.write)
		if atelier.ErrorCode(err) != tc.code && !(tc.code == "" && err == nil) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.code)
		}
	}
}

// A link in a files datastore's folder that leads outside it (here into the server's data
// directory, made after the datastore was registered) serves nothing and takes nothing: a
// Contributor's GET, PUT, DELETE, listing and digests through it answer 4xx, over TCP and over
// the Unix socket (descriptors passed), and the data directory is left as it was.
func TestDatastoreLinkEscape(t *testing.T) {
	socket := filepath.Join(t.TempDir(), "atelier.sock")
	s := MustStack(t, WithLocalSocket(socket))
	s.Service.PasswordCost = bcrypt.MinCost
	ctx := Ctx(t)
	MustUnixClient(t, s)
	if err := s.Client.CreateWorkspace(ctx, &atelier.Workspace{Name: "team"}); err != nil {
		t.Fatal(err)
	}
	writer, token := mustUserClient(t, s, "writer", "team", atelier.RoleContributor)
	viaSocket := api.NewClient(api.UnixScheme+socket, token)
	folder := t.TempDir()
	if _, err := s.Client.RegisterDatastore(ctx, "team", atelier.DatastoreSpec{Name: "ds", Kind: atelier.DatastoreFiles, Path: folder}); err != nil {
		t.Fatal(err)
	}
	if _, err := writer.WriteDatastoreFile(ctx, "team", "ds", "kept.txt", strings.NewReader("kept"), "", ""); err != nil {
		t.Fatal(err)
	}
	adminToken, err := os.ReadFile(filepath.Join(s.Dir, "admin-token"))
	if err != nil || len(adminToken) == 0 {
		t.Fatalf("the admin token file: %q, %v", adminToken, err)
	}
	rel, err := filepath.Rel(folder, s.Dir)
	if err != nil {
		t.Fatal(err)
	}
	links := []string{"escape", "escape-rel"}
	for i, target := range []string{s.Dir, rel} {
		if err := os.Symlink(target, filepath.Join(folder, links[i])); err != nil {
			t.Fatal(err)
		}
	}
	const payload = "payload-that-must-not-land-outside"
	tok := token
	base := "/api/v1/workspaces/team/datastores/ds"
	for _, link := range links {
		for _, tc := range []struct {
			req    Request
			status int
		}{
			{Request{Method: "GET", Path: base + "/files/" + link + "/admin-token"}, 404},
			{Request{Method: "GET", Path: base + "/files/" + link + "/datastores/team/kept.txt"}, 404},
			{Request{Method: "PUT", Path: base + "/files/" + link + "/x", Body: payload, ContentType: "text/plain"}, 400},
			{Request{Method: "PUT", Path: base + "/files/" + link + "/new/x", Body: payload, ContentType: "text/plain"}, 400},
			{Request{Method: "PUT", Path: base + "/files/" + link + "/admin-token", Body: payload, ContentType: "text/plain"}, 400},
			{Request{Method: "DELETE", Path: base + "/files/" + link + "/admin-token"}, 404},
			{Request{Method: "DELETE", Path: base + "/files/" + link + "/objects?recursive=true"}, 404},
			{Request{Method: "GET", Path: base + "/files?prefix=" + link + "/"}, 404},
			{Request{Method: "GET", Path: base + "/files?recursive=true&prefix=" + link + "/"}, 404},
		} {
			tc.req.Token = &tok
			resp := s.MustDo(t, tc.req)
			if bytes.Contains(resp.Body, adminToken) {
				t.Errorf("%s %s: the answer holds the admin token", tc.req.Method, tc.req.Path)
			}
			MustAPIError(t, resp, tc.status, link, "outside the datastore's folder")
		}
		var digests api.DatastoreDigests
		resp := s.MustDo(t, Request{Method: "POST", Path: base + "/digests", Body: `{"paths":["` + link + `/admin-token"]}`, Token: &tok})
		if err := json.Unmarshal(resp.Body, &digests); resp.Status != 200 || err != nil || len(digests.Files) != 0 {
			t.Errorf("digests through %s: %d %s, want none", link, resp.Status, resp.Body)
		}

		// Over the socket, the server reads and writes the client's descriptors itself.
		dst, err := os.Create(filepath.Join(t.TempDir(), "dst"))
		if err != nil {
			t.Fatal(err)
		}
		_, err = viaSocket.DownloadDatastoreFile(ctx, "team", "ds", link+"/admin-token", dst, nil)
		MustCode(t, err, atelier.ENOTFOUND)
		if got, _ := os.ReadFile(dst.Name()); len(got) != 0 {
			t.Errorf("a download over the socket through %s wrote %q", link, got)
		}
		src := filepath.Join(t.TempDir(), "src")
		if err := os.WriteFile(src, []byte(payload), 0o644); err != nil {
			t.Fatal(err)
		}
		lf, err := api.OpenLocalFile(src, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, err = viaSocket.WriteDatastoreFile(ctx, "team", "ds", link+"/x", lf, "", "")
		lf.Close()
		MustCode(t, err, atelier.EINVALID)
		sf, _ := os.Open(src)
		_, errs, err := viaSocket.UploadPassedFiles(ctx, "team", "ds", []api.PassedTransfer{{Path: link + "/batch", File: sf}}, nil)
		sf.Close()
		if err != nil || len(errs) != 1 || atelier.ErrorCode(errs[0]) != atelier.EINVALID {
			t.Errorf("a batch upload through %s: %v, %v; want the file refused", link, errs, err)
		}
		_, errs, err = viaSocket.DownloadPassedFiles(ctx, "team", "ds", []api.PassedTransfer{{Path: link + "/admin-token", File: dst}}, nil)
		if err != nil || len(errs) != 1 || atelier.ErrorCode(errs[0]) != atelier.ENOTFOUND {
			t.Errorf("a batch download through %s: %v, %v; want the file not found", link, errs, err)
		}
		if got, _ := os.ReadFile(dst.Name()); len(got) != 0 {
			t.Errorf("a batch download over the socket through %s wrote %q", link, got)
		}
		dst.Close()
	}

	// The listing leaves the links out; what is inside is served as before.
	page, err := writer.ListDatastoreFiles(ctx, "team", "ds", atelier.DatastoreFileQuery{Recursive: true})
	if err != nil || len(page.Files) != 1 || page.Files[0].Path != "kept.txt" {
		t.Errorf("recursive listing = %+v, %v; want only kept.txt", page, err)
	}
	page, err = writer.ListDatastoreFiles(ctx, "team", "ds", atelier.DatastoreFileQuery{})
	if err != nil || len(page.Files) != 1 || page.Files[0].Path != "kept.txt" {
		t.Errorf("listing = %+v, %v; want only kept.txt", page, err)
	}
	if got, err := os.ReadFile(filepath.Join(s.Dir, "admin-token")); !bytes.Equal(got, adminToken) {
		t.Errorf("the admin token file holds %q, %v", got, err)
	}
	filepath.WalkDir(s.Dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		if data, _ := os.ReadFile(p); bytes.Contains(data, []byte(payload)) {
			t.Errorf("%s, in the data directory, holds the payload", p)
		}
		if strings.HasSuffix(p, ".tmp") {
			t.Errorf("%s was left in the data directory", p)
		}
		return nil
	})
}
