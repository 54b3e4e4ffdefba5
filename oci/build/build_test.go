package build

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/oci/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

// readLayout reads the image tagged tag back from an OCI layout with go-containerregistry and
// validates every digest and size in it.
func readLayout(t *testing.T, dir, tag string) v1.Image {
	t.Helper()
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range im.Manifests {
		if d.Annotations["org.opencontainers.image.ref.name"] == tag {
			img, err := idx.Image(d.Digest)
			if err != nil {
				t.Fatal(err)
			}
			if err := validate.Image(img); err != nil {
				t.Fatalf("the layout's image is not valid: %v", err)
			}
			return img
		}
	}
	t.Fatalf("no image tagged %q in %s", tag, dir)
	return nil
}

func TestBuildReproducible(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	var digests []string
	for i := range 2 {
		spec := f.spec
		spec.CacheDir = filepath.Join(t.TempDir(), "cache") // a cold cache each time
		out := filepath.Join(t.TempDir(), "out")
		res, err := Build(ctx, spec, f.base, Output{LayoutDir: out, Tag: "1"})
		if err != nil {
			t.Fatalf("build %d: %v\n%s", i, err, res.Log)
		}
		img := readLayout(t, out, "1")
		d, _ := img.Digest()
		if d.String() != res.Digest {
			t.Fatalf("layout holds %s, build says %s", d, res.Digest)
		}
		for _, l := range res.Layers {
			if l.Cached {
				t.Errorf("build %d: layer %s came from a cold cache", i, l.Name)
			}
		}
		digests = append(digests, res.Digest)
	}
	if digests[0] != digests[1] {
		t.Fatalf("two builds of the same inputs differ: %s and %s", digests[0], digests[1])
	}
}

func TestBuildConfigAndLayers(t *testing.T) {
	f := newFixture(t)
	out := filepath.Join(t.TempDir(), "out")
	res, err := Build(context.Background(), f.spec, f.base, Output{LayoutDir: out, Tag: "1"})
	if err != nil {
		t.Fatalf("%v\n%s", err, res.Log)
	}
	img := readLayout(t, out, "1")
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if m.MediaType != types.OCIManifestSchema1 || m.Config.MediaType != types.OCIConfigJSON {
		t.Errorf("media types %s, %s; want OCI", m.MediaType, m.Config.MediaType)
	}
	if len(m.Layers) != 5 { // base + deps, runtime, models, source
		t.Fatalf("%d layers, want 5", len(m.Layers))
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	c := cfg.Config
	if !slices.Equal(c.Entrypoint, []string{"/usr/bin/python3", RuntimeScript}) {
		t.Errorf("entrypoint %q", c.Entrypoint)
	}
	if c.WorkingDir != AppDir {
		t.Errorf("working dir %q", c.WorkingDir)
	}
	if _, ok := c.ExposedPorts["5001/tcp"]; !ok {
		t.Errorf("exposed ports %v", c.ExposedPorts)
	}
	for _, kv := range []string{"AZUREML_MODEL_DIR=" + ModelsDir + "/diabetes/3", "PYTHONPATH=" + SitePackages, "PYTHONUNBUFFERED=1", "PATH=/usr/local/bin:/usr/bin:/bin"} {
		if !slices.Contains(c.Env, kv) {
			t.Errorf("env %q lacks %s", c.Env, kv)
		}
	}
	if got := c.Labels["org.opencontainers.image.created"]; got != "1970-01-01T00:00:00Z" {
		t.Errorf("created label %q", got)
	}
	if !cfg.Created.Time.Equal(time.Unix(0, 0)) {
		t.Errorf("created %v", cfg.Created)
	}
	if got := c.Labels[LabelModels]; got != "diabetes:3" {
		t.Errorf("models label %q", got)
	}
	// Every added layer: sorted entries, epoch times, root owners, fixed modes.
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"opt/atelier/site-packages/greet/__init__.py": false, "opt/atelier/runtime/atelier_runtime.py": false,
		"var/azureml-app/azureml-models/diabetes/3/model.json": false, "var/azureml-app/score.py": false, "var/azureml-app/helper.py": false,
		"opt/atelier/site-packages/bin/greet": false}
	for _, l := range layers[1:] {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(rc)
		prev := ""
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			// Sorted by path (a directory's name without its slash), so parents come first.
			if name := strings.TrimSuffix(h.Name, "/"); name <= prev {
				t.Errorf("%s after %s: entries not sorted", name, prev)
			} else {
				prev = name
			}
			if !h.ModTime.Equal(time.Unix(0, 0)) || h.Uid != 0 || h.Gid != 0 || h.Uname != "" || len(h.PAXRecords) != 0 {
				t.Errorf("%s: mtime %v owner %d:%d %q pax %v", h.Name, h.ModTime, h.Uid, h.Gid, h.Uname, h.PAXRecords)
			}
			if m := h.Mode; m != 0o644 && m != 0o755 {
				t.Errorf("%s: mode %o", h.Name, m)
			}
			if _, ok := want[h.Name]; ok {
				want[h.Name] = true
			}
			if h.Name == "opt/atelier/site-packages/bin/greet" {
				b, _ := io.ReadAll(tr)
				if !bytes.HasPrefix(b, []byte("#!/usr/bin/python3\n")) || h.Mode != 0o755 {
					t.Errorf("pip's console script has mode %o and starts %q; want the image's Python", h.Mode, b[:min(len(b), 60)])
				}
				want[h.Name] = true
			}
			if strings.HasSuffix(h.Name, ".pyc") {
				t.Errorf("%s: compiled bytecode in a layer", h.Name)
			}
		}
		rc.Close()
	}
	for name, seen := range want {
		if !seen {
			t.Errorf("%s is in no layer", name)
		}
	}
}

// TestRebuildOnlySource changes score.py and rebuilds into the same layout with the same cache:
// only the source layer is built again.
func TestRebuildOnlySource(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	out := filepath.Join(t.TempDir(), "out")
	first, err := Build(ctx, f.spec, f.base, Output{LayoutDir: out, Tag: "1"})
	if err != nil {
		t.Fatalf("%v\n%s", err, first.Log)
	}
	mustWrite(t, filepath.Join(f.spec.SourceDir, "score.py"), scoreSource("2"))
	start := time.Now()
	second, err := Build(ctx, f.spec, f.base, Output{LayoutDir: out, Tag: "2"})
	took := time.Since(start)
	if err != nil {
		t.Fatalf("%v\n%s", err, second.Log)
	}
	t.Logf("rebuild after a score.py change: %s end to end (goal < 1 s)\n%s", took, second.Log)
	for i, l := range second.Layers {
		if wantCached := l.Name != "source"; l.Cached != wantCached {
			t.Errorf("layer %s: cached %t, want %t", l.Name, l.Cached, wantCached)
		}
		if l.Name != "source" && l.Digest != first.Layers[i].Digest {
			t.Errorf("layer %s changed: %s, was %s", l.Name, l.Digest, first.Layers[i].Digest)
		}
	}
	if first.Digest == second.Digest {
		t.Fatal("a changed score.py gave the same image")
	}
	// Both tags are in the layout, each valid.
	readLayout(t, out, "1")
	readLayout(t, out, "2")
}

// TestConcurrentBuildsOneLayout builds several tags into one layout at once: every tag lands.
func TestConcurrentBuildsOneLayout(t *testing.T) {
	f := newFixture(t)
	out := filepath.Join(f.dir, "out")
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			spec := f.spec
			spec.Version = fmt.Sprint(i) // a label: each build is another image
			_, errs[i] = Build(context.Background(), spec, f.base, Output{LayoutDir: out, Tag: fmt.Sprint(i)})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("build %d: %v", i, err)
		}
		readLayout(t, out, fmt.Sprint(i))
	}
	// The same, without the builds' time between index updates: writers released together.
	img := readLayout(t, out, "0")
	start := make(chan struct{})
	werrs := make([]error, 16)
	for i := range werrs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			werrs[i] = writeLayout(context.Background(), out, fmt.Sprintf("w%d", i), img, nil)
		}()
	}
	close(start)
	wg.Wait()
	for i, err := range werrs {
		if err != nil {
			t.Fatalf("writer %d: %v", i, err)
		}
		readLayout(t, out, fmt.Sprintf("w%d", i))
	}
}

// TestConcurrentBuildsShareCache runs builds of the same inputs at once over one cache (run
// with -race): they agree on the digest.
func TestConcurrentBuildsShareCache(t *testing.T) {
	f := newFixture(t)
	var wg sync.WaitGroup
	digests := make([]string, 3)
	errs := make([]error, 3)
	for i := range digests {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := Build(context.Background(), f.spec, f.base, Output{LayoutDir: filepath.Join(f.dir, fmt.Sprintf("out%d", i)), Tag: "1"})
			digests[i], errs[i] = res.Digest, err
		}()
	}
	wg.Wait()
	for i := range digests {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if digests[i] != digests[0] {
			t.Errorf("build %d: %s, build 0: %s", i, digests[i], digests[0])
		}
	}
}

func TestPushToRegistry(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	blobs, err := registry.OpenDiskBlobs(filepath.Join(t.TempDir(), "blobs"), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	meta, err := registry.OpenDiskMetadata(filepath.Join(t.TempDir(), "meta"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := Build(ctx, f.spec, f.base, Output{Registry: &RegistryOutput{Blobs: blobs, Metadata: meta, Repo: "default/diabetes-svc", Tags: []string{"1"}}})
	if err != nil {
		t.Fatalf("%v\n%s", err, res.Log)
	}
	d, err := meta.Tag(ctx, "default/diabetes-svc", "1")
	if err != nil {
		t.Fatal(err)
	}
	if string(d) != res.Digest {
		t.Fatalf("tag 1 is %s, the build %s", d, res.Digest)
	}
	m, err := meta.Manifest(ctx, "default/diabetes-svc", d)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Blobs) != 6 {
		t.Fatalf("the manifest names %d blobs, want config + 5 layers", len(m.Blobs))
	}
	for _, b := range m.Blobs {
		rc, err := blobs.Open(ctx, b.Digest, 0, -1)
		if err != nil {
			t.Fatalf("blob %s: %v", b.Digest, err)
		}
		h := registry.NewHash("sha256")
		n, _ := io.Copy(h, rc)
		rc.Close()
		if got := registry.SumDigest("sha256", h); got != b.Digest || n != b.Size {
			t.Errorf("blob %s holds %s (%d bytes, want %d)", b.Digest, got, n, b.Size)
		}
	}
}

// TestImportArchives builds on a base imported from a docker archive and from an OCI archive:
// the result is an OCI image either way.
func TestImportArchives(t *testing.T) {
	f := newFixture(t)
	docker := filepath.Join(t.TempDir(), "base.tar")
	if err := tarball.WriteToFile(docker, nil, baseImage(t, DefaultPlatform(), "3.11")); err != nil {
		t.Fatal(err)
	}
	oci := mustTarDir(t, MustBaseImage(t, DefaultPlatform(), "3.11"))
	for name, archive := range map[string]string{"docker-archive": docker, "oci-archive": oci} {
		t.Run(name, func(t *testing.T) {
			base, err := ImportBase(context.Background(), archive, DefaultPlatform())
			if err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(t.TempDir(), "out")
			res, err := Build(context.Background(), f.spec, base, Output{LayoutDir: out, Tag: "1"})
			if err != nil {
				t.Fatalf("%v\n%s", err, res.Log)
			}
			m, err := readLayout(t, out, "1").Manifest()
			if err != nil {
				t.Fatal(err)
			}
			for _, l := range m.Layers {
				if !strings.HasPrefix(string(l.MediaType), "application/vnd.oci.") {
					t.Errorf("layer %s has media type %s in an OCI manifest", l.Digest, l.MediaType)
				}
			}
		})
	}
	t.Run("not an image", func(t *testing.T) {
		_, err := ImportBase(context.Background(), f.spec.Requirements, DefaultPlatform())
		if atelier.ErrorCode(err) != atelier.EINVALID {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("missing", func(t *testing.T) {
		_, err := ImportBase(context.Background(), filepath.Join(f.dir, "none.tar"), DefaultPlatform())
		if atelier.ErrorCode(err) != atelier.ENOTFOUND {
			t.Fatalf("got %v", err)
		}
	})
}

// mustTarDir packs dir into a tar the way skopeo writes an oci-archive (names start with "./").
func mustTarDir(t *testing.T, dir string) string {
	t.Helper()
	name := filepath.Join(t.TempDir(), "archive.tar")
	out, err := os.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(out)
	err = filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		h, err := tar.FileInfoHeader(fi, "")
		if err != nil {
			return err
		}
		h.Name = "./" + filepath.ToSlash(rel)
		if err := tw.WriteHeader(h); err != nil || fi.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		_, err = tw.Write(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	return name
}

func TestBadInput(t *testing.T) {
	arm := v1.Platform{OS: "linux", Architecture: "arm64"}
	if DefaultPlatform().Architecture == "arm64" {
		arm.Architecture = "amd64"
	}
	tests := []struct {
		name     string
		change   func(t *testing.T, f *fixture)
		code     string
		contains []string
		inLog    string
	}{
		{"missing entry script", func(t *testing.T, f *fixture) { f.spec.EntryScript = "nope.py" }, atelier.ENOTFOUND, []string{"nope.py", "not found"}, ""},
		{"entry script outside", func(t *testing.T, f *fixture) { f.spec.EntryScript = "../score.py" }, atelier.EINVALID, []string{"inside the source directory"}, ""},
		{"no run", func(t *testing.T, f *fixture) {
			mustWrite(t, filepath.Join(f.spec.SourceDir, "score.py"), "def init():\n    pass\n")
		}, atelier.EINVALID, []string{"score.py", "run()"}, ""},
		{"no init", func(t *testing.T, f *fixture) {
			mustWrite(t, filepath.Join(f.spec.SourceDir, "score.py"), "def run(raw):\n    return raw\n")
		}, atelier.EINVALID, []string{"init()"}, ""},
		{"syntax error", func(t *testing.T, f *fixture) {
			mustWrite(t, filepath.Join(f.spec.SourceDir, "score.py"), "def init(:\n")
		}, atelier.EINVALID, []string{"syntax error at line 1"}, ""},
		{"missing model", func(t *testing.T, f *fixture) { f.spec.Models[0].Dir = filepath.Join(f.dir, "none") }, atelier.ENOTFOUND, []string{"diabetes:3"}, ""},
		{"base for another architecture", func(t *testing.T, f *fixture) { f.base = baseImage(t, arm, "3.11") }, atelier.EINVALID, []string{"is for " + arm.OS + "/" + arm.Architecture}, ""},
		{"pip fails", func(t *testing.T, f *fixture) {
			mustWrite(t, f.spec.Requirements, "greet==1.0\nnot-a-package-here==9.9\n")
		}, atelier.EINVALID, []string{"installing requirements.txt failed", "not-a-package-here"}, "No matching distribution"},
		{"unknown python version", func(t *testing.T, f *fixture) { f.base = baseImage(t, DefaultPlatform(), "") }, atelier.EINVALID, []string{"Python version"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			tt.change(t, f)
			out := filepath.Join(t.TempDir(), "out")
			meta, err := registry.OpenDiskMetadata(filepath.Join(t.TempDir(), "meta"))
			if err != nil {
				t.Fatal(err)
			}
			blobs, err := registry.OpenDiskBlobs(filepath.Join(t.TempDir(), "blobs"), time.Now)
			if err != nil {
				t.Fatal(err)
			}
			res, err := Build(context.Background(), f.spec, f.base, Output{LayoutDir: out, Tag: "1",
				Registry: &RegistryOutput{Blobs: blobs, Metadata: meta, Repo: "default/svc", Tags: []string{"1"}}})
			if err == nil {
				t.Fatal("the build succeeded")
			}
			if atelier.ErrorCode(err) != tt.code {
				t.Errorf("code %s, want %s: %v", atelier.ErrorCode(err), tt.code, err)
			}
			for _, s := range tt.contains {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not say %q", err, s)
				}
			}
			if tt.inLog != "" && (!strings.Contains(res.Log, tt.inLog) || !strings.Contains(err.Error(), tt.inLog)) {
				t.Errorf("pip's error %q is not in the log and the error:\n%s", tt.inLog, res.Log)
			}
			if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the failed build wrote its output (%v)", err)
			}
			if repos, err := meta.Repositories(context.Background(), "", -1); err != nil || len(repos) != 0 {
				t.Errorf("the failed build left repositories %v (%v)", repos, err)
			}
		})
	}
	for name, path := range map[string]string{"layout": MustBaseImage(t, arm, "3.11"), "oci-archive": mustTarDir(t, MustBaseImage(t, arm, "3.11"))} {
		t.Run("import base for another architecture from an "+name, func(t *testing.T) {
			_, err := ImportBase(context.Background(), path, DefaultPlatform())
			if atelier.ErrorCode(err) != atelier.EINVALID || !strings.Contains(fmt.Sprint(err), "is for "+arm.OS+"/"+arm.Architecture) {
				t.Fatalf("got %v", err)
			}
		})
	}
}

// TestRunImage unpacks the built image's layers into a directory and runs its entrypoint with
// the host's Python, the image's paths remapped under that directory: init() reads the model
// through AZUREML_MODEL_DIR, run() imports the dependency installed by pip, and the answers
// come over HTTP.
func TestRunImage(t *testing.T) {
	f := newFixture(t)
	out := filepath.Join(t.TempDir(), "out")
	res, err := Build(context.Background(), f.spec, f.base, Output{LayoutDir: out, Tag: "1"})
	if err != nil {
		t.Fatalf("%v\n%s", err, res.Log)
	}
	img := readLayout(t, out, "1")
	root := t.TempDir()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		mustUntar(t, rc, root)
		rc.Close()
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	// The image's absolute paths, found under root.
	remap := func(v string) string {
		parts := strings.Split(v, ":")
		for i, p := range parts {
			if strings.HasPrefix(p, "/var/") || strings.HasPrefix(p, "/opt/") {
				parts[i] = filepath.Join(root, p)
			}
		}
		return strings.Join(parts, ":")
	}
	env := []string{"PATH=" + os.Getenv("PATH"), "ATELIER_SCORE_HOST=127.0.0.1", "ATELIER_SCORE_PORT=0"}
	for _, kv := range cfg.Config.Env {
		k, v, _ := strings.Cut(kv, "=")
		if k != "PATH" {
			env = append(env, k+"="+remap(v))
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := exec.CommandContext(ctx, MustPython(t), remap(cfg.Config.Entrypoint[1]))
	var stderr lockedBuffer
	cmd.Env, cmd.Dir, cmd.Stderr = env, remap(cfg.Config.WorkingDir), &stderr
	defer func() {
		if t.Failed() {
			t.Logf("the runtime's stderr:\n%s", stderr.String())
		}
	}()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer cancel()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("the runtime did not start: %v", err)
	}
	addr := strings.TrimSpace(line[strings.LastIndex(line, " "):])
	resp, err := http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "Healthy" {
		t.Fatalf("GET /: %d %q", resp.StatusCode, body)
	}
	resp, err = http.Post("http://"+addr+"/score", "application/json", bytes.NewBufferString(`{"data": [1, 2, 3], "name": "ana"}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	var got map[string]any
	if err := json.Unmarshal(body, &got); err != nil || resp.StatusCode != 200 {
		t.Fatalf("POST /score: %d %s", resp.StatusCode, body)
	}
	if got["result"] != float64(60) || got["greeting"] != "hello ana" || got["version"] != "1" {
		t.Fatalf("POST /score answered %v", got)
	}
	resp, err = http.Post("http://"+addr+"/score", "application/json", bytes.NewBufferString(`not json`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 500 {
		t.Fatalf("a failing run() answered %d", resp.StatusCode)
	}
	// The traceback reaches us through a pipe: wait for it rather than expect it at once.
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(stderr.String(), "JSONDecodeError"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("run()'s traceback is not in the runtime's log:\n%s", stderr.String())
		}
	}
}

func mustUntar(t *testing.T, r io.Reader, root string) {
	t.Helper()
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		name := filepath.Join(root, h.Name)
		if !strings.HasPrefix(name, root) {
			t.Fatalf("%s escapes the root", h.Name)
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(name, 0o755); err != nil {
				t.Fatal(err)
			}
		case tar.TypeReg:
			os.MkdirAll(filepath.Dir(name), 0o755)
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(name, b, os.FileMode(h.Mode)); err != nil {
				t.Fatal(err)
			}
		case tar.TypeSymlink:
			os.Symlink(h.Linkname, name)
		}
	}
}

// TestSkopeo has a real client read the built layout: skopeo inspects the image and copies it
// into a docker-archive, checking every blob on the way.
func TestSkopeo(t *testing.T) {
	skopeo, err := exec.LookPath("skopeo")
	if err != nil {
		t.Skip("skopeo is not installed (apt-get install skopeo)")
	}
	f := newFixture(t)
	out := filepath.Join(t.TempDir(), "out")
	res, err := Build(context.Background(), f.spec, f.base, Output{LayoutDir: out, Tag: "1"})
	if err != nil {
		t.Fatalf("%v\n%s", err, res.Log)
	}
	b, err := exec.Command(skopeo, "inspect", "--raw", "oci:"+out+":1").CombinedOutput()
	if err != nil {
		t.Fatalf("skopeo inspect: %v\n%s", err, b)
	}
	if got := registry.DigestOf("sha256", b); string(got) != res.Digest {
		t.Fatalf("skopeo reads manifest %s, the build made %s", got, res.Digest)
	}
	archive := filepath.Join(t.TempDir(), "img.tar")
	if b, err := exec.Command(skopeo, "copy", "oci:"+out+":1", "docker-archive:"+archive+":atelier/diabetes-svc:1").CombinedOutput(); err != nil {
		t.Fatalf("skopeo copy: %v\n%s", err, b)
	}
	// And the archive is a base the builder can import again.
	if _, err := ImportBase(context.Background(), archive, DefaultPlatform()); err != nil {
		t.Fatal(err)
	}
}

// TestEpochAndModels: a spec's epoch is every time in the image (and changes its digest); with
// two models AZUREML_MODEL_DIR is the models root, each model under <name>/<version>.
func TestEpochAndModels(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	zero, err := Build(ctx, f.spec, f.base, Output{LayoutDir: filepath.Join(t.TempDir(), "out"), Tag: "1"})
	if err != nil {
		t.Fatal(err)
	}
	second := filepath.Join(f.dir, "model2")
	if err := os.MkdirAll(filepath.Join(second, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, filepath.Join(second, "sub", "weights.bin"), "w")
	f.spec.Models = append(f.spec.Models, Model{Name: "encoder", Version: "12", Dir: second})
	f.spec.Epoch = time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	res, err := Build(ctx, f.spec, f.base, Output{LayoutDir: filepath.Join(t.TempDir(), "out"), Tag: "1"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Digest == zero.Digest {
		t.Fatal("another epoch and model gave the same image")
	}
	cfg, err := res.Image.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Config.Labels["org.opencontainers.image.created"]; got != "2024-01-02T03:04:05Z" || !cfg.Created.Time.Equal(f.spec.Epoch) {
		t.Errorf("created %v, label %q", cfg.Created, got)
	}
	if got := cfg.Config.Labels[LabelModels]; got != "diabetes:3,encoder:12" {
		t.Errorf("models label %q", got)
	}
	if !slices.Contains(cfg.Config.Env, "AZUREML_MODEL_DIR="+ModelsDir) {
		t.Errorf("env %q: with two models AZUREML_MODEL_DIR is the models root", cfg.Config.Env)
	}
	layers, _ := res.Image.Layers()
	rc, err := layers[3].Uncompressed() // base, deps, runtime, models
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if !h.ModTime.Equal(f.spec.Epoch) {
			t.Errorf("%s: mtime %v", h.Name, h.ModTime)
		}
		names = append(names, h.Name)
	}
	for _, want := range []string{"var/azureml-app/azureml-models/diabetes/3/model.json", "var/azureml-app/azureml-models/encoder/12/sub/weights.bin"} {
		if !slices.Contains(names, want) {
			t.Errorf("the models layer %q lacks %s", names, want)
		}
	}
}
