package build

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/csv"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/atelier-ml/atelier"
)

type zfile struct {
	name, content string
	mode          fs.FileMode
}

func zipBytes(tb testing.TB, files []zfile) []byte {
	tb.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, f := range files {
		h := &zip.FileHeader{Name: f.name, Method: zip.Deflate}
		if f.mode != 0 {
			h.SetMode(f.mode)
		}
		w, err := zw.CreateHeader(h)
		if err != nil {
			tb.Fatal(err)
		}
		io.WriteString(w, f.content)
	}
	if err := zw.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

func zipReader(tb testing.TB, data []byte) *zip.Reader {
	tb.Helper()
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		tb.Fatal(err)
	}
	return zr
}

// layerOf plans the wheel and returns its tar's members: name → header and content.
func layerOf(tb testing.TB, files []zfile, requested bool) (map[string]*tar.Header, map[string]string, error) {
	tb.Helper()
	zr := zipReader(tb, zipBytes(tb, files))
	lf, _, err := planWheel(zr, wheelRef{Name: "demo", Version: "1.0", URL: "file:///w/demo-1.0-py3-none-any.whl", Requested: requested}, "/usr/bin/python3")
	if err != nil {
		return nil, nil, err
	}
	var buf bytes.Buffer
	if err := lf.writeTar(&buf, time.Unix(0, 0)); err != nil {
		tb.Fatal(err)
	}
	hdrs, contents := map[string]*tar.Header{}, map[string]string{}
	tr := tar.NewReader(&buf)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			tb.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		hdrs[h.Name], contents[h.Name] = h, string(b)
	}
	return hdrs, contents, nil
}

var demoMeta = []zfile{
	{name: "demo-1.0.dist-info/METADATA", content: "Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n"},
	{name: "demo-1.0.dist-info/WHEEL", content: "Wheel-Version: 1.0\nRoot-Is-Purelib: false\nTag: cp311-cp311-linux_x86_64\n"},
}

// TestWheelLayout lays a wheel using every part of the format out as pip --target would.
func TestWheelLayout(t *testing.T) {
	files := append([]zfile{
		{name: "demo/__init__.py", content: "X = 1\n"},
		{name: "demo/_fast.so", content: "\x7fELF...", mode: 0o755},
		{name: "demo/", content: ""},
		{name: "demo-1.0.data/purelib/demo_pure.py", content: "P = 1\n"},
		{name: "demo-1.0.data/platlib/demo_plat.py", content: "Q = 1\n"},
		{name: "demo-1.0.data/scripts/demo-tool", content: "#!python\nprint('tool')\n"},
		{name: "demo-1.0.data/scripts/demo-sh", content: "#!/bin/sh\necho hi\n", mode: 0o644},
		{name: "demo-1.0.data/headers/demo.h", content: "int demo;\n"},
		{name: "demo-1.0.data/data/share/demo/readme.txt", content: "data\n"},
		{name: "demo/link", content: "../../../etc/passwd", mode: fs.ModeSymlink | 0o777},
		{name: "demo-1.0.dist-info/entry_points.txt", content: "[console_scripts]\ndemo = demo.cli:main [extra]\n[gui_scripts]\ndemo-gui = demo:App.run\n[other]\nx = y:z\n"},
		{name: "demo-1.0.dist-info/RECORD", content: "demo/__init__.py,sha256=wrong-but-trusted,6\n"},
	}, demoMeta...)
	hdrs, contents, err := layerOf(t, files, true)
	if err != nil {
		t.Fatal(err)
	}
	sp := "opt/atelier/site-packages/"
	want := map[string]int64{ // mode
		sp + "demo/__init__.py": 0o644, sp + "demo/_fast.so": 0o755, sp + "demo/link": 0o644,
		sp + "demo_pure.py": 0o644, sp + "demo_plat.py": 0o644,
		sp + "bin/demo-tool": 0o755, sp + "bin/demo-sh": 0o755, sp + "bin/demo": 0o755, sp + "bin/demo-gui": 0o755,
		sp + "include/python/demo/demo.h": 0o644, sp + "share/demo/readme.txt": 0o644,
		sp + "demo-1.0.dist-info/INSTALLER": 0o644, sp + "demo-1.0.dist-info/RECORD": 0o644,
		sp + "demo/": 0o755, sp + "bin/": 0o755, "opt/": 0o755,
	}
	for name, mode := range want {
		h, ok := hdrs[name]
		if !ok {
			t.Errorf("%s is not in the layer", name)
			continue
		}
		if h.Mode != mode {
			t.Errorf("%s: mode %o, want %o", name, h.Mode, mode)
		}
	}
	for name, h := range hdrs {
		if h.Typeflag != tar.TypeReg && h.Typeflag != tar.TypeDir {
			t.Errorf("%s: type %c (only files and directories)", name, h.Typeflag)
		}
		if strings.Contains(name, ".data/") {
			t.Errorf("%s: a .data directory was copied as is", name)
		}
	}
	if got := contents[sp+"bin/demo-tool"]; got != "#!/usr/bin/python3\nprint('tool')\n" {
		t.Errorf("script %q: want the image's Python", got)
	}
	if got := contents[sp+"bin/demo-sh"]; got != "#!/bin/sh\necho hi\n" {
		t.Errorf("script %q changed", got)
	}
	if got := contents[sp+"demo/link"]; got != "../../../etc/passwd" {
		t.Errorf("a zip's link became %q, want a file holding its target", got)
	}
	launcher := contents[sp+"bin/demo"]
	for _, s := range []string{"#!/usr/bin/python3\n", "from demo.cli import main\n", "sys.exit(main())"} {
		if !strings.Contains(launcher, s) {
			t.Errorf("launcher %q lacks %q", launcher, s)
		}
	}
	if gui := contents[sp+"bin/demo-gui"]; !strings.Contains(gui, "from demo import App\n") || !strings.Contains(gui, "sys.exit(App.run())") {
		t.Errorf("gui launcher %q", gui)
	}
	if _, ok := hdrs[sp+"bin/x"]; ok {
		t.Error("an entry point of another group became a script")
	}
	if contents[sp+"demo-1.0.dist-info/INSTALLER"] != "atelier\n" {
		t.Errorf("INSTALLER %q", contents[sp+"demo-1.0.dist-info/INSTALLER"])
	}
	// RECORD lists every file of the layer once, relative to site-packages; the hashes of what
	// the builder wrote or changed are the real ones, the wheel's own are kept (as pip does).
	rows, err := csv.NewReader(strings.NewReader(contents[sp+"demo-1.0.dist-info/RECORD"])).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	for _, r := range rows {
		listed[r[0]] = true
		name := sp + r[0]
		if _, ok := hdrs[name]; !ok {
			t.Errorf("RECORD lists %s, not in the layer", r[0])
		}
		switch {
		case r[0] == "demo-1.0.dist-info/RECORD":
			if r[1] != "" || r[2] != "" {
				t.Errorf("RECORD's own row %q", r)
			}
		case r[0] == "demo/__init__.py":
			if r[1] != "sha256=wrong-but-trusted" {
				t.Errorf("the wheel's RECORD hash was not kept: %q", r)
			}
		default:
			sum := sha256.Sum256([]byte(contents[name]))
			if r[1] != "sha256="+base64.RawURLEncoding.EncodeToString(sum[:]) || r[2] != fmt.Sprint(len(contents[name])) {
				t.Errorf("RECORD row %q does not match %s", r, name)
			}
		}
	}
	for name, h := range hdrs {
		if h.Typeflag == tar.TypeReg && !listed[strings.TrimPrefix(name, sp)] {
			t.Errorf("%s is not in RECORD", name)
		}
	}
	// The layer depends on the wheel only, not on whether the requirements named it.
	_, other, err := layerOf(t, files, false)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(other) != fmt.Sprint(contents) {
		t.Error("a wheel named by the requirements gives another layer than as a dependency")
	}
}

func TestWheelRefused(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files []zfile
		want  string
	}{
		{"dot-dot", []zfile{{name: "../evil.py", content: "x"}}, "outside site-packages"},
		{"dot-dot inside", []zfile{{name: "demo/../../evil.py", content: "x"}}, "outside site-packages"},
		{"absolute", []zfile{{name: "/etc/evil", content: "x"}}, "outside site-packages"},
		{"data escape", []zfile{{name: "demo-1.0.data/scripts/../../../../evil", content: "x"}}, "outside site-packages"},
		{"data dot-dot to root", []zfile{{name: "demo-1.0.data/data/../../../x", content: "x"}}, "outside site-packages"},
		{"nul", []zfile{{name: "demo/a\x00b", content: "x"}}, "outside site-packages"},
		{"unknown data scheme", []zfile{{name: "demo-1.0.data/etc/x", content: "x"}}, "unknown directory"},
		{"twice", []zfile{{name: "demo/a.py", content: "x"}, {name: "demo/./a.py", content: "y"}}, "twice"},
		{"data and purelib collide", []zfile{{name: "demo/a.py", content: "x"}, {name: "demo-1.0.data/purelib/demo/a.py", content: "y"}}, "two of its entries"},
		{"file and directory", []zfile{{name: "demo/a", content: "x"}, {name: "demo-1.0.data/purelib/demo/a/b", content: "y"}}, "both a file and a directory"},
		{"bad entry point", []zfile{{name: "demo-1.0.dist-info/entry_points.txt", content: "[console_scripts]\nx = os; import evil:f\n"}}, "not module:function"},
		{"entry point path", []zfile{{name: "demo-1.0.dist-info/entry_points.txt", content: "[console_scripts]\n../x = a:b\n"}}, "not a file name"},
		{"two dist-infos", []zfile{{name: "other-1.0.dist-info/METADATA", content: "x"}}, "2 .dist-info"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := layerOf(t, append(tc.files, demoMeta...), false)
			if err == nil || atelier.ErrorCode(err) != atelier.EINVALID || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an EINVALID saying %q", err, tc.want)
			}
		})
	}
	if _, _, err := layerOf(t, []zfile{{name: "demo-1.0.dist-info/WHEEL", content: "Wheel-Version: 2.0\n"}}, false); err == nil || !strings.Contains(err.Error(), "Wheel-Version 1") {
		t.Fatalf("a version 2 wheel: %v", err)
	}
}

// FuzzWheelToTar feeds the wheel → layer conversion hostile names: whatever it accepts stays
// under site-packages (or is one of its parents), holds only files and directories, and is
// sorted with no name twice.
func FuzzWheelToTar(f *testing.F) {
	for _, s := range []string{"demo/__init__.py", "../x", "/etc/passwd", "demo-1.0.data/scripts/../../../x", "demo-1.0.data/data/../../../../x",
		"a/../../b", "demo-1.0.data/headers/../../../x", "./././a", "a//b", "demo-1.0.dist-info/RECORD", "demo-1.0.data/purelib/..", "\x00", ".."} {
		f.Add(s, "#!python\nx", uint16(0o755), "demo-1.0.dist-info/entry_points.txt", "[console_scripts]\na = b:c\n")
	}
	f.Fuzz(func(t *testing.T, name, content string, mode uint16, name2, content2 string) {
		files := append([]zfile{{name: name, content: content, mode: fs.FileMode(mode) & 0o777}, {name: name2, content: content2}}, demoMeta...)
		var buf bytes.Buffer
		zw := zip.NewWriter(&buf)
		for _, zf := range files {
			h := &zip.FileHeader{Name: zf.name, Method: zip.Deflate}
			if zf.mode != 0 {
				h.SetMode(zf.mode)
			}
			w, err := zw.CreateHeader(h)
			if err != nil {
				return // archive/zip refuses to write some names
			}
			io.WriteString(w, zf.content)
		}
		if zw.Close() != nil {
			return
		}
		zr, err := zip.NewReader(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
		if err != nil {
			return
		}
		lf, index, err := planWheel(zr, wheelRef{Name: "demo", Version: "1.0", URL: "https://x/demo-1.0-py3-none-any.whl"}, "/usr/bin/python3")
		if err != nil {
			if atelier.ErrorCode(err) != atelier.EINVALID {
				t.Fatalf("%q: an error that is not EINVALID: %v", name, err)
			}
			return
		}
		var out bytes.Buffer
		if err := lf.writeTar(&out, time.Unix(0, 0)); err != nil {
			t.Fatalf("%q: %v", name, err)
		}
		tr := tar.NewReader(&out)
		prev, n := "", 0
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			n++
			clean := strings.TrimSuffix(h.Name, "/")
			if h.Typeflag != tar.TypeReg && h.Typeflag != tar.TypeDir {
				t.Fatalf("%q: member %q of type %c", name, h.Name, h.Typeflag)
			}
			if path.Clean(clean) != clean || !filepath.IsLocal(clean) {
				t.Fatalf("%q: member %q is not a clean local path", name, h.Name)
			}
			if !strings.HasPrefix(clean+"/", "opt/atelier/site-packages/") && !strings.HasPrefix("opt/atelier/site-packages/", clean+"/") {
				t.Fatalf("%q: member %q outside site-packages", name, h.Name)
			}
			if h.Typeflag == tar.TypeReg && h.Name == "opt/atelier/site-packages" {
				t.Fatalf("%q: site-packages itself became a file", name)
			}
			if clean <= prev {
				t.Fatalf("%q: %q after %q", name, clean, prev)
			}
			prev = clean
			if _, ok := index[clean]; !ok {
				t.Fatalf("%q: %q is not in the layer's index", name, clean)
			}
		}
		if n != len(index) {
			t.Fatalf("%q: %d members, index of %d", name, n, len(index))
		}
	})
}

func TestFetchWheel(t *testing.T) {
	data := zipBytes(t, demoMeta)
	sum := sha256.Sum256(data)
	good := hex.EncodeToString(sum[:])
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "ana" || p != "s3cret" {
			http.Error(w, "who are you", http.StatusUnauthorized)
			return
		}
		if r.URL.Path != "/demo-1.0-py3-none-any.whl" {
			http.NotFound(w, r)
			return
		}
		w.Write(data)
	}))
	defer srv.Close()
	dir := t.TempDir()
	local := filepath.Join(dir, "demo-1.0-py3-none-any.whl")
	if err := os.WriteFile(local, data, 0o644); err != nil {
		t.Fatal(err)
	}
	// The index's credentials, from the pip arguments, go with the files of its host.
	b := &builder{cache: &cache{dir: t.TempDir()}, spec: Spec{PipArgs: []string{"--index-url", strings.Replace(srv.URL, "http://", "http://ana:s3cret@", 1) + "/simple"}}}
	ctx := context.Background()
	for _, tc := range []struct {
		name, url, sha string
		roots          []string
		want           string // "" for success
	}{
		{"https", srv.URL + "/demo-1.0-py3-none-any.whl", good, nil, ""},
		{"https without a hash", srv.URL + "/demo-1.0-py3-none-any.whl", "", nil, ""},
		{"https wrong hash", srv.URL + "/demo-1.0-py3-none-any.whl", strings.Repeat("0", 64), nil, "refused"},
		{"https missing", srv.URL + "/nope-1.0-py3-none-any.whl", good, nil, "404"},
		{"https other credentials", strings.Replace(srv.URL, "http://", "http://bob:x@", 1) + "/demo-1.0-py3-none-any.whl", good, nil, "401"},
		{"file", "file://" + local, good, []string{dir}, ""},
		{"file wrong hash", "file://" + local, strings.Repeat("a", 64), []string{dir}, "refused"},
		{"file outside the roots", "file://" + local, good, []string{t.TempDir()}, "outside the directories"},
		{"ftp", "ftp://x/demo-1.0-py3-none-any.whl", good, nil, "only https"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, got, remove, err := b.fetchWheel(ctx, wheelRef{Name: "demo", Version: "1.0", URL: tc.url, SHA256: tc.sha}, tc.roots)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				defer remove()
				if got != good {
					t.Fatalf("sha256 %s, want %s", got, good)
				}
				if _, err := zip.NewReader(f, int64(len(data))); err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error saying %q", err, tc.want)
			}
		})
	}
	left, _ := os.ReadDir(b.cache.dir)
	if len(left) != 0 {
		t.Errorf("downloads left in the cache directory: %v", left)
	}
}

func keepURL(u string) string { return u }

func TestParseReport(t *testing.T) {
	refs, err := parseReport([]byte(`{"version":"1","install":[
		{"download_info":{"url":"https://h/p/zeta-2.0-py3-none-any.whl","archive_info":{"hash":"sha256=`+strings.Repeat("b", 64)+`"}},"requested":false,"metadata":{"name":"zeta","version":"2.0"}},
		{"download_info":{"url":"https://h/p/alpha-1.0-py3-none-any.whl","archive_info":{"hashes":{"sha256":"`+strings.Repeat("a", 64)+`"}}},"requested":true,"metadata":{"name":"alpha","version":"1.0"}}]}`), keepURL)
	if err != nil {
		t.Fatal(err)
	}
	if len(refs) != 2 || refs[0].Name != "alpha" || !refs[0].Requested || refs[0].SHA256 != strings.Repeat("a", 64) || refs[1].SHA256 != strings.Repeat("b", 64) {
		t.Fatalf("refs %+v", refs)
	}
	_, err = parseReport([]byte(`{"install":[{"download_info":{"url":"https://h/p/old-1.0.tar.gz","archive_info":{}},"metadata":{"name":"old","version":"1.0"}}]}`), keepURL)
	if atelier.ErrorCode(err) != atelier.EINVALID || !strings.Contains(fmt.Sprint(err), "not a binary wheel") {
		t.Fatalf("an sdist: %v", err)
	}
}

// TestWheelOverlaps: two wheels writing one path with different contents are refused; the same
// file in both (a namespace package's __init__.py) is not.
func TestWheelOverlaps(t *testing.T) {
	c := &cache{dir: t.TempDir()}
	layer := func(name string, files []zfile) builtLayer {
		meta := []zfile{
			{name: name + "-1.0.dist-info/METADATA", content: "Name: " + name + "\n"},
			{name: name + "-1.0.dist-info/WHEEL", content: "Wheel-Version: 1.0\n"},
		}
		zr := zipReader(t, zipBytes(t, append(files, meta...)))
		lf, index, err := planWheel(zr, wheelRef{Name: name, Version: "1.0", URL: "https://x/" + name + "-1.0-py3-none-any.whl"}, "/usr/bin/python3")
		if err != nil {
			t.Fatal(err)
		}
		l, err := c.put(name, index, func(w io.Writer) error { return lf.writeTar(w, time.Unix(0, 0)) })
		if err != nil {
			t.Fatal(err)
		}
		if l, err = c.get(name); err != nil || l == nil || len(l.meta.Files) != len(index) {
			t.Fatalf("the cache lost the layer's index: %v", err)
		}
		return builtLayer{name: "deps " + name + " 1.0", l: l}
	}
	a := layer("a", []zfile{{name: "ns/__init__.py", content: ""}, {name: "ns/a.py", content: "A"}, {name: "shared.py", content: "one"}})
	b := layer("b", []zfile{{name: "ns/__init__.py", content: ""}, {name: "ns/b.py", content: "B"}})
	c2 := layer("c", []zfile{{name: "shared.py", content: "two"}})
	d := layer("d", []zfile{{name: "ns/a.py/x", content: "dir where a has a file"}})
	if err := checkOverlaps([]builtLayer{a, b}); err != nil {
		t.Fatalf("a shared namespace __init__.py: %v", err)
	}
	for _, other := range []builtLayer{c2, d} {
		err := checkOverlaps([]builtLayer{a, b, other})
		if atelier.ErrorCode(err) != atelier.EINVALID || !strings.Contains(fmt.Sprint(err), "two wheels") {
			t.Fatalf("%s over a: %v", other.name, err)
		}
	}
}

// TestWheelLayerReused: another requirements file needing the same wheel reuses its layer (pip
// resolves again, the wheel's layer comes from the cache), and the same file again is not
// resolved at all.
func TestWheelLayerReused(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	first, err := Build(ctx, f.spec, f.base, Output{LayoutDir: filepath.Join(t.TempDir(), "out"), Tag: "1"})
	if err != nil {
		t.Fatalf("%v\n%s", err, first.Log)
	}
	mustWrite(t, f.spec.Requirements, "# another file, the same wheel\ngreet\n")
	second, err := Build(ctx, f.spec, f.base, Output{LayoutDir: filepath.Join(t.TempDir(), "out"), Tag: "1"})
	if err != nil {
		t.Fatalf("%v\n%s", err, second.Log)
	}
	if l := second.Layers[0]; l.Name != "deps greet 1.0" || !l.Cached || l.Digest != first.Layers[0].Digest {
		t.Fatalf("layer %+v; want greet's layer from the cache (%s)", l, first.Layers[0].Digest)
	}
	if !strings.Contains(second.Log, "pip resolve took") {
		t.Errorf("a new requirements file was not resolved:\n%s", second.Log)
	}
	third, err := Build(ctx, f.spec, f.base, Output{LayoutDir: filepath.Join(t.TempDir(), "out"), Tag: "1"})
	if err != nil {
		t.Fatalf("%v\n%s", err, third.Log)
	}
	if strings.Contains(third.Log, "pip resolve took") || third.Digest != second.Digest {
		t.Errorf("the same requirements were resolved again (or gave another image):\n%s", third.Log)
	}
}

// TestSdistOnly: a requirement with no wheel, only a source distribution, fails the build with
// pip's error: binary wheels only.
func TestSdistOnly(t *testing.T) {
	f := newFixture(t)
	wheels := f.spec.PipArgs[len(f.spec.PipArgs)-1]
	mustWrite(t, filepath.Join(wheels, "srconly-1.0.tar.gz"), "not really a tarball")
	mustWrite(t, f.spec.Requirements, "greet==1.0\nsrconly==1.0\n")
	res, err := Build(context.Background(), f.spec, f.base, Output{LayoutDir: filepath.Join(t.TempDir(), "out"), Tag: "1"})
	if err == nil {
		t.Fatal("the build succeeded")
	}
	if atelier.ErrorCode(err) != atelier.EINVALID || !strings.Contains(err.Error(), "srconly") || !strings.Contains(res.Log, "srconly") {
		t.Fatalf("got %v\n%s", err, res.Log)
	}
}

// TestFetchWheelPrivateCA: an index behind a CA only pip's --cert bundle holds.
func TestFetchWheelPrivateCA(t *testing.T) {
	data := zipBytes(t, demoMeta)
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(data) }))
	defer srv.Close()
	bundle := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(bundle, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PIP_CERT", "")
	ref := wheelRef{Name: "demo", Version: "1.0", URL: srv.URL + "/demo-1.0-py3-none-any.whl"}
	for _, args := range [][]string{nil, {"--cert", bundle}, {"--cert=" + bundle}} {
		b := &builder{cache: &cache{dir: t.TempDir()}, spec: Spec{PipArgs: args}}
		var err error
		if b.client, err = b.wheelClient(); err != nil {
			t.Fatal(err)
		}
		_, _, remove, err := b.fetchWheel(context.Background(), ref, nil)
		if args == nil {
			if err == nil || !strings.Contains(err.Error(), "certificate") {
				t.Fatalf("without the bundle: %v", err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%q: %v", args, err)
		}
		remove()
	}
}

// TestPrefetch: a wheel pip's output names is looked up in the index's JSON page, fetched and
// written while pip runs; it is used only when pip's report names the same URL and sha256.
func TestPrefetch(t *testing.T) {
	data := zipBytes(t, append([]zfile{{name: "demo/__init__.py", content: "X = 1\n"}}, demoMeta...))
	sum := sha256.Sum256(data)
	good := hex.EncodeToString(sum[:])
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/simple/demo/":
			w.Header().Set("Content-Type", "application/vnd.pypi.simple.v1+json")
			fmt.Fprintf(w, `{"files":[{"filename":"demo-1.0-py3-none-any.whl","url":"../../files/demo-1.0-py3-none-any.whl","hashes":{"sha256":%q}}]}`, good)
		case "/files/demo-1.0-py3-none-any.whl":
			w.Write(data)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	var log bytes.Buffer
	b := &builder{cache: &cache{dir: t.TempDir()}, log: &syncWriter{w: &log}, spec: Spec{PipArgs: []string{"--index-url", srv.URL + "/simple/"}}}
	ctx, cancel := context.WithCancel(context.Background())
	p := &prefetcher{b: b, ctx: ctx, index: pipIndex(b.spec.PipArgs), python: "/usr/bin/python3", fetches: make(chan struct{}, 2), cpu: make(chan struct{}, 2),
		projects: map[string]bool{}, byFile: map[string]*prefetched{}, pipSlot: make(chan struct{}, 1), resolved: make(chan struct{})}
	if p.index != srv.URL+"/simple" {
		t.Fatalf("index %q", p.index)
	}
	for _, chunk := range []string{"Collecting demo==1.0\n  Downloa", "ding demo-1.0-py3-none-any.whl (1 kB)\r\n", "  Downloading demo-1.0-py3-none-any.whl (1 kB)\n", "  Downloading other-2.0-py3-none-any.whl.metadata (3 kB)\n"} {
		p.Write([]byte(chunk))
	}
	ref := wheelRef{Name: "demo", Version: "1.0", URL: srv.URL + "/files/demo-1.0-py3-none-any.whl", SHA256: good}
	l, _, ok := p.take(ref)
	if !ok || l == nil {
		t.Fatalf("the wheel pip named was not prefetched:\n%s", log.String())
	}
	if _, _, ok := p.take(wheelRef{Name: "demo", URL: ref.URL, SHA256: strings.Repeat("0", 64)}); ok {
		t.Fatal("a prefetched wheel was taken for another sha256")
	}
	if _, _, ok := p.take(wheelRef{Name: "demo", URL: srv.URL + "/elsewhere/demo-1.0-py3-none-any.whl", SHA256: good}); ok {
		t.Fatal("a prefetched wheel was taken for another URL")
	}
	if _, _, ok := p.take(wheelRef{Name: "other", URL: srv.URL + "/files/other-2.0-py3-none-any.whl"}); ok {
		t.Fatal("a wheel the index does not have was taken")
	}
	p.stop(cancel)
	p.Write([]byte("  Downloading late-1.0-py3-none-any.whl (1 kB)\n")) // after stop: ignored
	p.wg.Wait()
	if n := len(p.byFile); n != 2 {
		t.Fatalf("%d prefetches, want 2 (demo once, other)", n)
	}
	for _, args := range [][]string{{"--no-index", "--find-links", "/w"}} {
		if got := pipIndex(args); got != "" {
			t.Errorf("pipIndex(%q) = %q", args, got)
		}
	}
	t.Setenv("PIP_INDEX_URL", "")
	if got := pipIndex([]string{"--index-url=https://x/simple/"}); got != "https://x/simple" {
		t.Errorf("pipIndex = %q", got)
	}
	if got := pipIndex(nil); got != "https://pypi.org/simple" {
		t.Errorf("pipIndex = %q", got)
	}
}
