package registry_test

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/oci/registry"
)

// testAuth is the tests' Authorizer: users with passwords, and the actions each may do on the
// repositories under a prefix. Repositories a user may do nothing with are hidden (404).
type testAuth struct {
	mu        sync.Mutex
	users     map[string]string                       // name → password
	grants    map[string]map[string][]registry.Action // user → repository prefix → actions
	anonymous map[string][]registry.Action            // repository prefix → actions without credentials
	calls     int
}

func newTestAuth() *testAuth {
	return &testAuth{users: map[string]string{}, grants: map[string]map[string][]registry.Action{}, anonymous: map[string][]registry.Action{}}
}

// grant adds a user (with its password) allowed actions on the repositories under prefix.
func (a *testAuth) grant(user, password, prefix string, actions ...registry.Action) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.users[user] = password
	if a.grants[user] == nil {
		a.grants[user] = map[string][]registry.Action{}
	}
	a.grants[user][prefix] = append(a.grants[user][prefix], actions...)
}

func (a *testAuth) Authorize(r *http.Request, repo string, action registry.Action) (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.calls++
	user, ok := registry.TokenPrincipal(r.Context())
	var grants map[string][]registry.Action
	switch {
	case ok && user == "":
		grants = a.anonymous
	case ok:
		grants = a.grants[user]
	default:
		u, p, hasBasic := r.BasicAuth()
		if !hasBasic {
			if len(a.anonymous) == 0 {
				return "", atelier.Errorf(atelier.EUNAUTHORIZED, "authentication required")
			}
			grants = a.anonymous
			break
		}
		if pw, known := a.users[u]; !known || pw != p {
			return "", atelier.Errorf(atelier.EUNAUTHORIZED, "invalid user name or password")
		}
		user, grants = u, a.grants[u]
	}
	if repo == "" {
		return user, nil
	}
	visible := false
	for prefix, actions := range grants {
		if strings.HasPrefix(repo, prefix) {
			visible = true
			if slices.Contains(actions, action) {
				return user, nil
			}
		}
	}
	if !visible {
		return "", atelier.Errorf(atelier.ENOTFOUND, "repository %s not found", repo)
	}
	return "", atelier.Errorf(atelier.EFORBIDDEN, "%s may not %s %s", user, action, repo)
}

// clock is a settable clock for the tests of garbage collection.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// testRegistry is a registry on disk served on 127.0.0.1.
type testRegistry struct {
	*registry.Registry
	URL   string
	Host  string
	Blobs registry.BlobStore
	Meta  registry.Metadata
	Auth  *testAuth
	Dir   string
}

// MustServe starts a registry over stores in a temporary directory; configure may adjust its
// options. The default user "ana" (password "secret") may do everything under "ws/".
func MustServe(tb testing.TB, configure ...func(*registry.Options)) *testRegistry {
	tb.Helper()
	dir := tb.TempDir()
	o := registry.Options{Authorizer: newTestAuth()}
	for _, c := range configure {
		c(&o)
	}
	// Disk stores unless configure gave others.
	var blobs *registry.DiskBlobs
	var meta *registry.DiskMetadata
	var err error
	if o.Blobs == nil {
		if blobs, err = registry.OpenDiskBlobs(dir+"/blobs", o.Now); err != nil {
			tb.Fatal(err)
		}
		o.Blobs = blobs
	}
	if o.Metadata == nil {
		if meta, err = registry.OpenDiskMetadata(dir + "/meta"); err != nil {
			tb.Fatal(err)
		}
		o.Metadata = meta
	}
	auth, _ := o.Authorizer.(*testAuth)
	if auth != nil {
		auth.grant("ana", "secret", "ws/", registry.Pull, registry.Push, registry.Delete)
	}
	reg, err := registry.New(o)
	if err != nil {
		tb.Fatal(err)
	}
	srv := httptest.NewServer(reg)
	tb.Cleanup(srv.Close)
	_, _ = blobs, meta
	return &testRegistry{Registry: reg, URL: srv.URL, Host: strings.TrimPrefix(srv.URL, "http://"), Blobs: o.Blobs, Meta: o.Metadata, Auth: auth, Dir: dir}
}

// serve serves h on 127.0.0.1 until the test ends and returns its URL.
func serve(tb testing.TB, h http.Handler) string {
	srv := httptest.NewServer(h)
	tb.Cleanup(srv.Close)
	return srv.URL
}

// rawRequest writes req on a new connection, closes the writing side and returns what the
// server answered ("" if it closed the connection without answering).
func rawRequest(tb testing.TB, host, req string) string {
	tb.Helper()
	conn, err := net.Dial("tcp", host)
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, req); err != nil {
		tb.Fatal(err)
	}
	conn.(*net.TCPConn).CloseWrite()
	conn.SetReadDeadline(time.Now().Add(time.Minute))
	b, _ := io.ReadAll(conn)
	return string(b)
}

// serverStores makes MustServe use the server's stores (blobs in an artifact store folder,
// metadata in SQLite), stamped by the options' clock; give it last.
func serverStores(t *testing.T) func(*registry.Options) {
	return func(o *registry.Options) {
		dir := t.TempDir()
		o.Blobs = registry.NewBucketBlobs(openFileBucket(t, dir), dir, o.Now)
		o.Metadata = sqliteMetadata(t)
	}
}

// eachStores runs test over the disk stores and over the server's.
func eachStores(t *testing.T, test func(t *testing.T, stores func(*registry.Options))) {
	t.Run("Disk", func(t *testing.T) { test(t, func(*registry.Options) {}) })
	t.Run("ArtifactFolderAndSQLite", func(t *testing.T) { test(t, serverStores(t)) })
}
