package mlflow_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/atelier-ml/atelier"
)

const proxy = "/api/2.0/mlflow-artifacts/artifacts"

// rawDo sends a request with auth and returns the response with its body read.
func rawDo(tb testing.TB, s *Stack, method, path, body, auth string, header map[string]string) (*http.Response, string) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, s.URL+path, rd)
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Authorization", auth)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	return resp, string(b)
}

func listProxy(tb testing.TB, s *Stack, p string) string {
	tb.Helper()
	return fmt.Sprint(s.MustOK(tb, "GET", proxy+"?path="+url.QueryEscape(p), "")["files"])
}

// Paths outside <experiment>/<run>/artifacts (what MLflow's artifact repositories and helpers
// write anywhere under mlflow-artifacts:/) upload, download with a content type by extension,
// list in MLflow's shape and delete, as files of the workspace's default datastore.
func TestArtifactsOutsideARun(t *testing.T) {
	s := MustStack(t)
	admin := "Bearer " + s.Token
	// MLflow's client sends its own guess of the type (text/plain for JSON).
	if resp, body := rawDo(t, s, "PUT", proxy+"/shared/dir/table.json", `{"a": 1}`, admin, map[string]string{"Content-Type": "text/plain"}); resp.StatusCode != 200 {
		t.Fatalf("upload: %d %s", resp.StatusCode, body)
	}
	s.MustOK(t, "PUT", proxy+"/shared/dir/sub/notes.txt", "hello")
	s.MustOK(t, "PUT", proxy+"/shared/dir/MLmodel", "flavors: {}\n")
	// An experiment id with a path that is not a run's artifacts is a free path too.
	s.MustOK(t, "PUT", proxy+"/0/not-a-run/x.bin", "xyz")

	for _, tc := range []struct{ path, body, ctype string }{
		{"/shared/dir/table.json", `{"a": 1}`, "application/json"},
		{"/shared/dir/sub/notes.txt", "hello", "text/plain"},
		{"/shared/dir/MLmodel", "flavors: {}\n", "application/octet-stream"},
		{"/0/not-a-run/x.bin", "xyz", "application/octet-stream"},
	} {
		resp, body := rawDo(t, s, "GET", proxy+tc.path, "", admin, nil)
		if resp.StatusCode != 200 || body != tc.body || !strings.HasPrefix(resp.Header.Get("Content-Type"), tc.ctype) ||
			resp.Header.Get("Content-Length") != fmt.Sprint(len(tc.body)) {
			t.Errorf("GET %s: %d %q, Content-Type %q, Content-Length %q; want %q as %s", tc.path, resp.StatusCode, body,
				resp.Header.Get("Content-Type"), resp.Header.Get("Content-Length"), tc.body, tc.ctype)
		}
	}
	if resp, body := rawDo(t, s, "HEAD", proxy+"/shared/dir/table.json", "", admin, nil); resp.StatusCode != 200 || body != "" ||
		resp.Header.Get("Content-Length") != "8" {
		t.Errorf("HEAD: %d %q, length %q", resp.StatusCode, body, resp.Header.Get("Content-Length"))
	}
	// Through the workspace's routes as well.
	if resp, body := rawDo(t, s, "GET", "/workspaces/default/mlflow"+proxy+"/shared/dir/table.json", "", admin, nil); resp.StatusCode != 200 || body != `{"a": 1}` {
		t.Errorf("GET through the workspace route: %d %q", resp.StatusCode, body)
	}

	if got := listProxy(t, s, "shared/dir"); got != "[map[file_size:12 is_dir:false path:MLmodel] map[is_dir:true path:sub] map[file_size:8 is_dir:false path:table.json]]" {
		t.Errorf("list shared/dir: %s", got)
	}
	if got := listProxy(t, s, "shared/dir/sub/"); got != "[map[file_size:5 is_dir:false path:notes.txt]]" {
		t.Errorf("list shared/dir/sub/: %s", got)
	}
	// A file, or nothing: no entries (the client asks this to tell a file from a folder).
	for _, p := range []string{"shared/dir/table.json", "nowhere"} {
		if got := listProxy(t, s, p); got != "[]" {
			t.Errorf("list %s: %s, want []", p, got)
		}
	}
	if got := listProxy(t, s, ""); got != "[map[is_dir:true path:0] map[is_dir:true path:shared]]" {
		t.Errorf("list the root: %s", got)
	}

	// Kept in the default datastore, where atelier's datastore API and CLI reach them.
	f, rc, err := s.Service.OpenDatastoreFile(authCtx(t, s), "default", atelier.DefaultDatastore, "mlflow-artifacts/shared/dir/table.json")
	if err != nil {
		t.Fatalf("the file in the datastore: %v", err)
	}
	rc.Close()
	if f.Size != 8 {
		t.Errorf("datastore file %+v", f)
	}

	MustError(t, s.Do(t, "GET", proxy+"/shared/dir/absent.txt", ""), 404, "RESOURCE_DOES_NOT_EXIST")
	// Deleting a folder deletes what it holds; deleting nothing is not an error (as mlflow server).
	s.MustOK(t, "DELETE", proxy+"/shared/dir/sub", "")
	s.MustOK(t, "DELETE", proxy+"/shared/dir/MLmodel", "")
	s.MustOK(t, "DELETE", proxy+"/shared/dir/never-was", "")
	if got := listProxy(t, s, "shared/dir"); got != "[map[file_size:8 is_dir:false path:table.json]]" {
		t.Errorf("list after deletes: %s", got)
	}
	MustError(t, s.Do(t, "GET", proxy+"/shared/dir/sub/notes.txt", ""), 404, "RESOURCE_DOES_NOT_EXIST")
}

// A Reader reads and lists the files outside runs; writing and deleting them takes a
// Contributor, as for datastore files. A run's token reads them only.
func TestArtifactsOutsideARunAuthz(t *testing.T) {
	s := MustStack(t)
	s.MustOK(t, "PUT", proxy+"/shared/a.txt", "aaa")
	reader := "Bearer " + mustUserToken(t, s, "rita", atelier.DefaultWorkspace, atelier.RoleReader)
	contributor := "Bearer " + mustUserToken(t, s, "carl", atelier.DefaultWorkspace, atelier.RoleContributor)
	run := s.MustOK(t, "POST", api+"runs/create", `{"experiment_id":"0"}`)["run"].(map[string]any)["info"].(map[string]any)
	runToken := "Bearer " + mustRunToken(t, s, str(run["run_id"]))
	outsider := "Bearer " + mustUserToken(t, s, "olga", "", "")

	for _, who := range []string{reader, runToken} {
		if r := s.DoAuth(t, "GET", proxy+"/shared/a.txt", "", who); r.Status != 200 || string(r.Body) != "aaa" {
			t.Errorf("read: %d %s", r.Status, r.Body)
		}
		if r := s.DoAuth(t, "GET", proxy+"?path=shared", "", who); r.Status != 200 || !strings.Contains(string(r.Body), "a.txt") {
			t.Errorf("list: %d %s", r.Status, r.Body)
		}
		MustError(t, s.DoAuth(t, "PUT", proxy+"/shared/b.txt", "bbb", who), 403, "PERMISSION_DENIED")
		MustError(t, s.DoAuth(t, "DELETE", proxy+"/shared/a.txt", "", who), 403, "PERMISSION_DENIED")
	}
	if r := s.DoAuth(t, "GET", proxy+"/shared/a.txt", "", outsider); r.Status != 403 && r.Status != 404 {
		t.Errorf("a user outside the workspace read it: %d %s", r.Status, r.Body)
	}
	if r := s.DoAuth(t, "PUT", proxy+"/shared/c.txt", "ccc", contributor); r.Status != 200 {
		t.Fatalf("contributor upload: %d %s", r.Status, r.Body)
	}
	if r := s.DoAuth(t, "DELETE", proxy+"/shared/a.txt", "", contributor); r.Status != 200 {
		t.Fatalf("contributor delete: %d %s", r.Status, r.Body)
	}
	if got := listProxy(t, s, "shared"); got != "[map[file_size:3 is_dir:false path:c.txt]]" {
		t.Errorf("after the refused and the allowed writes: %s", got)
	}
}

// Bad paths are a 400 that says what a path may be; nothing is written.
func TestArtifactsBadPaths(t *testing.T) {
	s := MustStack(t)
	for _, tc := range []struct{ method, path string }{
		{"PUT", proxy + "/a/../b.txt"},
		{"PUT", proxy + "/a/%2E%2E/%2E%2E/b.txt"},
		{"PUT", proxy + "/../b.txt"},
		{"PUT", proxy + "//etc/passwd"},
		{"PUT", proxy + "/a/./b.txt"},
		{"PUT", proxy + "/a//b.txt"},
		{"PUT", proxy + "/a\\b.txt"},
		{"PUT", proxy + "/"},
		{"PUT", proxy + "/a/"},
		{"GET", proxy + "/a/../../x"},
		{"GET", proxy + "/"},
		{"GET", proxy + "?path=" + url.QueryEscape("../x")},
		{"GET", proxy + "?path=" + url.QueryEscape("/etc")},
		{"DELETE", proxy + "/a/.."},
		{"DELETE", proxy + "/"},
		{"PUT", proxy + "/" + strings.Repeat("x/", 600) + "y"},
	} {
		r := s.Do(t, tc.method, tc.path, "x")
		MustError(t, r, 400, "INVALID_PARAMETER_VALUE")
		if !strings.Contains(string(r.Body), "artifact path") {
			t.Errorf("%s %s: %s does not say what is wrong with the path", tc.method, tc.path, r.Body)
		}
	}
	page, err := s.Service.ListDatastoreFiles(authCtx(t, s), "default", atelier.DefaultDatastore, atelier.DatastoreFileQuery{Recursive: true})
	if err != nil || len(page.Files) != 0 {
		t.Errorf("bad paths wrote %v (%v)", page, err)
	}
	// Run, logged model and version files keep their own rules.
	MustError(t, s.Do(t, "DELETE", proxy+"/0/"+strings.Repeat("a", 32)+"/artifacts/x", ""), 501, "NOT_IMPLEMENTED")
	MustError(t, s.Do(t, "PUT", proxy+"/registered-models/m/versions/1/files/x", "x"), 400, "INVALID_PARAMETER_VALUE")
}

// Writes outside runs are audited like every write through MLflow; reads are not.
func TestArtifactsOutsideARunAudited(t *testing.T) {
	s := MustStack(t)
	s.MustOK(t, "PUT", proxy+"/shared/a.txt", "aaa")
	s.MustOK(t, "GET", proxy+"?path=shared", "")
	s.Do(t, "GET", proxy+"/shared/a.txt", "")
	s.MustOK(t, "DELETE", proxy+"/shared/a.txt", "")
	entries, err := s.Service.ListAudit(authCtx(t, s), "", atelier.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		if strings.Contains(e.Path, "mlflow-artifacts") {
			got = append(got, fmt.Sprintf("%s %s %d", e.Method, e.Path, e.Status))
		}
	}
	if fmt.Sprint(got) != "[DELETE "+proxy+"/shared/a.txt 200 PUT "+proxy+"/shared/a.txt 200]" {
		t.Errorf("audit entries of the proxy: %q", got)
	}
}

// The files go to the workspace's default datastore, whichever it is.
func TestArtifactsOutsideARunInTheDefaultDatastore(t *testing.T) {
	s := MustStack(t)
	dir := t.TempDir()
	if _, err := s.Service.RegisterDatastore(authCtx(t, s), "default", atelier.DatastoreSpec{Name: "team", Kind: atelier.DatastoreFiles,
		Path: dir, Default: true}); err != nil {
		t.Fatal(err)
	}
	s.MustOK(t, "PUT", proxy+"/shared/a.txt", "aaa")
	b, err := os.ReadFile(filepath.Join(dir, "mlflow-artifacts", "shared", "a.txt"))
	if err != nil || string(b) != "aaa" {
		t.Fatalf("in the default datastore's folder: %q, %v", b, err)
	}
	if r := s.Do(t, "GET", proxy+"/shared/a.txt", ""); r.Status != 200 || string(r.Body) != "aaa" {
		t.Errorf("download: %d %s", r.Status, r.Body)
	}
}
