package build

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
)

// TestSupportedTagsMatchPip: the builder ranks wheel tags in pip's own order for the image's
// Python and platforms (pip's get_supported, asked through the host's pip).
func TestSupportedTagsMatchPip(t *testing.T) {
	platforms := pipPlatforms("amd64")
	script := fmt.Sprintf("from pip._internal.utils.compatibility_tags import get_supported\nfor t in get_supported(version='311', platforms=%s, impl='cp'): print(t)\n",
		"["+strings.Join(quoteAll(platforms), ",")+"]")
	out, err := exec.Command("python3", "-c", script).Output()
	if err != nil {
		t.Skipf("pip's tags: %v", err)
	}
	want := strings.Fields(string(out))
	rank := supportedTags(11, platforms)
	got := make([]string, len(rank))
	for tag, r := range rank {
		got[r] = tag
	}
	if !slices.Equal(got, want) {
		for i := range min(len(got), len(want)) {
			if got[i] != want[i] {
				t.Fatalf("tag %d: %s, pip's is %s (%d tags, pip %d)", i, got[i], want[i], len(got), len(want))
			}
		}
		t.Fatalf("%d tags, pip has %d", len(got), len(want))
	}
	if r := wheelRank("numpy-2.1.3-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl", rank); r < 0 || r >= wheelRank("joblib-1.4.2-py3-none-any.whl", rank) {
		t.Fatalf("a binary wheel ranks %d, below a pure one", r)
	}
	if wheelRank("numpy-2.1.3-cp312-cp312-manylinux_2_17_x86_64.whl", rank) != -1 {
		t.Fatal("a wheel for another Python is ranked")
	}
}

func quoteAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = "'" + s + "'"
	}
	return out
}

func TestSpecMatch(t *testing.T) {
	for _, c := range []struct {
		spec, version string
		ok, known     bool
	}{
		{"", "1.0", true, true},
		{">=1.19.5", "2.1.3", true, true},
		{">=1.23.5,<2.3", "2.1.3", true, true},
		{"<2.3,>=2.2", "2.1.3", false, true},
		{"(>=1.6.0)", "1.14.1", true, true},
		{"==2.1", "2.1.0", true, true},
		{"!=2.1.3", "2.1.3", false, true},
		{"==2.*", "2.1.3", true, true},
		{"!=2.1.*", "2.1.3", false, true},
		{"~=1.4.2", "1.4.9", true, true},
		{"~=1.4.2", "1.5.0", false, true},
		{"~=1.4", "1.9", true, true},
		{"~=1", "1.9", false, false},
		{">=3.9", "3.11", true, true},
		{">=3.12", "3.11", false, true},
		{">=1.0rc1", "1.0", false, false},
		{"===1.0", "1.0", false, false},
		{">=1", "1.0.post1", false, false},
	} {
		ok, known := specMatch(c.spec, c.version)
		if ok != c.ok || known != c.known {
			t.Errorf("specMatch(%q, %q) = %v, %v; want %v, %v", c.spec, c.version, ok, known, c.ok, c.known)
		}
	}
}

func TestMarkers(t *testing.T) {
	env := imageMarkerEnv("3.11", "x86_64")
	for _, c := range []struct {
		marker    string
		extras    []string
		ok, known bool
	}{
		{`python_version >= "3.9"`, nil, true, true},
		{`python_version < "3.11"`, nil, false, true},
		{`"3.12" > python_version`, nil, true, true},
		{`sys_platform == "win32"`, nil, false, true},
		{`platform_machine == "x86_64" and sys_platform == 'linux'`, nil, true, true},
		{`extra == "tests"`, nil, false, true},
		{`extra == "tests"`, []string{"tests"}, true, true},
		{`(python_version < "3.8" or os_name == "posix") and extra != "doc"`, nil, true, true},
		{`platform_python_implementation == "PyPy"`, nil, false, true},
		{`"linux" in sys_platform`, nil, true, true},
		{`sys_platform not in "win32 cygwin"`, nil, true, true},
		{`platform_release >= "5"`, nil, false, false},
		{`python_full_version >= "3.11.1"`, nil, false, false},
		{`python_version >= `, nil, false, false},
	} {
		extras := map[string]bool{}
		for _, e := range c.extras {
			extras[e] = true
		}
		ok, known := env.eval(c.marker, extras)
		if ok != c.ok || known != c.known {
			t.Errorf("eval(%q, %v) = %v, %v; want %v, %v", c.marker, c.extras, ok, known, c.ok, c.known)
		}
	}
}

func TestParsePins(t *testing.T) {
	env := imageMarkerEnv("3.11", "x86_64")
	pins, why := parsePins([]byte("# pinned\nscikit-learn==1.5.2  # via -r in\nNumPy==2.1.3 \\\n    --hash=sha256:ABCD\nrequests[socks,security]==2.32.3\npywin32==306 ; sys_platform == 'win32'\n\n"), env)
	if why != "" || len(pins) != 3 || pins["numpy"].version != "2.1.3" || !pins["numpy"].hashes["abcd"] ||
		!pins["requests"].extras["socks"] || !pins["requests"].extras["security"] || pins["scikit-learn"] == nil {
		t.Fatalf("pins %v, why %q", pins, why)
	}
	for req, want := range map[string]string{
		"numpy>=2\n":                         "is not NAME==VERSION",
		"-i https://x/simple\nnumpy==2\n":    "the option",
		"numpy==2.0rc1\n":                    "only releases",
		"numpy==2.0\nNumPy==2.0\n":           "pinned twice",
		"numpy==2; platform_release > '5'\n": "the marker",
		"# nothing\n":                        "no requirement",
		"./local/pkg\n":                      "is not NAME==VERSION",
	} {
		if _, why := parsePins([]byte(req), env); !strings.Contains(why, want) {
			t.Errorf("parsePins(%q): %q, want %q", req, why, want)
		}
	}
}

// TestResolvePinned: a pinned file closed under its dependencies is resolved without pip (the
// fake index's wheels, their index URLs); a pin missing, a dependency out of its pin's range, a
// version with no wheel leave it to pip, saying why.
func TestResolvePinned(t *testing.T) {
	fi := newFakeIndex(t)
	b, pre, _ := newViewBuilder(t, fi.srv.URL+"/simple/")
	v := mustView(t, b, pre)
	refs, why := b.resolvePinned(t.Context(), []byte("demo==1.0\ndep==2.0\n"), v, "3.11")
	if why != "" || len(refs) != 2 || refs[0].Name != "demo" || refs[0].URL != fi.srv.URL+"/files/demo-1.0-py3-none-any.whl" ||
		refs[1].Name != "dep" || refs[1].URL != fi.srv.URL+"/files/dep-2.0-py3-none-any.whl" || !refs[0].Requested || len(refs[1].SHA256) != 64 {
		t.Fatalf("refs %+v, why %q", refs, why)
	}
	for req, want := range map[string]string{
		"demo==1.0\n":           "requires dep, which is not pinned",
		"demo==1.0\ndep==3.0\n": "no wheel of dep 3.0",
		"demo==1.0\ndep==1.9\n": "no wheel of dep 1.9",
		"nothing==1.0\n":        "no wheel of nothing 1.0",
		"demo==1.0 --hash=sha256:" + strings.Repeat("0", 64) + "\ndep==2.0\n": "none of the pin's hashes",
	} {
		if refs, why := b.resolvePinned(t.Context(), []byte(req), v, "3.11"); refs != nil || !strings.Contains(why, want) {
			t.Errorf("%q: refs %v, why %q; want %q", req, refs, why, want)
		}
	}
	// Of two wheels of a pin, the one with the more preferred tag, as pip chooses.
	fi.wheels["dep-2.0-cp311-cp311-manylinux_2_17_x86_64.whl"] = fi.wheels["dep-2.0-py3-none-any.whl"]
	v1 := mustView(t, b, pre)
	if refs, why := b.resolvePinned(t.Context(), []byte("demo==1.0\ndep==2.0\n"), v1, "3.11"); len(refs) != 2 || !strings.HasSuffix(refs[1].URL, "/dep-2.0-cp311-cp311-manylinux_2_17_x86_64.whl") {
		t.Fatalf("the preferred wheel: refs %+v, why %q", refs, why)
	}
	delete(fi.wheels, "dep-2.0-cp311-cp311-manylinux_2_17_x86_64.whl")
	// demo requires dep>=2: a pin below it is refused even when its wheel exists.
	fi.wheels["dep-1.5-py3-none-any.whl"] = zipBytes(t, []zfile{{name: "dep-1.5.dist-info/METADATA", content: "Metadata-Version: 2.1\nName: dep\nVersion: 1.5\n"}})
	v2 := mustView(t, b, pre)
	if refs, why := b.resolvePinned(t.Context(), []byte("demo==1.0\ndep==1.5\n"), v2, "3.11"); refs != nil || !strings.Contains(why, "requires dep >=2; the pin is 1.5") {
		t.Errorf("a pin out of its dependent's range: refs %v, why %q", refs, why)
	}
}

// TestResolvePinnedMatchesPip: with this machine's index, the scikit-learn example's pinned
// requirements resolve without pip to exactly the wheels pip chooses.
func TestResolvePinnedMatchesPip(t *testing.T) {
	index := pipIndex(nil)
	resp, err := http.Get(index + "/pip/")
	if err != nil || resp.StatusCode != 200 {
		t.Skipf("no package index reachable at %s: %v", index, err)
	}
	resp.Body.Close()
	req, err := os.ReadFile(filepath.Join(exampleServe, "requirements.txt"))
	if err != nil {
		t.Fatal(err)
	}
	resolveWith := func(req []byte) ([]wheelRef, string) {
		b, pre, log := newViewBuilder(t, index)
		b.spec.PipArgs = nil
		if b.client, err = b.wheelClient(); err != nil {
			t.Fatal(err)
		}
		f := filepath.Join(t.TempDir(), "requirements.txt")
		os.WriteFile(f, req, 0o644)
		refs, err := b.resolve(context.Background(), req, f, "3.11", pipPlatforms("amd64"), pre)
		if err != nil {
			t.Fatalf("%v\n%s", err, log)
		}
		return refs, log.String()
	}
	fast, log := resolveWith(req)
	if !strings.Contains(log, "resolved without pip") {
		t.Fatalf("the pinned requirements went to pip:\n%s", log)
	}
	// An option in the file leaves the resolve to pip.
	slow, log := resolveWith(append(append([]byte{}, req...), "--prefer-binary\n"...))
	if !strings.Contains(log, "pip resolves: the option") {
		t.Fatalf("pip did not resolve:\n%s", log)
	}
	key := func(refs []wheelRef) []string {
		var out []string
		for _, r := range refs {
			out = append(out, strings.Join([]string{r.Name, r.Version, r.URL, r.SHA256}, " "))
		}
		sort.Strings(out)
		return out
	}
	if !slices.Equal(key(fast), key(slow)) {
		t.Fatalf("without pip:\n%s\npip:\n%s", strings.Join(key(fast), "\n"), strings.Join(key(slow), "\n"))
	}
}
