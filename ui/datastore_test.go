package ui_test

import (
	"context"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/server/servertest"
)

// TestDatastorePage: a datastore's page lists the files and folders under ?path= with
// breadcrumbs, sizes and times; folders link to their listing, files to the REST API's
// download, which a Reader's session cookie opens; large folders are paged; an unknown
// datastore, or a user outside the workspace, is the 404 page.
func TestDatastorePage(t *testing.T) {
	s := servertest.New(t, servertest.WithoutScheduler())
	ctx := context.Background()
	c := s.Client
	files := map[string]string{
		"readme.txt":            "hello",
		"data/x.bin":            "\x00\x01\x02",
		"data/train/a.csv":      "a,b\n1,2\n",
		"data/train/part 1.csv": "c,d\n3,4\n",
	}
	for p, body := range files {
		if _, err := c.WriteDatastoreFile(ctx, "default", "default", p, strings.NewReader(body), "", ""); err != nil {
			t.Fatal(err)
		}
	}
	for _, u := range []struct {
		name string
		role atelier.Role
	}{{"rita", atelier.RoleReader}, {"oscar", ""}} {
		if err := c.CreateUser(ctx, &atelier.User{Name: u.name}, password); err != nil {
			t.Fatal(err)
		}
		if u.role != "" {
			if _, err := c.ShareWorkspace(ctx, "default", u.name, u.role); err != nil {
				t.Fatal(err)
			}
		}
	}
	login := func(user string) *http.Cookie {
		resp, err := http.Post(s.URL+"/api/v1/login", "application/json", strings.NewReader(`{"user":"`+user+`","password":"`+password+`"}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		for _, ck := range resp.Cookies() {
			if ck.Name == "atelier_session" {
				return ck
			}
		}
		t.Fatalf("logging in as %s: %d, no session cookie", user, resp.StatusCode)
		return nil
	}
	rita, oscar := login("rita"), login("oscar")
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(ck *http.Cookie, path string) (int, string, http.Header) {
		t.Helper()
		req, _ := http.NewRequest("GET", s.URL+path, nil)
		req.AddCookie(ck)
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Header
	}
	page := func(path string, want ...string) string {
		t.Helper()
		code, body, _ := get(rita, path)
		if code != 200 {
			t.Fatalf("%s: %d\n%s", path, code, body)
		}
		for _, w := range want {
			if !strings.Contains(body, w) {
				t.Errorf("%s lacks %q", path, w)
			}
		}
		return body
	}
	const dl = `/api/v1/workspaces/default/datastores/default/files/`
	page("/w/default/datastores", `href="/w/default/datastores/default"`)
	top := page("/w/default/datastores/default",
		`<a href="/w/default/datastores/default">default</a></nav>`, // breadcrumbs: only the datastore
		`<a href="?path=data%2f" class="folder">data/</a>`,
		`<td>readme.txt</td><td class="num">5 B</td>`,
		`href="`+dl+`readme.txt" download`)
	if !regexp.MustCompile(`title="\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ"`).MatchString(top) {
		t.Error("the top folder shows no modification time")
	}
	if strings.Contains(top, "x.bin") || strings.Contains(top, "a.csv") {
		t.Error("the top folder lists the files of its sub-folders")
	}
	data := page("/w/default/datastores/default?path=data/",
		`<a href="/w/default/datastores/default">default</a> / <a href="?path=data%2f">data</a></nav>`,
		`<a href="?path=data%2ftrain%2f" class="folder">train/</a>`,
		`<td>x.bin</td><td class="num">3 B</td>`, `href="`+dl+`data/x.bin"`)
	if strings.Contains(data, "readme.txt") {
		t.Error("data/ lists the top folder's files")
	}
	// Without the trailing slash, the same folder.
	page("/w/default/datastores/default?path=data/train",
		`/ <a href="?path=data%2f">data</a> / <a href="?path=data%2ftrain%2f">train</a></nav>`,
		`<td>a.csv</td>`, `<td>part 1.csv</td>`, `href="`+dl+`data/train/part%201.csv"`)

	// The download link is the REST API's, opened with the Reader's session cookie.
	for p, body := range files {
		code, got, h := get(rita, dl+strings.ReplaceAll(p, " ", "%20"))
		if code != 200 || got != body {
			t.Fatalf("downloading %s: %d %q, want 200 %q", p, code, got, body)
		}
		if p == "readme.txt" && !strings.HasPrefix(h.Get("Content-Type"), "text/plain") {
			t.Errorf("readme.txt's content type: %q", h.Get("Content-Type"))
		}
	}

	// A page at a time: the next page's link lists the rest, and leads back to the first.
	first := page("/w/default/datastores/default?path=data/train/&limit=1", `<td>a.csv</td>`, `rel="next"`)
	if strings.Contains(first, "part 1.csv") {
		t.Fatal("limit=1 listed both files")
	}
	m := regexp.MustCompile(`<a href="([^"]+)" rel="next"`).FindStringSubmatch(first)
	next := strings.ReplaceAll(m[1], "&amp;", "&")
	second := page("/w/default/datastores/default"+next, `<td>part 1.csv</td>`, `First page`)
	if strings.Contains(second, "<td>a.csv</td>") {
		t.Fatal("the second page lists the first's file")
	}

	for _, tc := range []struct {
		ck   *http.Cookie
		path string
		code int
	}{
		{rita, "/w/default/datastores/nosuch", 404},
		{rita, "/w/default/datastores/default?limit=0", 400},
		{rita, "/w/default/datastores/default?path=../etc/", 400},
		{oscar, "/w/default/datastores/default", 404},
		{oscar, dl + "readme.txt", 404},
	} {
		code, body, _ := get(tc.ck, tc.path)
		if code != tc.code {
			t.Errorf("%s: %d, want %d\n%s", tc.path, code, tc.code, body)
		}
		if tc.code == 404 && !strings.HasPrefix(tc.path, "/api/") && !strings.Contains(body, "Not found") {
			t.Errorf("%s: not the studio's 404 page:\n%s", tc.path, body)
		}
	}
}
