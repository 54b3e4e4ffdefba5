package build

// The dependencies layers: pip resolves the requirements without installing them (a dry run
// that reports each wheel's URL and sha256), then the builder fetches the wheels itself, in
// parallel, and writes each one straight into a layer of its own as `pip install --target`
// would have laid it out: zip → tar → gzip, with no tree on disk. A layer per wheel is cached by
// the wheel's sha256, so another image needing the same numpy reuses its layer.

import (
	"archive/zip"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strings"
	"time"

	kflate "github.com/klauspost/compress/flate"
	"golang.org/x/sync/errgroup"

	"github.com/atelier-ml/atelier"
)

// wheelFormat names how a wheel is laid out in its layer (pip --target's layout, launchers,
// INSTALLER, RECORD); it is part of each wheel layer's cache key.
const wheelFormat = "wheel-target-v2"

// wheelRef is one wheel pip chose: where it is and its sha256 (hex).
type wheelRef struct {
	Name      string `json:"name"`
	Version   string `json:"version"`
	URL       string `json:"url"`
	SHA256    string `json:"sha256"`
	Requested bool   `json:"requested,omitempty"`
}

// file is the wheel's file name, from its URL.
func (w wheelRef) file() string {
	u, err := url.Parse(w.URL)
	if err != nil {
		return path.Base(w.URL)
	}
	return path.Base(u.Path)
}

// pipReport is the part of pip's installation report (`pip install --dry-run --report`) read here.
type pipReport struct {
	Install []struct {
		DownloadInfo struct {
			URL         string `json:"url"`
			ArchiveInfo *struct {
				Hash   string            `json:"hash"`
				Hashes map[string]string `json:"hashes"`
			} `json:"archive_info"`
		} `json:"download_info"`
		Requested bool `json:"requested"`
		Metadata  struct {
			Name    string `json:"name"`
			Version string `json:"version"`
		} `json:"metadata"`
	} `json:"install"`
}

func parseReport(data []byte, upstream func(string) string) ([]wheelRef, error) {
	var r pipReport
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("pip's report: %w", err)
	}
	var refs []wheelRef
	for _, it := range r.Install {
		w := wheelRef{Name: it.Metadata.Name, Version: it.Metadata.Version, URL: upstream(it.DownloadInfo.URL), Requested: it.Requested}
		if ai := it.DownloadInfo.ArchiveInfo; ai != nil {
			w.SHA256 = ai.Hashes["sha256"]
			if h, ok := strings.CutPrefix(ai.Hash, "sha256="); ok && w.SHA256 == "" {
				w.SHA256 = h
			}
		}
		if !strings.HasSuffix(w.file(), ".whl") || it.DownloadInfo.ArchiveInfo == nil {
			return nil, atelier.Errorf(atelier.EINVALID, "%s %s: pip chose %s, which is not a binary wheel (only wheels are installed)", w.Name, w.Version, w.URL)
		}
		if w.SHA256 != "" && !sha256RE.MatchString(w.SHA256) {
			return nil, atelier.Errorf(atelier.EINVALID, "%s %s: pip's report gives the sha256 %q", w.Name, w.Version, w.SHA256)
		}
		refs = append(refs, w)
	}
	// The image's layer order must not depend on pip's.
	sort.Slice(refs, func(i, j int) bool { return refs[i].Name < refs[j].Name })
	return refs, nil
}

var sha256RE = regexp.MustCompile(`^[0-9a-f]{64}$`)

// resolve returns the wheels the requirements need, as pip resolves them for the image's Python
// and platform. The answer is cached under the requirements, pip's arguments, the Python version
// and the platform (as the whole dependencies layer was): what the index serves is not part of
// the key, so pin versions.
func (b *builder) resolve(ctx context.Context, req []byte, reqFile, pyVersion string, platforms []string, pre *prefetcher) ([]wheelRef, error) {
	h := sha256.New()
	fmt.Fprintf(h, "%s\nresolve\npython %s\nplatform %s\nargs %q\n", wheelFormat, pyVersion, platformString(&b.spec.Platform), b.spec.PipArgs)
	h.Write(req)
	cached := filepath.Join(b.cache.dir, "resolve-"+hex.EncodeToString(h.Sum(nil))+".json")
	if data, err := os.ReadFile(cached); err == nil {
		var refs []wheelRef
		if json.Unmarshal(data, &refs) == nil {
			fmt.Fprintf(b.log, "pip resolution: cached (%d wheels)\n", len(refs))
			return refs, nil
		}
	}
	target, err := os.MkdirTemp(b.cache.dir, "pip-*.tmp")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(target)
	// pip may run in the target directory (confined as another user, the caller's may be out
	// of its reach): the requirements are named absolutely.
	reqPath, err := filepath.Abs(reqFile)
	if err != nil {
		return nil, err
	}
	report := filepath.Join(target, "report.json")
	args, env := b.spec.PipArgs, os.Environ()
	view, err := b.startIndexView(ctx, pre, pyVersion)
	if err != nil {
		return nil, err
	}
	defer view.close()
	if view != nil {
		for _, line := range strings.Split(string(req), "\n") {
			view.warm(requirementName(line))
		}
		t0 := time.Now()
		if refs, why := b.resolvePinned(ctx, req, view, pyVersion); refs != nil {
			fmt.Fprintf(b.log, "resolved without pip in %s: every requirement is pinned and the pins hold their dependencies (%d wheels)\n",
				time.Since(t0).Round(time.Millisecond), len(refs))
			if data, err := json.Marshal(refs); err == nil {
				if err := writeFileAtomic(cached, data); err != nil {
					return nil, err
				}
			}
			return refs, nil
		} else {
			fmt.Fprintf(b.log, "pip resolves: %s\n", why)
		}
		args, env = view.args(), view.env(env)
		fmt.Fprintf(b.log, "pip reads %s through the builder's view of it (%s): the image's wheels only, their metadata, no wheel downloaded to resolve\n",
			strings.Join(redacted(view.indexes), ", "), view.root)
	}
	ro := []string{reqPath}
	if home := b.pipHome(ctx, pre); home != "" {
		env = append(slices.DeleteFunc(env, func(kv string) bool { return strings.HasPrefix(kv, "PYTHONPATH=") }), "PYTHONPATH="+home)
		ro = append(ro, home)
	}
	cmd := exec.CommandContext(ctx, b.spec.HostPython, pipArgs(target, report, reqPath, pyVersion, platforms, args)...)
	var out bytes.Buffer
	cmd.Stdout = io.MultiWriter(&out, b.log, pre)
	cmd.Stderr = cmd.Stdout
	// pip must not read the user's configuration or write a cache outside the build.
	cmd.Env = append(env, "PIP_CONFIG_FILE="+os.DevNull, "PIP_NO_CACHE_DIR=1", "PYTHONDONTWRITEBYTECODE=1")
	if err := b.spec.Isolation.confine(cmd, target, ro...); err != nil {
		return nil, fmt.Errorf("layer deps: confining pip: %w", err)
	}
	fmt.Fprintf(b.log, "pip resolve for Python %s on %s\n", pyVersion, platformString(&b.spec.Platform))
	t0 := time.Now()
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, atelier.Errorf(atelier.EINVALID, "installing %s failed (%v):\n%s", filepath.Base(b.spec.Requirements), err, tail(out.String(), 4096))
	}
	data, err := os.ReadFile(report)
	if err != nil {
		return nil, fmt.Errorf("layer deps: pip wrote no report: %w", err)
	}
	refs, err := parseReport(data, view.upstream)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(b.log, "pip resolve took %s: %d wheels\n", time.Since(t0).Round(time.Millisecond), len(refs))
	if data, err := json.Marshal(refs); err == nil {
		if err := writeFileAtomic(cached, data); err != nil {
			return nil, err
		}
	}
	return refs, nil
}

// localRoots are the directories a file: URL in pip's report may point into: what PipArgs name
// (--find-links DIR, file: URLs), the host's PIP_FIND_LINKS and the requirements' directory.
// The builder reads those files with its own rights, not pip's: a report naming any other
// local file is refused.
func (b *builder) localRoots() []string {
	var roots []string
	add := func(s string) {
		if u, err := url.Parse(s); err == nil && u.Scheme == "file" {
			s = u.Path
		}
		if !filepath.IsAbs(s) && !strings.HasPrefix(s, "-") && !strings.Contains(s, "://") {
			s, _ = filepath.Abs(s) // pip, unconfined, runs in this directory
		}
		if filepath.IsAbs(s) {
			roots = append(roots, filepath.Clean(s))
		}
	}
	for _, a := range b.spec.PipArgs {
		if _, v, ok := strings.Cut(a, "="); ok && strings.HasPrefix(a, "-") {
			a = v
		}
		add(a)
	}
	for _, s := range strings.Fields(os.Getenv("PIP_FIND_LINKS")) {
		add(s)
	}
	if req, err := filepath.Abs(b.spec.Requirements); err == nil {
		roots = append(roots, filepath.Dir(req))
	}
	return roots
}

// wheelClient fetches the wheels: the system's trust store, plus the CA bundle pip is given
// (--cert FILE in the pip arguments, or PIP_CERT), so an index behind a private CA works for
// both.
func (b *builder) wheelClient() (*http.Client, error) {
	var bundles []string
	for i, a := range b.spec.PipArgs {
		if v, ok := strings.CutPrefix(a, "--cert="); ok {
			bundles = append(bundles, v)
		} else if a == "--cert" && i+1 < len(b.spec.PipArgs) {
			bundles = append(bundles, b.spec.PipArgs[i+1])
		}
	}
	if v := os.Getenv("PIP_CERT"); v != "" {
		bundles = append(bundles, v)
	}
	if len(bundles) == 0 {
		return http.DefaultClient, nil
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	for _, f := range bundles {
		pem, err := os.ReadFile(f)
		if err != nil {
			return nil, atelier.Errorf(atelier.EINVALID, "pip's CA bundle: %v", err)
		}
		pool.AppendCertsFromPEM(pem)
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = &tls.Config{RootCAs: pool}
	return &http.Client{Transport: t}, nil
}

// indexCredentials are the user names and passwords that URLs of the pip arguments carry
// (--index-url https://user:token@host/simple), by host: pip sends them for every file of that
// host, and its report names the files without them.
func (b *builder) indexCredentials() map[string]*url.Userinfo {
	creds := map[string]*url.Userinfo{}
	for _, a := range b.spec.PipArgs {
		if _, v, ok := strings.Cut(a, "="); ok && strings.HasPrefix(a, "-") {
			a = v
		}
		if u, err := url.Parse(a); err == nil && u.User != nil && (u.Scheme == "https" || u.Scheme == "http") {
			creds[u.Host] = u.User
		}
	}
	return creds
}

// fetchWheel returns the wheel's file, checked against the sha256 pip reported, and its sha256.
// A local wheel is read where it is; one from an index is downloaded into the cache directory,
// and remove deletes it.
func (b *builder) fetchWheel(ctx context.Context, w wheelRef, roots []string) (f *os.File, sum string, remove func(), err error) {
	u, err := url.Parse(w.URL)
	if err != nil {
		return nil, "", nil, atelier.Errorf(atelier.EINVALID, "%s: pip's report gives the URL %q: %v", w.file(), w.URL, err)
	}
	h := sha256.New()
	switch u.Scheme {
	case "file":
		p := filepath.Clean(u.Path)
		ok := false
		for _, r := range roots {
			if rel, err := filepath.Rel(r, p); err == nil && filepath.IsLocal(rel) {
				ok = true
			}
		}
		if !ok {
			return nil, "", nil, atelier.Errorf(atelier.EINVALID, "%s: pip chose the local file %s, outside the directories the pip arguments name", w.file(), p)
		}
		if f, err = os.Open(p); err != nil {
			return nil, "", nil, atelier.Errorf(atelier.EINVALID, "%s: %v", w.file(), err)
		}
		if _, err := io.Copy(h, f); err != nil {
			f.Close()
			return nil, "", nil, err
		}
		remove = func() { f.Close() }
	case "http", "https":
		req, err := http.NewRequestWithContext(ctx, "GET", w.URL, nil)
		if err != nil {
			return nil, "", nil, err
		}
		if u.User == nil {
			if user := b.indexCredentials()[u.Host]; user != nil {
				pw, _ := user.Password()
				req.SetBasicAuth(user.Username(), pw)
			}
		}
		client := b.client
		if client == nil {
			client = http.DefaultClient
		}
		resp, err := client.Do(req)
		if err != nil {
			return nil, "", nil, fmt.Errorf("fetching %s: %w", w.file(), err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, "", nil, fmt.Errorf("fetching %s from %s: %s", w.file(), u.Host, resp.Status)
		}
		if f, err = os.CreateTemp(b.cache.dir, "wheel-*.tmp"); err != nil {
			return nil, "", nil, err
		}
		remove = func() { f.Close(); os.Remove(f.Name()) }
		if _, err := io.Copy(io.MultiWriter(f, h), resp.Body); err != nil {
			remove()
			return nil, "", nil, fmt.Errorf("fetching %s: %w", w.file(), err)
		}
	default:
		return nil, "", nil, atelier.Errorf(atelier.EINVALID, "%s: pip chose %s: only https, http and file URLs are fetched", w.file(), w.URL)
	}
	sum = hex.EncodeToString(h.Sum(nil))
	if w.SHA256 != "" && sum != w.SHA256 {
		remove()
		return nil, "", nil, atelier.Errorf(atelier.EINVALID, "%s: its sha256 is %s, but pip's report (the index) says %s: refused", w.file(), sum, w.SHA256)
	}
	return f, sum, remove, nil
}

// builtLayer is one layer a build step produced.
type builtLayer struct {
	name   string
	l      *cachedLayer
	cached bool
	took   time.Duration
}

// depsLayers resolves the requirements with pip and returns one layer per wheel, in the order
// of the packages' names. Up to 8 wheels are fetched at once; up to 2×GOMAXPROCS layers are
// written (unzip, tar, gzip) at a time.
func (b *builder) depsLayers(ctx context.Context, python, pyVersion string) ([]builtLayer, error) {
	req, err := os.ReadFile(b.spec.Requirements)
	if err != nil {
		return nil, atelier.Errorf(atelier.EINVALID, "requirements file %s: %v", b.spec.Requirements, err)
	}
	reqPath := b.spec.Requirements
	req, left := withoutAzureMLSDK(req)
	if len(left) > 0 {
		fmt.Fprintf(b.log, "left out of the requirements: %s (the Azure ML SDK v1 and its inference server: atelier's scoring runtime provides what score.py imports of them, which they would hide)\n",
			strings.Join(left, ", "))
		if !hasRequirement(req) {
			return nil, nil
		}
		f, err := os.CreateTemp(b.cache.dir, "requirements-*.txt")
		if err != nil {
			return nil, err
		}
		defer os.Remove(f.Name())
		_, err = f.Write(req)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, err
		}
		reqPath = f.Name()
	}
	platforms := pipPlatforms(b.spec.Platform.Architecture)
	if platforms == nil {
		return nil, atelier.Errorf(atelier.EINVALID, "no Python wheels are known for the architecture %s", b.spec.Platform.Architecture)
	}
	roots := b.localRoots()
	if b.client, err = b.wheelClient(); err != nil {
		return nil, err
	}
	// Layers are written two stages at a time each (cache.put): as many layers as cores keeps
	// every core busy however the sizes fall, and the largest wheel need not wait for others.
	cpu := make(chan struct{}, 2*runtime.GOMAXPROCS(0))
	fetches := make(chan struct{}, 8)
	pctx, cancel := context.WithCancel(ctx)
	pre := &prefetcher{b: b, ctx: pctx, index: pipIndex(b.spec.PipArgs), python: python, roots: roots, fetches: fetches, cpu: cpu,
		projects: map[string]bool{}, byFile: map[string]*prefetched{}, pipSlot: make(chan struct{}, 1), resolved: make(chan struct{})}
	defer pre.stop(cancel)
	t0 := time.Now()
	refs, err := b.resolve(ctx, req, reqPath, pyVersion, platforms, pre)
	close(pre.resolved)
	if err != nil {
		return nil, err
	}
	out := make([]builtLayer, len(refs))
	g, gctx := errgroup.WithContext(ctx)
	for i, w := range refs {
		g.Go(func() error {
			l, cached, ok := pre.take(w)
			if ok {
				fmt.Fprintf(b.log, "wheel %s: prefetched while the requirements were resolved\n", w.file())
			} else {
				var err error
				if l, cached, err = b.wheelLayer(gctx, w, python, roots, fetches, semaphore(cpu)); err != nil {
					return err
				}
			}
			out[i] = builtLayer{name: "deps " + w.Name + " " + w.Version, l: l, cached: cached, took: time.Since(t0)}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	if err := checkOverlaps(out); err != nil {
		return nil, err
	}
	return out, nil
}

func (b *builder) wheelKey(sum, python string) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s\nwheel %s\npython %s\nepoch %d\n", layerFormat, wheelFormat, sum, python, b.spec.Epoch.Unix())
	return "wheel-" + hex.EncodeToString(h.Sum(nil))
}

// cpuSlot lets a layer be written: release ends it; single asks for one goroutine.
type cpuSlot func(ctx context.Context) (release func(), single bool, err error)

// semaphore is a cpuSlot of at most cap(sem) layers at a time, each on two goroutines.
func semaphore(sem chan struct{}) cpuSlot {
	return func(ctx context.Context) (func(), bool, error) {
		select {
		case sem <- struct{}{}:
			return func() { <-sem }, false, nil
		case <-ctx.Done():
			return nil, false, ctx.Err()
		}
	}
}

func (b *builder) wheelLayer(ctx context.Context, w wheelRef, python string, roots []string, fetches chan struct{}, slot cpuSlot) (*cachedLayer, bool, error) {
	if w.SHA256 != "" {
		if l, err := b.cache.get(b.wheelKey(w.SHA256, python)); l != nil || err != nil {
			return l, true, err
		}
	}
	select {
	case fetches <- struct{}{}:
	case <-ctx.Done():
		return nil, false, ctx.Err()
	}
	t0 := time.Now()
	f, sum, remove, err := b.fetchWheel(ctx, w, roots)
	<-fetches
	if err != nil {
		return nil, false, err
	}
	defer remove()
	fetched := time.Since(t0)
	key := b.wheelKey(sum, python)
	if l, err := b.cache.get(key); l != nil || err != nil {
		return l, true, err
	}
	release, single, err := slot(ctx)
	if err != nil {
		return nil, false, err
	}
	defer release()
	t1 := time.Now()
	fi, err := f.Stat()
	if err != nil {
		return nil, false, err
	}
	zr, err := zip.NewReader(f, fi.Size())
	if err != nil {
		return nil, false, atelier.Errorf(atelier.EINVALID, "%s: not a wheel (zip): %v", w.file(), err)
	}
	zr.RegisterDecompressor(zip.Deflate, func(r io.Reader) io.ReadCloser { return kflate.NewReader(r) })
	files, index, err := planWheel(zr, w, python)
	if err != nil {
		return nil, false, err
	}
	l, err := b.cache.putOn(key, index, func(tw io.Writer) error { return files.writeTar(ctxWriter{ctx, tw}, b.spec.Epoch) }, single)
	if err != nil {
		return nil, false, fmt.Errorf("layer of %s: %w", w.file(), err)
	}
	fmt.Fprintf(b.log, "wheel %s: %d bytes fetched in %s, its layer written in %s\n", w.file(), fi.Size(), fetched.Round(time.Millisecond), time.Since(t1).Round(time.Millisecond))
	return l, false, nil
}

// checkOverlaps refuses two wheels writing the same path with different contents (or a file
// where another has a directory): the layers are overlays, so the later one would silently win
// (pip --target also lets the last one win). The same file in several wheels (a namespace
// package's shared __init__.py) is allowed.
func checkOverlaps(layers []builtLayer) error {
	type owner struct{ sum, layer string }
	seen := map[string]owner{}
	for _, bl := range layers {
		names := make([]string, 0, len(bl.l.meta.Files))
		for n := range bl.l.meta.Files {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			sum := bl.l.meta.Files[n]
			if o, ok := seen[n]; ok && o.sum != sum {
				return atelier.Errorf(atelier.EINVALID, "/%s is installed by two wheels with different contents (%s and %s): the image would keep only one", n, strings.TrimPrefix(o.layer, "deps "), strings.TrimPrefix(bl.name, "deps "))
			}
			seen[n] = owner{sum, bl.name}
		}
	}
	return nil
}

// dirMark stands for a directory in a layer's file index.
const dirMark = "dir"

var (
	identRE      = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$`)
	wheelVersion = regexp.MustCompile(`(?m)^Wheel-Version:\s*1\.\d+\s*$`)
)

// planWheel lays the wheel out as pip install --target does, under SitePackages, and returns the
// layer's files and its index (every path in the layer: the content's hash as RECORD writes
// it, or dirMark). Names that would leave site-packages (absolute, "..") are refused; links are
// not made: an entry a zip marks as a symbolic link becomes a file holding its target, as pip
// writes it.
//
//   - the wheel's files, <name>.data/purelib and platlib go to site-packages;
//   - <name>.data/scripts to site-packages/bin, a first line "#!python..." becoming the image's
//     Python, executable;
//   - <name>.data/headers to site-packages/include/python/<name> (the name as the .dist-info
//     spells it), <name>.data/data to site-packages itself (pip --target moves its home's data
//     there);
//   - console_scripts and gui_scripts entry points become launchers in site-packages/bin, the
//     same as pip's;
//   - <dist-info>/INSTALLER says "atelier", and RECORD lists every file with its sha256 and
//     size, relative to site-packages. There is no REQUESTED (optional, PEP 376): the layer
//     depends on the wheel and the image's Python only, whichever requirements file named it,
//     which is what its cache key says.
func planWheel(zr *zip.Reader, w wheelRef, python string) (*layerFiles, map[string]string, error) {
	wheel := w.file()
	bad := func(format string, args ...any) error {
		return atelier.Errorf(atelier.EINVALID, "wheel %s: %s", wheel, fmt.Sprintf(format, args...))
	}
	root := strings.TrimPrefix(SitePackages, "/")
	byName := map[string]*zip.File{}
	distInfos := map[string]bool{}
	for _, zf := range zr.File {
		name := zf.Name
		if strings.ContainsRune(name, 0) || strings.HasPrefix(name, "/") {
			return nil, nil, bad("the entry %q would be written outside site-packages", name)
		}
		clean := path.Clean(name)
		if !filepath.IsLocal(clean) {
			return nil, nil, bad("the entry %q would be written outside site-packages", name)
		}
		if strings.HasSuffix(name, "/") {
			continue // directories come from the files' paths
		}
		if byName[clean] != nil {
			return nil, nil, bad("%q is in it twice", clean)
		}
		byName[clean] = zf
		if top, _, ok := strings.Cut(clean, "/"); ok && strings.HasSuffix(top, ".dist-info") {
			distInfos[top] = true
		}
	}
	if len(distInfos) != 1 {
		return nil, nil, bad("it has %d .dist-info directories, not one", len(distInfos))
	}
	var distInfo string
	for d := range distInfos {
		distInfo = d
	}
	dataDir := strings.TrimSuffix(distInfo, ".dist-info") + ".data"
	distName, _, _ := strings.Cut(distInfo, "-")
	read := func(name string) ([]byte, error) {
		zf := byName[name]
		if zf == nil {
			return nil, os.ErrNotExist
		}
		rc, err := zf.Open()
		if err != nil {
			return nil, err
		}
		defer rc.Close()
		return io.ReadAll(io.LimitReader(rc, 64<<20))
	}
	wheelMeta, err := read(distInfo + "/WHEEL")
	if err != nil {
		return nil, nil, bad("no readable %s/WHEEL: %v", distInfo, err)
	}
	if !wheelVersion.Match(wheelMeta) {
		return nil, nil, bad("%s/WHEEL does not say Wheel-Version 1.x", distInfo)
	}
	// The wheel's RECORD gives the hashes of the files written unchanged (pip keeps them too).
	record := map[string]string{}
	if data, err := read(distInfo + "/RECORD"); err == nil {
		rows, err := csv.NewReader(bytes.NewReader(data)).ReadAll()
		if err != nil {
			return nil, nil, bad("%s/RECORD: %v", distInfo, err)
		}
		for _, r := range rows {
			if len(r) >= 2 && strings.HasPrefix(r[1], "sha256=") {
				record[path.Clean(r[0])] = r[1]
			}
		}
	}

	files := newLayerFiles()
	index := map[string]string{}
	sums := map[string]string{} // site-packages relative path -> RECORD hash
	sizes := map[string]int64{}
	var add func(rel string, e *entry, sum string, size int64) error
	add = func(rel string, e *entry, sum string, size int64) error {
		if rel == "" || rel == "." || path.Clean(rel) != rel || !filepath.IsLocal(rel) {
			return bad("the entry %q would be written outside site-packages", rel)
		}
		name := root + "/" + rel
		if old, ok := files.entries[name]; ok {
			if old.dir {
				return bad("%s is both a file and a directory", rel)
			}
			return bad("two of its entries go to %s", rel)
		}
		for d := path.Dir(name); d != "." && d != "/"; d = path.Dir(d) {
			if old, ok := files.entries[d]; ok {
				if !old.dir {
					return bad("%s is both a file and a directory", strings.TrimPrefix(d, root+"/"))
				}
				break
			}
			files.entries[d] = &entry{name: d, dir: true}
			index[d] = dirMark
		}
		e.name = name
		files.entries[name] = e
		index[name] = sum
		sums[rel] = sum
		sizes[rel] = size
		return nil
	}
	names := make([]string, 0, len(byName))
	for n := range byName {
		names = append(names, n)
	}
	sort.Strings(names)
	shebang := "#!" + python
	if !strings.HasPrefix(python, "/") {
		shebang = "#!/usr/bin/env " + python
	}
	for _, clean := range names {
		zf := byName[clean]
		switch clean {
		case distInfo + "/RECORD", distInfo + "/INSTALLER", distInfo + "/REQUESTED":
			continue // written below
		}
		rel, script := clean, false
		if rest, ok := strings.CutPrefix(clean, dataDir+"/"); ok {
			scheme, sub, _ := strings.Cut(rest, "/")
			if sub == "" {
				return nil, nil, bad("%s: a file directly in %s", clean, dataDir)
			}
			switch scheme {
			case "purelib", "platlib", "data":
				rel = sub
			case "scripts":
				rel, script = "bin/"+sub, true
			case "headers":
				rel = "include/python/" + distName + "/" + sub
			default:
				return nil, nil, bad("%s: unknown directory %s/%s (purelib, platlib, scripts, headers or data)", clean, dataDir, scheme)
			}
		}
		if !filepath.IsLocal(rel) {
			return nil, nil, bad("the entry %q would be written outside site-packages", clean)
		}
		e := &entry{zf: zf, exec: zf.Mode().IsRegular() && zf.Mode()&0o111 != 0}
		sum, size := record[clean], int64(zf.UncompressedSize64)
		if script {
			data, err := read(clean)
			if err != nil {
				return nil, nil, bad("%s: %v", clean, err)
			}
			if first, rest, _ := bytes.Cut(data, []byte("\n")); bytes.HasPrefix(first, []byte("#!python")) {
				data = append([]byte(shebang+"\n"), rest...)
				sum = ""
			}
			e = &entry{data: data, exec: true}
			size = int64(len(data))
		}
		if sum == "" {
			h := sha256.New()
			if e.zf == nil {
				h.Write(e.data)
			} else {
				rc, err := zf.Open()
				if err != nil {
					return nil, nil, bad("%s: %v", clean, err)
				}
				_, err = io.Copy(h, rc)
				rc.Close()
				if err != nil {
					return nil, nil, bad("%s: %v", clean, err)
				}
			}
			sum = recordHash(h.Sum(nil))
		}
		if err := add(rel, e, sum, size); err != nil {
			return nil, nil, err
		}
	}

	// Entry points: launchers as pip writes them (distlib's template); one with the name of a
	// script from .data/scripts replaces it, as pip's does.
	if data, err := read(distInfo + "/entry_points.txt"); err == nil {
		eps, err := parseEntryPoints(data)
		if err != nil {
			return nil, nil, bad("%s/entry_points.txt: %v", distInfo, err)
		}
		for _, ep := range eps {
			module, attr, ok := strings.Cut(ep.value, ":")
			module, attr = strings.TrimSpace(module), strings.TrimSpace(attr)
			if !ok || !identRE.MatchString(module) || !identRE.MatchString(attr) {
				return nil, nil, bad("entry point %s = %s: not module:function", ep.name, ep.value)
			}
			if ep.name == "" || strings.ContainsAny(ep.name, "/\\\x00") || ep.name == "." || ep.name == ".." || strings.TrimSpace(ep.name) != ep.name {
				return nil, nil, bad("entry point %q: not a file name", ep.name)
			}
			importName, _, _ := strings.Cut(attr, ".")
			src := fmt.Sprintf("%s\n# -*- coding: utf-8 -*-\nimport re\nimport sys\nfrom %s import %s\nif __name__ == '__main__':\n    sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])\n    sys.exit(%s())\n",
				shebang, module, importName, attr)
			rel := "bin/" + ep.name
			delete(files.entries, root+"/"+rel)
			if err := add(rel, &entry{data: []byte(src), exec: true}, recordHash(sha(src)), int64(len(src))); err != nil {
				return nil, nil, err
			}
		}
	}
	if err := add(distInfo+"/INSTALLER", &entry{data: []byte("atelier\n")}, recordHash(sha("atelier\n")), 8); err != nil {
		return nil, nil, err
	}
	var rec bytes.Buffer
	cw := csv.NewWriter(&rec)
	rels := make([]string, 0, len(sums))
	for r := range sums {
		rels = append(rels, r)
	}
	sort.Strings(rels)
	for _, r := range rels {
		cw.Write([]string{r, sums[r], fmt.Sprint(sizes[r])})
	}
	cw.Write([]string{distInfo + "/RECORD", "", ""})
	cw.Flush()
	recSum := sha256.Sum256(rec.Bytes())
	if err := add(distInfo+"/RECORD", &entry{data: rec.Bytes()}, recordHash(recSum[:]), int64(rec.Len())); err != nil {
		return nil, nil, err
	}
	return files, index, nil
}

func sha(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

func recordHash(sum []byte) string {
	return "sha256=" + base64.RawURLEncoding.EncodeToString(sum)
}

type entryPoint struct{ name, value string }

// parseEntryPoints reads the console_scripts and gui_scripts sections of entry_points.txt.
func parseEntryPoints(data []byte) ([]entryPoint, error) {
	var eps []entryPoint
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";") {
			continue
		}
		if strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]") {
			section = strings.TrimSpace(line[1 : len(line)-1])
			continue
		}
		if section != "console_scripts" && section != "gui_scripts" {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return nil, errors.New("a line without '=' in " + section)
		}
		v, _, _ = strings.Cut(v, "[") // extras
		eps = append(eps, entryPoint{strings.TrimSpace(k), strings.TrimSpace(v)})
	}
	return eps, sc.Err()
}

// ctxWriter stops a layer's writing when the build is given up.
type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (c ctxWriter) Write(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.w.Write(p)
}
