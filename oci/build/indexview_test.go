package build

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

func TestRequiresDist(t *testing.T) {
	meta := "Metadata-Version: 2.1\nName: scikit-learn\nRequires-Dist: numpy>=1.19.5\nRequires-Dist: SciPy (>=1.6.0)\n" +
		"Requires-Dist: pytest>=7; extra == \"tests\"\nRequires-Python: >=3.9\n\nRequires-Dist: not-a-header\n"
	if got := requiresDist([]byte(meta)); !slices.Equal(got, []string{"numpy", "SciPy", "pytest"}) {
		t.Fatalf("requiresDist = %q", got)
	}
}

func TestIndexViewUsable(t *testing.T) {
	v := &indexView{machine: "x86_64", pyMinor: 11}
	for file, want := range map[string]bool{
		"numpy-2.1.3-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl": true,
		"numpy-2.1.3-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl": false, // newer Python
		"numpy-2.1.3-cp310-cp310-manylinux_2_17_x86_64.whl":                      true,  // kept: pip decides
		"numpy-2.1.3-cp311-cp311-manylinux_2_17_aarch64.whl":                     false, // another machine
		"numpy-2.1.3-cp311-cp311-win_amd64.whl":                                  false,
		"numpy-2.1.3-pp310-pypy310_pp73-manylinux_2_17_x86_64.whl":               false, // PyPy
		"numpy-2.1.3.tar.gz":                                      false, // binary wheels only
		"joblib-1.4.2-py3-none-any.whl":                           true,
		"six-1.16.0-py2.py3-none-any.whl":                         true,
		"old-1.0-py2-none-any.whl":                                false,
		"cryptography-43.0.1-cp39-abi3-manylinux_2_28_x86_64.whl": true,
		"torch-2.5.1-1-cp311-cp311-manylinux1_x86_64.whl":         true, // a build tag
	} {
		if got := v.usable(file); got != want {
			t.Errorf("usable(%s) = %v, want %v", file, got, want)
		}
	}
}

// fakeIndex is a PEP 691 index of a few projects; its wheel files have no .metadata documents
// unless listed in withMetadata. It counts the wheel downloads by user agent.
type fakeIndex struct {
	srv          *httptest.Server
	wheels       map[string][]byte // file name →
	withMetadata map[string]bool
	mu           sync.Mutex
	pipWheels    []string // wheels pip downloaded
	pages        []string
}

func newFakeIndex(t *testing.T) *fakeIndex {
	t.Helper()
	meta := func(name, version, requires string) []zfile {
		m := "Metadata-Version: 2.1\nName: " + name + "\nVersion: " + version + "\n"
		if requires != "" {
			m += "Requires-Dist: " + requires + "\n"
		}
		return []zfile{
			{name: name + "/__init__.py", content: "V = " + fmt.Sprintf("%q", version) + "\n"},
			{name: name + "-" + version + ".dist-info/METADATA", content: m},
			{name: name + "-" + version + ".dist-info/WHEEL", content: "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n"},
			{name: name + "-" + version + ".dist-info/RECORD", content: ""},
		}
	}
	fi := &fakeIndex{wheels: map[string][]byte{
		"demo-1.0-py3-none-any.whl": zipBytes(t, meta("demo", "1.0", "dep>=2")),
		"dep-2.0-py3-none-any.whl":  zipBytes(t, meta("dep", "2.0", "")),
	}, withMetadata: map[string]bool{"demo-1.0-py3-none-any.whl": true}}
	sum := func(file string) string { s := sha256.Sum256(fi.wheels[file]); return hex.EncodeToString(s[:]) }
	fi.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasPrefix(r.URL.Path, "/simple/"):
			project := strings.Trim(strings.TrimPrefix(r.URL.Path, "/simple/"), "/")
			fi.mu.Lock()
			fi.pages = append(fi.pages, project)
			fi.mu.Unlock()
			var files []map[string]any
			for file := range fi.wheels {
				if strings.HasPrefix(file, project+"-") {
					files = append(files, map[string]any{"filename": file, "url": "../../files/" + file, "hashes": map[string]string{"sha256": sum(file)}})
				}
			}
			if len(files) == 0 {
				http.NotFound(w, r)
				return
			}
			// What pip could not use: other platforms, an sdist, a newer Python.
			for _, other := range []string{project + "-1.0-cp311-cp311-win_amd64.whl", project + "-1.0.tar.gz", project + "-3.0-cp313-cp313-manylinux_2_17_x86_64.whl"} {
				files = append(files, map[string]any{"filename": other, "url": "../../files/" + other, "hashes": map[string]string{"sha256": strings.Repeat("0", 64)}})
			}
			w.Header().Set("Content-Type", "application/vnd.pypi.simple.v1+json")
			json.NewEncoder(w).Encode(map[string]any{"meta": map[string]string{"api-version": "1.0"}, "name": project, "files": files})
		case strings.HasPrefix(r.URL.Path, "/files/"):
			file := strings.TrimPrefix(r.URL.Path, "/files/")
			if base, ok := strings.CutSuffix(file, ".metadata"); ok {
				if !fi.withMetadata[base] {
					http.NotFound(w, r)
					return
				}
				zr := mustZip(t, fi.wheels[base])
				for _, f := range zr {
					if strings.HasSuffix(f.name, ".dist-info/METADATA") {
						io.WriteString(w, f.content)
					}
				}
				return
			}
			data, ok := fi.wheels[file]
			if !ok {
				http.NotFound(w, r)
				return
			}
			if strings.Contains(r.Header.Get("User-Agent"), "pip/") {
				fi.mu.Lock()
				fi.pipWheels = append(fi.pipWheels, file)
				fi.mu.Unlock()
			}
			w.Write(data)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(fi.srv.Close)
	return fi
}

func mustZip(t *testing.T, data []byte) []zfile {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	var out []zfile
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		out = append(out, zfile{name: f.Name, content: string(b)})
	}
	return out
}

func newViewBuilder(t *testing.T, index string) (*builder, *prefetcher, *bytes.Buffer) {
	t.Helper()
	var log bytes.Buffer
	dir := t.TempDir()
	b := &builder{cache: &cache{dir: filepath.Join(dir, "cache")}, log: &syncWriter{w: &log},
		spec: Spec{PipArgs: []string{"--index-url", index}, HostPython: "python3", ToolsDir: filepath.Join(dir, "tools"),
			Platform: v1.Platform{OS: "linux", Architecture: "amd64"}}}
	if err := os.MkdirAll(b.cache.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	pre := &prefetcher{b: b, ctx: ctx, index: pipIndex(b.spec.PipArgs), python: "/usr/bin/python3", fetches: make(chan struct{}, 2), cpu: make(chan struct{}, 2),
		projects: map[string]bool{}, byFile: map[string]*prefetched{}, pipSlot: make(chan struct{}, 1), resolved: make(chan struct{})}
	t.Cleanup(func() { pre.stop(cancel) })
	return b, pre, &log
}

// mustView starts an index view for the image's Python 3.11, closed when the test ends.
func mustView(t *testing.T, b *builder, pre *prefetcher) *indexView {
	t.Helper()
	v, err := b.startIndexView(t.Context(), pre, "3.11")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.close)
	return v
}

// TestIndexViewPage: the view's page of a project lists only the wheels the image could use,
// each pointing back at the view with its metadata announced; an index's HTML page is passed on
// with a <base> at the index; a missing project is a 404.
func TestIndexViewPage(t *testing.T) {
	fi := newFakeIndex(t)
	b, pre, _ := newViewBuilder(t, fi.srv.URL+"/simple/")
	v := mustView(t, b, pre)
	if got := v.args(); !slices.Equal(got, []string{"--index-url", v.root + "/0/"}) {
		t.Fatalf("pip's arguments %q", got)
	}
	req, _ := http.NewRequest("GET", v.root+"/0/demo/", nil)
	req.Header.Set("Accept", "application/vnd.pypi.simple.v1+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var page struct {
		Files []map[string]any `json:"files"`
	}
	json.NewDecoder(resp.Body).Decode(&page)
	resp.Body.Close()
	if len(page.Files) != 1 || page.Files[0]["filename"] != "demo-1.0-py3-none-any.whl" || page.Files[0]["core-metadata"] != true ||
		!strings.HasPrefix(page.Files[0]["url"].(string), v.root+"/0/f/") {
		t.Fatalf("the view's page: %v", page.Files)
	}
	if got := v.upstream(page.Files[0]["url"].(string)); got != fi.srv.URL+"/files/demo-1.0-py3-none-any.whl" {
		t.Fatalf("upstream of %s = %s", page.Files[0]["url"], got)
	}
	// Asking for a wheel's metadata starts its prefetch; the metadata comes from the index's
	// .metadata document, or from the wheel when the index has none.
	for _, project := range []string{"demo", "dep"} {
		resp, err := http.Get(v.root + "/0/" + project + "/")
		if err != nil {
			t.Fatal(err)
		}
		json.NewDecoder(resp.Body).Decode(&page)
		resp.Body.Close()
		file := page.Files[0]["filename"].(string)
		resp, err = http.Get(page.Files[0]["url"].(string) + ".metadata")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), "Name: "+project+"\n") {
			t.Fatalf("%s's metadata: %s %s", project, resp.Status, body)
		}
		pre.mu.Lock()
		pf := pre.byFile[file]
		pre.mu.Unlock()
		if pf == nil {
			t.Fatalf("%s: no prefetch started by its metadata", file)
		}
		if project == "demo" {
			// demo requires dep: its page is fetched before pip asks for it.
			v.mu.Lock()
			warmed := v.pages["0/dep"] != nil
			v.mu.Unlock()
			if !warmed {
				t.Fatal("the page of a dependency named by the metadata was not warmed")
			}
		}
	}
	if resp, err := http.Get(v.root + "/0/f/" + strings.Repeat("1", 64) + "/x-1.0-py3-none-any.whl.metadata"); err != nil || resp.StatusCode != 404 {
		t.Fatalf("metadata of a wheel the view did not list: %v %v", resp.Status, err)
	}
	if resp, err := http.Get(v.root + "/0/nothing/"); err != nil || resp.StatusCode != 404 {
		t.Fatalf("a project the index does not have: %v %v", resp.Status, err)
	}
	// An HTML index: passed on, relative links resolved against it.
	html := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		io.WriteString(w, `<a href="../../files/demo-1.0-py3-none-any.whl">demo-1.0-py3-none-any.whl</a>`)
	}))
	defer html.Close()
	hb, hpre, _ := newViewBuilder(t, html.URL+"/simple")
	hv := mustView(t, hb, hpre)
	resp, err = http.Get(hv.root + "/0/demo/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.HasPrefix(string(body), `<base href="`+html.URL+`/simple/demo/">`) || !strings.Contains(string(body), `../../files/demo`) {
		t.Fatalf("the HTML page: %s", body)
	}
}

// TestIndexViewResolve: the real pip resolves through the view: the wheels it chooses are named
// by their index URLs, both were prefetched as soon as pip asked for their metadata (one from
// the index's .metadata document, one read from the wheel), and pip fetched no page but
// through the view.
func TestIndexViewResolve(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("no python3")
	}
	fi := newFakeIndex(t)
	b, pre, log := newViewBuilder(t, fi.srv.URL+"/simple/")
	req := filepath.Join(t.TempDir(), "requirements.txt")
	os.WriteFile(req, []byte("demo==1.0\n"), 0o644)
	refs, err := b.resolve(context.Background(), []byte("demo==1.0\n"), req, "3.11", pipPlatforms("amd64"), pre)
	if err != nil {
		t.Fatalf("%v\n%s", err, log)
	}
	if len(refs) != 2 || refs[0].Name != "demo" || refs[1].Name != "dep" ||
		refs[0].URL != fi.srv.URL+"/files/demo-1.0-py3-none-any.whl" || refs[1].URL != fi.srv.URL+"/files/dep-2.0-py3-none-any.whl" {
		t.Fatalf("refs %+v\n%s", refs, log)
	}
	for _, w := range refs {
		if l, _, ok := pre.take(w); !ok || l == nil {
			t.Errorf("%s was not prefetched:\n%s", w.file(), log)
		}
	}
	if !strings.Contains(log.String(), "through the builder's view") {
		t.Errorf("the log does not say pip read the view:\n%s", log)
	}
	// The fake index has no pip wheel: the host's pip resolved, and the log says why.
	if !strings.Contains(log.String(), "resolving with the host's pip") {
		t.Errorf("the log does not say which pip resolved:\n%s", log)
	}
}

// TestBuilderPip: with the package index of this machine (PyPI, or PIP_INDEX_URL), the builder
// installs its own pip once and resolves with it through the view; the next build's resolve
// reuses it.
func TestBuilderPip(t *testing.T) {
	index := pipIndex(nil)
	resp, err := http.Get(index + "/pip/")
	if err != nil || resp.StatusCode != 200 {
		t.Skipf("no package index reachable at %s: %v", index, err)
	}
	resp.Body.Close()
	b, pre, log := newViewBuilder(t, index)
	b.spec.PipArgs = nil
	if b.client, err = b.wheelClient(); err != nil {
		t.Fatal(err)
	}
	req := filepath.Join(t.TempDir(), "requirements.txt")
	// Not pinned: pip resolves it.
	os.WriteFile(req, []byte("threadpoolctl>=3.5,<3.6\n"), 0o644)
	for i := range 2 {
		log.Reset()
		b.cache.dir = filepath.Join(t.TempDir(), "cache") // nothing resolved before
		os.MkdirAll(b.cache.dir, 0o755)
		refs, err := b.resolve(context.Background(), []byte("threadpoolctl>=3.5,<3.6\n"), req, "3.11", pipPlatforms("amd64"), pre)
		if err != nil {
			t.Fatalf("%v\n%s", err, log)
		}
		if len(refs) != 1 || refs[0].Name != "threadpoolctl" || refs[0].Version != "3.5.0" || strings.HasPrefix(refs[0].URL, "http://127.0.0.1") {
			t.Fatalf("refs %+v\n%s", refs, log)
		}
		installed := strings.Contains(log.String(), "the builder's pip "+builderPip+" installed")
		if installed != (i == 0) || strings.Contains(log.String(), "resolving with the host's pip") {
			t.Fatalf("resolve %d: the builder's pip installed %v:\n%s", i, installed, log)
		}
	}
	if _, err := os.Stat(filepath.Join(b.spec.ToolsDir, "pip-"+builderPip, "pip", "__pycache__")); err != nil {
		t.Errorf("the builder's pip is not byte-compiled: %v", err)
	}
}
