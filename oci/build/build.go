// Package build is atelier's daemonless image builder: a base image plus a scoring script, its
// Python dependencies and registered models become an OCI image, without Docker or Podman.
// Images are reproducible (equal inputs give an equal manifest digest) and each layer is cached
// on disk by the digest of its inputs, so a rebuild after a change to score.py only writes the
// source layer.
package build

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/python"
	"github.com/atelier-ml/atelier/sandbox"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sync/errgroup"
)

// Where things go in the image, as Azure ML places them.
const (
	AppDir        = "/var/azureml-app"
	ModelsDir     = AppDir + "/azureml-models"
	SitePackages  = "/opt/atelier/site-packages"
	RuntimeScript = "/opt/atelier/runtime/atelier_runtime.py"
	ScoringPort   = "5001/tcp"
)

// Labels a base image may carry to say where its Python is and which version it is (the
// official python images say the version in PYTHON_VERSION instead, which is read too).
const (
	LabelPython        = "ai.atelier.python"
	LabelPythonVersion = "ai.atelier.python.version"
	LabelModels        = "ai.atelier.models"
	LabelEntryScript   = "ai.atelier.entry-script"
)

// Model is a registered model's files, placed at ModelsDir/<Name>/<Version>/.
type Model struct {
	Name    string
	Version string
	Dir     string // host directory holding the model's files
}

// Spec is what an image is built from, and where the builder keeps its cache.
type Spec struct {
	Name, Version string // the image's name and version, for its labels
	// SourceDir is copied to AppDir; EntryScript (relative to it) is the score.py.
	SourceDir   string
	EntryScript string
	// Requirements is a requirements.txt installed for the base's Python; optional. pip
	// resolves it (binary wheels only) and the builder installs each wheel as a layer of its
	// own. PipArgs are added to pip's command line (an index URL, or --no-index --find-links
	// DIR); they are part of the resolution's cache key, what the index serves is not: pin
	// versions.
	Requirements string
	PipArgs      []string
	Models       []Model
	// Platform is what the image must run on (DefaultPlatform when empty); the base must match.
	Platform v1.Platform
	// PythonVersion ("3.11") and Python (the interpreter in the image) default to what the base
	// declares (LabelPythonVersion or PYTHON_VERSION; LabelPython, else python3 on its PATH).
	PythonVersion string
	Python        string
	// Epoch is every timestamp in the image (tar entries, created): the Unix epoch when zero,
	// like SOURCE_DATE_EPOCH=0.
	Epoch  time.Time
	Labels map[string]string

	// CacheDir keeps built layers; required. ToolsDir keeps the builder's own tools (its pip,
	// see builderPip): the directory "build-tools" beside CacheDir when empty.
	CacheDir string
	ToolsDir string
	// HostPython runs pip and the entry-script check ("python3" when empty). The real
	// executable behind it is used: a shim such as pyenv's rehashes its shims after every pip
	// install, which fails when two builds do it at once.
	HostPython string
	// Log receives the build log as it happens (it is in Result.Log too).
	Log io.Writer
	// Isolation confines pip, which is third-party code fed archives from an index; nil
	// confines nothing.
	Isolation *Isolation
}

// Isolation confines the pip of a build as compute/local confines a run's installers (see
// package sandbox for the layers): it may write only the directory it installs into, and reads
// neither what Hide lists (the server's data) nor, with a user of its own, anything that user
// may not read. With --only-binary=:all: pip runs no package's build code, but it unpacks what
// the index serves and runs with the server's privileges otherwise.
type Isolation struct {
	Launcher *sandbox.Launcher
	Hide     []string
	// ReadOnly lists what pip must read even inside Hide or another user's home: the host
	// interpreter's prefix, a --find-links directory (PipArgs name paths absolutely when
	// confined: pip runs in its target directory).
	ReadOnly []string
}

// confine rewrites cmd to run confined, writing only to target; nil confines nothing.
func (iso *Isolation) confine(cmd *exec.Cmd, target string, ro ...string) error {
	if iso == nil || iso.Launcher == nil {
		return nil
	}
	if uid, gid, ok := iso.Launcher.Owner(); ok {
		if err := os.Chown(target, uid, gid); err != nil {
			return fmt.Errorf("handing pip its target directory: %w", err)
		}
	}
	cmd.Dir = target
	return iso.Launcher.Wrap(cmd, sandbox.Policy{Hide: iso.Hide, ReadWrite: []string{target}, ReadOnly: append(ro, iso.ReadOnly...)})
}

// LayerResult says how one added layer was obtained.
type LayerResult struct {
	Name     string // "deps NAME VERSION" (one per wheel), runtime, models, source
	Digest   string
	Size     int64
	Cached   bool
	Duration time.Duration
}

// Result describes a built image.
type Result struct {
	Image  v1.Image
	Digest string // the manifest's digest
	Size   int64  // manifest, config and layers
	Layers []LayerResult
	Log    string
}

// Build builds the image of spec on base and writes it to out. Nothing is written to out unless
// the whole image was built; errors about the inputs are EINVALID (or ENOTFOUND) and name what
// is wrong, and a failed pip install returns its output in the error and in Result.Log.
func Build(ctx context.Context, spec Spec, base v1.Image, out Output) (Result, error) {
	var logBuf lockedBuffer
	logw := io.Writer(&logBuf)
	if spec.Log != nil {
		logw = io.MultiWriter(&logBuf, spec.Log)
	}
	b := &builder{spec: spec, log: &syncWriter{w: logw}}
	res, err := b.build(ctx, base, out)
	res.Log = logBuf.String()
	// A full disk is the operator's problem, not a bug: ENOSPACE says so.
	return res, atelier.StorageFull(err)
}

// hostPythons remembers the executable behind each host interpreter name: asking costs a
// Python start, and builds are meant to take a tenth of a second.
var hostPythons sync.Map // name -> string

func hostPython(ctx context.Context, name string) (string, error) {
	if exe, ok := hostPythons.Load(name); ok {
		return exe.(string), nil
	}
	exe, _, err := python.Resolve(ctx, name)
	if err != nil {
		return "", fmt.Errorf("build: the host's Python: %w", err)
	}
	hostPythons.Store(name, exe)
	return exe, nil
}

type builder struct {
	spec   Spec
	log    io.Writer
	cache  *cache
	client *http.Client // fetches wheels
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

func (b *builder) validate() error {
	s := &b.spec
	if s.CacheDir == "" {
		return atelier.Errorf(atelier.EINVALID, "build: no layer cache directory")
	}
	if s.EntryScript == "" {
		return atelier.Errorf(atelier.EINVALID, "no entry script")
	}
	if filepath.IsAbs(s.EntryScript) || !filepath.IsLocal(s.EntryScript) {
		return atelier.Errorf(atelier.EINVALID, "entry script %q: must be a path inside the source directory", s.EntryScript)
	}
	if s.SourceDir == "" {
		return atelier.Errorf(atelier.EINVALID, "no source directory")
	}
	if fi, err := os.Stat(s.SourceDir); err != nil || !fi.IsDir() {
		return atelier.Errorf(atelier.ENOTFOUND, "source directory %s: not found", s.SourceDir)
	}
	if fi, err := os.Stat(filepath.Join(s.SourceDir, s.EntryScript)); err != nil || !fi.Mode().IsRegular() {
		return atelier.Errorf(atelier.ENOTFOUND, "entry script %s: not found in the source directory %s", s.EntryScript, s.SourceDir)
	}
	if s.Requirements != "" {
		if fi, err := os.Stat(s.Requirements); err != nil || !fi.Mode().IsRegular() {
			return atelier.Errorf(atelier.ENOTFOUND, "requirements file %s: not found", s.Requirements)
		}
	}
	seen := map[string]bool{}
	for _, m := range s.Models {
		if !nameRE.MatchString(m.Name) || !nameRE.MatchString(m.Version) {
			return atelier.Errorf(atelier.EINVALID, "model %q version %q: names and versions are letters, digits, '.', '_' and '-'", m.Name, m.Version)
		}
		if seen[m.Name+":"+m.Version] {
			return atelier.Errorf(atelier.EINVALID, "model %s:%s is listed twice", m.Name, m.Version)
		}
		seen[m.Name+":"+m.Version] = true
		if fi, err := os.Stat(m.Dir); err != nil || !fi.IsDir() {
			return atelier.Errorf(atelier.ENOTFOUND, "model %s:%s: its files (%s) are not found", m.Name, m.Version, m.Dir)
		}
	}
	if s.Platform.OS == "" {
		s.Platform = DefaultPlatform()
	}
	if s.HostPython == "" {
		s.HostPython = "python3"
	}
	if s.ToolsDir == "" {
		s.ToolsDir = filepath.Join(filepath.Dir(filepath.Clean(s.CacheDir)), "build-tools")
	}
	if s.Epoch.IsZero() {
		s.Epoch = time.Unix(0, 0)
	}
	s.Epoch = s.Epoch.UTC().Truncate(time.Second)
	return nil
}

func (b *builder) build(ctx context.Context, base v1.Image, out Output) (Result, error) {
	start := time.Now()
	if err := b.validate(); err != nil {
		return Result{}, err
	}
	if err := out.validate(); err != nil {
		return Result{}, err
	}
	host, err := hostPython(ctx, b.spec.HostPython)
	if err != nil {
		return Result{}, err
	}
	b.spec.HostPython = host
	if err := checkPlatform(base, b.spec.Platform); err != nil {
		return Result{}, err
	}
	baseCfg, err := base.ConfigFile()
	if err != nil {
		return Result{}, atelier.Errorf(atelier.EINVALID, "base image: unreadable config: %v", err)
	}
	python, pyVersion := b.python(baseCfg)
	if b.spec.Requirements != "" && pyVersion == "" {
		return Result{}, atelier.Errorf(atelier.EINVALID, "the base image does not say its Python version (label %s or env PYTHON_VERSION): give the Python version to install requirements for", LabelPythonVersion)
	}
	if b.cache, err = openCache(b.spec.CacheDir); err != nil {
		return Result{}, err
	}

	// The layers are independent: built (or found in the cache) at the same time. The
	// requirements give a layer per wheel.
	type step struct {
		name string
		make func(context.Context) ([]builtLayer, error)
	}
	var steps []step
	if b.spec.Requirements != "" {
		steps = append(steps, step{"deps", func(ctx context.Context) ([]builtLayer, error) { return b.depsLayers(ctx, python, pyVersion) }})
	}
	for _, s := range []struct {
		name  string
		files func() (*layerFiles, error)
	}{{"runtime", b.runtimeFiles}, {"models", b.modelFiles}, {"source", b.sourceFiles}} {
		steps = append(steps, step{s.name, func(ctx context.Context) ([]builtLayer, error) {
			t0 := time.Now()
			l, cached, err := b.filesLayer(ctx, s.name, s.files)
			if err != nil {
				return nil, err
			}
			return []builtLayer{{name: s.name, l: l, cached: cached, took: time.Since(t0)}}, nil
		}})
	}
	built := make([][]builtLayer, len(steps))
	g, gctx := errgroup.WithContext(ctx)
	// The entry script is checked (a Python start) while the layers are built; its error
	// stops them.
	g.Go(func() error {
		return checkEntry(gctx, b.spec.HostPython, filepath.Join(b.spec.SourceDir, b.spec.EntryScript))
	})
	// A registry output stores each layer's blob as soon as it is built (IO while the other
	// layers compress); the push then finds them there.
	var stores sync.WaitGroup
	defer stores.Wait()
	sctx, scancel := context.WithCancel(ctx)
	defer scancel() // before the Wait above: a failed build stops storing
	for i, st := range steps {
		g.Go(func() error {
			ls, err := st.make(gctx)
			if err != nil {
				return err
			}
			built[i] = ls
			for _, bl := range ls {
				if out.Registry != nil && !bl.cached {
					stores.Go(func() { out.Registry.storeBlob(sctx, bl.l) })
				}
				how := "built"
				if bl.cached {
					how = "cached"
				}
				fmt.Fprintf(b.log, "layer %s: %s %s (%d bytes) in %s\n", bl.name, how, bl.l.meta.Digest, bl.l.meta.Size, bl.took.Round(time.Millisecond))
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return Result{}, err
	}
	stores.Wait()
	var layers []*cachedLayer
	var results []LayerResult
	for _, ls := range built {
		for _, bl := range ls {
			layers = append(layers, bl.l)
			results = append(results, LayerResult{Name: bl.name, Digest: bl.l.meta.Digest.String(), Size: bl.l.meta.Size, Cached: bl.cached, Duration: bl.took})
		}
	}

	img, err := b.assemble(base, baseCfg, python, layers, results)
	if err != nil {
		return Result{}, err
	}
	res := Result{Image: img, Layers: results}
	d, err := img.Digest()
	if err != nil {
		return Result{}, err
	}
	res.Digest = d.String()
	if res.Size, err = imageSize(img); err != nil {
		return Result{}, err
	}
	files := map[v1.Hash]string{}
	for _, l := range layers {
		files[l.meta.Digest] = l.path
	}
	t0 := time.Now()
	if err := out.write(ctx, img, files); err != nil {
		return res, err
	}
	fmt.Fprintf(b.log, "image %s (%d bytes) built in %s (written out in %s)\n", res.Digest, res.Size, time.Since(start).Round(time.Millisecond), time.Since(t0).Round(time.Millisecond))
	return res, nil
}

// python returns the image's interpreter and its major.minor version ("" when unknown).
func (b *builder) python(cfg *v1.ConfigFile) (string, string) {
	python, version := b.spec.Python, b.spec.PythonVersion
	if python == "" {
		python = cfg.Config.Labels[LabelPython]
	}
	if python == "" {
		python = "python3"
	}
	if version == "" {
		version = cfg.Config.Labels[LabelPythonVersion]
	}
	if version == "" {
		version = envValue(cfg.Config.Env, "PYTHON_VERSION")
	}
	if parts := strings.Split(version, "."); len(parts) > 2 {
		version = parts[0] + "." + parts[1]
	}
	return python, version
}

// filesLayer returns the layer of the files make collects, from the cache when it holds it.
func (b *builder) filesLayer(ctx context.Context, name string, collect func() (*layerFiles, error)) (*cachedLayer, bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	files, err := collect()
	if err != nil {
		return nil, false, err
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s\nepoch %d\n", layerFormat, name, b.spec.Epoch.Unix())
	if err := files.digestInputs(h); err != nil {
		return nil, false, fmt.Errorf("layer %s: %w", name, err)
	}
	key := name + "-" + hex.EncodeToString(h.Sum(nil))
	if l, err := b.cache.get(key); l != nil || err != nil {
		return l, true, err
	}
	l, err := b.cache.put(key, nil, func(w io.Writer) error { return files.writeTar(w, b.spec.Epoch) })
	if err != nil {
		return nil, false, fmt.Errorf("layer %s: %w", name, err)
	}
	return l, false, nil
}

func (b *builder) runtimeFiles() (*layerFiles, error) {
	f := newLayerFiles()
	dir := path.Dir(strings.TrimPrefix(RuntimeScript, "/"))
	err := fs.WalkDir(runtimeFS, "runtime", func(name string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		// Bytecode a local run of the runtime may have left beside its sources is no part of it.
		if d.IsDir() && d.Name() == "__pycache__" {
			return fs.SkipDir
		}
		if d.IsDir() || strings.HasSuffix(name, ".pyc") {
			return nil
		}
		data, err := runtimeFS.ReadFile(name)
		if err != nil {
			return err
		}
		f.addData(path.Join(dir, strings.TrimPrefix(name, "runtime/")), data, false)
		return nil
	})
	return f, err
}

func (b *builder) modelFiles() (*layerFiles, error) {
	f := newLayerFiles()
	f.entries[strings.TrimPrefix(ModelsDir, "/")] = &entry{name: strings.TrimPrefix(ModelsDir, "/"), dir: true}
	f.addParents(strings.TrimPrefix(ModelsDir, "/"))
	for _, m := range b.spec.Models {
		if err := f.addTree(path.Join(strings.TrimPrefix(ModelsDir, "/"), m.Name, m.Version), m.Dir); err != nil {
			return nil, fmt.Errorf("model %s:%s: %w", m.Name, m.Version, err)
		}
	}
	return f, nil
}

func (b *builder) sourceFiles() (*layerFiles, error) {
	f := newLayerFiles()
	if err := f.addTree(strings.TrimPrefix(AppDir, "/"), b.spec.SourceDir); err != nil {
		return nil, fmt.Errorf("source directory: %w", err)
	}
	// The models have a layer of their own; a source directory holding an azureml-models
	// directory would hide them.
	for name := range f.entries {
		if name == strings.TrimPrefix(ModelsDir, "/") || strings.HasPrefix(name, strings.TrimPrefix(ModelsDir, "/")+"/") {
			return nil, atelier.Errorf(atelier.EINVALID, "source directory %s: holds azureml-models, where the image's models go", b.spec.SourceDir)
		}
	}
	return f, nil
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}

// assemble puts the layers on the base and writes the config. The result is an OCI image
// whatever the base was (docker media types are translated).
func (b *builder) assemble(base v1.Image, baseCfg *v1.ConfigFile, python string, layers []*cachedLayer, results []LayerResult) (v1.Image, error) {
	baseDigest, err := base.Digest()
	if err != nil {
		return nil, err
	}
	img, err := ociLayers(base)
	if err != nil {
		return nil, err
	}
	created := v1.Time{Time: b.spec.Epoch}
	adds := make([]mutate.Addendum, len(layers))
	for i, l := range layers {
		layer, err := l.layer()
		if err != nil {
			return nil, err
		}
		adds[i] = mutate.Addendum{Layer: layer, MediaType: types.OCILayer,
			History: v1.History{Created: created, CreatedBy: "atelier build: " + results[i].Name}}
	}
	if img, err = mutate.Append(img, adds...); err != nil {
		return nil, err
	}
	cfgFile, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cfgFile = cfgFile.DeepCopy()
	cfgFile.Created = created
	cfgFile.OS, cfgFile.Architecture, cfgFile.Variant = b.spec.Platform.OS, b.spec.Platform.Architecture, baseCfg.Variant
	c := &cfgFile.Config
	c.Entrypoint = []string{python, RuntimeScript}
	c.Cmd = nil
	c.WorkingDir = AppDir
	c.ExposedPorts = map[string]struct{}{ScoringPort: {}}
	c.Env = setEnv(c.Env, "AZUREML_MODEL_DIR", b.modelDir())
	c.Env = setEnv(c.Env, "AZUREML_ENTRY_SCRIPT", path.Join(AppDir, filepath.ToSlash(b.spec.EntryScript)))
	c.Env = setEnv(c.Env, "PYTHONUNBUFFERED", "1")
	// A container's runtime listens on every address of its own network namespace, so that
	// `podman run -p` reaches it (the runtime alone binds 127.0.0.1 by default).
	c.Env = setEnv(c.Env, "ATELIER_SCORE_HOST", "0.0.0.0")
	if b.spec.Requirements != "" {
		pp := SitePackages
		if old := envValue(baseCfg.Config.Env, "PYTHONPATH"); old != "" {
			pp += ":" + old
		}
		c.Env = setEnv(c.Env, "PYTHONPATH", pp)
	}
	labels := map[string]string{}
	for k, v := range baseCfg.Config.Labels {
		labels[k] = v
	}
	var models []string
	for _, m := range b.spec.Models {
		models = append(models, m.Name+":"+m.Version)
	}
	sort.Strings(models)
	labels["org.opencontainers.image.created"] = b.spec.Epoch.Format(time.RFC3339)
	labels["org.opencontainers.image.title"] = b.spec.Name
	labels["org.opencontainers.image.version"] = b.spec.Version
	labels["org.opencontainers.image.base.digest"] = baseDigest.String()
	labels[LabelModels] = strings.Join(models, ",")
	labels[LabelEntryScript] = filepath.ToSlash(b.spec.EntryScript)
	for k, v := range b.spec.Labels {
		labels[k] = v
	}
	for k, v := range labels {
		if v == "" {
			delete(labels, k)
		}
	}
	c.Labels = labels
	if img, err = mutate.ConfigFile(img, cfgFile); err != nil {
		return nil, err
	}
	img = mutate.MediaType(img, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	return img, nil
}

// modelDir is AZUREML_MODEL_DIR as Azure ML sets it: the model's own directory when the image
// holds one model (score.py files join it with the file name), the models root otherwise.
func (b *builder) modelDir() string {
	if len(b.spec.Models) == 1 {
		m := b.spec.Models[0]
		return path.Join(ModelsDir, m.Name, m.Version)
	}
	return ModelsDir
}

func setEnv(env []string, key, value string) []string {
	out := make([]string, 0, len(env)+1)
	for _, kv := range env {
		if k, _, _ := strings.Cut(kv, "="); k != key {
			out = append(out, kv)
		}
	}
	return append(out, key+"="+value)
}

func envValue(env []string, key string) string {
	for _, kv := range env {
		if k, v, _ := strings.Cut(kv, "="); k == key {
			return v
		}
	}
	return ""
}

func imageSize(img v1.Image) (int64, error) {
	m, err := img.Manifest()
	if err != nil {
		return 0, err
	}
	raw, err := img.RawManifest()
	if err != nil {
		return 0, err
	}
	n := int64(len(raw)) + m.Config.Size
	for _, l := range m.Layers {
		n += l.Size
	}
	return n, nil
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// syncWriter serializes the concurrent layer steps' writes to the log.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
