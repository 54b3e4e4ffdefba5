// Command images measures atelier's image builder (oci/build) and registry (oci/registry)
// against the goals of issue 20, side by side with their peers on the same machine in the same
// run, and prints a markdown table for docs/benchmarks.md:
//
//   - rebuild: after only score.py changed, atelier's build (base import + build into an OCI
//     layout, warm layer cache) vs `podman build` of the equivalent Containerfile (warm cache);
//   - cold: the scikit-learn image from nothing (empty layer cache; pip resolves from the
//     package index, atelier fetches and installs the wheels) vs `podman build --no-cache`;
//   - copy: `skopeo copy` of a 1 GiB image out of atelier's registry vs out of docker-registry
//     (distribution 2.8, apt), both on loopback, without authentication.
//
// Needs the CPython base of scripts/build-python-base.sh, podman (with the containers.conf of
// .ci/run), skopeo and docker-registry (apt-get install podman skopeo docker-registry):
//
//	bash scripts/build-python-base.sh
//	go run ./bench/images [-only rebuild,cold,copy] [-reps 3] [-cold-reps 2] [-copy-mib 1024]
package main

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"time"

	"gocloud.dev/blob/fileblob"

	"github.com/atelier-ml/atelier/oci/build"
	"github.com/atelier-ml/atelier/oci/registry"
	"github.com/atelier-ml/atelier/sqlite"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

type result struct {
	name, goal, atelier, peer, ratio string
	met                              bool
}

const (
	podmanBase = "localhost/atelier/python-base:bookworm"
	serveDir   = "examples/sklearn-diabetes/serve"
)

func main() {
	only := flag.String("only", "", "comma-separated subset: rebuild,cold,copy")
	reps := flag.Int("reps", 3, "measurements of each side for rebuild and copy (alternating; the fastest is kept)")
	coldReps := flag.Int("cold-reps", 2, "measurements of each side for the cold build")
	copyMiB := flag.Int("copy-mib", 1024, "size of the image skopeo copies, in MiB (4 layers of random content)")
	baseDir := flag.String("base", "", "the CPython base (an OCI layout); default: what scripts/build-python-base.sh cached")
	keep := flag.Bool("keep", false, "keep the working directory")
	flag.BoolVar(&asRanges, "ranges", false, "write the requirements' pins as ranges (NAME>=V,<=V): the same wheels, resolved by pip (atelier's through its index view) instead of without it")
	registryStore = flag.String("registry-store", "server", "atelier registry's stores for the copy: server (artifact store folder + SQLite) or disk")
	flag.Parse()
	want := func(name string) bool { return *only == "" || strings.Contains(","+*only+",", ","+name+",") }
	if err := run(want, *reps, *coldReps, *copyMiB, *baseDir, *keep); err != nil {
		fmt.Fprintln(os.Stderr, "bench/images:", err)
		os.Exit(1)
	}
}

// asRanges writes the example's pins as ranges (see -ranges).
var (
	asRanges     bool
	pinsAsRanges = regexp.MustCompile(`(?m)^([A-Za-z0-9._-]+)==(\S+)`)
)

type bench struct {
	work    string
	base    string // layout dir
	ctxDir  string // podman build context
	spec    build.Spec
	runtime []byte
	blobs   registry.BlobStore
	meta    registry.Metadata
	podman  []string // global options: the benchmark's own storage
}

func run(want func(string) bool, reps, coldReps, copyMiB int, baseDir string, keep bool) error {
	ctx := context.Background()
	work, err := os.MkdirTemp("", "bench-images-")
	if err != nil {
		return err
	}
	if !keep {
		defer os.RemoveAll(work)
	} else {
		fmt.Fprintln(os.Stderr, "working directory:", work)
	}
	var results []result
	if want("rebuild") || want("cold") {
		b, err := setup(ctx, work, baseDir)
		if err != nil {
			return err
		}
		if want("rebuild") {
			r, err := b.rebuild(ctx, reps)
			if err != nil {
				return fmt.Errorf("rebuild: %w", err)
			}
			results = append(results, r)
		}
		if want("cold") {
			r, err := b.cold(ctx, coldReps)
			if err != nil {
				return fmt.Errorf("cold: %w", err)
			}
			results = append(results, r)
		}
	}
	if want("copy") {
		r, err := benchCopy(ctx, work, reps, copyMiB)
		if err != nil {
			return fmt.Errorf("copy: %w", err)
		}
		results = append(results, r)
	}
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf("\nMachine: %s, %d cores, %s; load average at the end %s.\n\n", cpuModel(), runtime.NumCPU(), runtime.Version(), strings.Join(strings.Fields(string(load))[:3], " "))
	fmt.Println("| benchmark | goal | atelier | peer | ratio | met |")
	fmt.Println("|---|---|---|---|---|---|")
	for _, r := range results {
		met := "no"
		if r.met {
			met = "yes"
		}
		fmt.Printf("| %s | %s | %s | %s | %s | %s |\n", r.name, r.goal, r.atelier, r.peer, r.ratio, met)
	}
	return nil
}

func baseLayout(dir string) (string, error) {
	if dir == "" {
		dir = os.Getenv("ATELIER_PYTHON_BASE")
	}
	if dir == "" {
		cache := os.Getenv("ATELIER_TEST_CACHE")
		if cache == "" {
			home, _ := os.UserHomeDir()
			cache = filepath.Join(home, ".cache", "atelier-test")
		}
		dir = filepath.Join(cache, "python-base", "current")
	}
	if _, err := os.Stat(filepath.Join(dir, "index.json")); err != nil {
		return "", fmt.Errorf("no CPython base image in %s: run scripts/build-python-base.sh", dir)
	}
	return filepath.EvalSymlinks(dir)
}

// setup writes the build inputs once, for both builders: the example's score.py and pinned
// requirements, a model file, atelier's runtime; and the Containerfile that does what atelier's
// builder does (same layers, same places, same config).
func setup(ctx context.Context, work, baseDir string) (*bench, error) {
	base, err := baseLayout(baseDir)
	if err != nil {
		return nil, err
	}
	b := &bench{work: work, base: base, ctxDir: filepath.Join(work, "context")}
	if b.runtime, err = os.ReadFile("oci/build/runtime/atelier_runtime.py"); err != nil {
		return nil, fmt.Errorf("run it from the repository's root: %w", err)
	}
	for _, d := range []string{"serve", "model"} {
		if err := os.MkdirAll(filepath.Join(b.ctxDir, d), 0o755); err != nil {
			return nil, err
		}
	}
	for _, f := range []string{"score.py", "requirements.txt"} {
		data, err := os.ReadFile(filepath.Join(serveDir, f))
		if err != nil {
			return nil, err
		}
		if f == "requirements.txt" && asRanges {
			data = pinsAsRanges.ReplaceAll(data, []byte("$1>=$2,<=$2"))
		}
		if err := os.WriteFile(filepath.Join(b.ctxDir, "serve", f), data, 0o644); err != nil {
			return nil, err
		}
	}
	// A model file of a ridge regression's size; the builders copy it, nothing loads it.
	model := make([]byte, 1200)
	rand.NewChaCha8([32]byte{1}).Read(model)
	writes := map[string][]byte{
		"model/model.pkl":    model,
		"atelier_runtime.py": b.runtime,
		"Containerfile":      []byte(containerfile),
	}
	for name, data := range writes {
		if err := os.WriteFile(filepath.Join(b.ctxDir, name), data, 0o644); err != nil {
			return nil, err
		}
	}
	b.spec = build.Spec{
		Name: "diabetes-svc", Version: "1",
		SourceDir: filepath.Join(b.ctxDir, "serve"), EntryScript: "score.py",
		Requirements: filepath.Join(b.ctxDir, "serve", "requirements.txt"),
		Models:       []build.Model{{Name: "diabetes", Version: "1", Dir: filepath.Join(b.ctxDir, "model")}},
	}
	// atelier's builds go into the workspace registry's stores too, as `image create` does.
	if b.blobs, err = registry.OpenDiskBlobs(filepath.Join(work, "build-registry", "blobs"), time.Now); err != nil {
		return nil, err
	}
	if b.meta, err = registry.OpenDiskMetadata(filepath.Join(work, "build-registry", "meta")); err != nil {
		return nil, err
	}
	// podman gets a storage of its own in the working directory, so the images and build cache
	// of the benchmark go with it; it needs the base there, as atelier needs it imported (not
	// timed).
	root, runroot := filepath.Join(work, "podman", "root"), filepath.Join(work, "podman", "run")
	b.podman = []string{"--root", root, "--runroot", runroot, "--storage-driver", "overlay"}
	store := "containers-storage:[overlay@" + root + "+" + runroot + "]"
	if out, err := exec.CommandContext(ctx, "skopeo", "--insecure-policy", "copy", "-q", "oci:"+base+":bookworm", store+podmanBase).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("loading the base into podman: %v\n%s", err, out)
	}
	return b, nil
}

// The Containerfile equivalent to atelier's build: the requirements installed with the image's
// own pip (the host's CA bundle is mounted at build time: package traffic here passes a TLS
// proxy only the host trusts), then the runtime, the model and the source, each a layer.
const containerfile = `FROM ` + podmanBase + `
COPY serve/requirements.txt /tmp/requirements.txt
RUN python3 -m pip install --disable-pip-version-check --no-input --no-compile --no-cache-dir --break-system-packages \
    --target /opt/atelier/site-packages --only-binary=:all: --requirement /tmp/requirements.txt
COPY atelier_runtime.py /opt/atelier/runtime/atelier_runtime.py
COPY model/ /var/azureml-app/azureml-models/diabetes/1/
COPY serve/ /var/azureml-app/
ENV AZUREML_MODEL_DIR=/var/azureml-app/azureml-models/diabetes/1 AZUREML_ENTRY_SCRIPT=/var/azureml-app/score.py \
    PYTHONUNBUFFERED=1 PYTHONPATH=/opt/atelier/site-packages
WORKDIR /var/azureml-app
EXPOSE 5001
ENTRYPOINT ["/usr/bin/python3", "/opt/atelier/runtime/atelier_runtime.py"]
`

// atelierBuild imports the base and builds into out and into the registry's stores (repository
// default/<base name of out>): what `atelier image create` does.
func (b *bench) atelierBuild(ctx context.Context, cacheDir, out, tag string) (time.Duration, build.Result, error) {
	t0 := time.Now()
	base, err := build.ImportBase(ctx, b.base, build.DefaultPlatform())
	if err != nil {
		return 0, build.Result{}, err
	}
	if cacheDir != filepath.Join(b.work, "cache-warm") {
		fmt.Fprintf(os.Stderr, "  atelier base imported in %s\n", time.Since(t0).Round(time.Millisecond))
	}
	spec := b.spec
	spec.CacheDir = cacheDir
	res, err := build.Build(ctx, spec, base, build.Output{LayoutDir: out, Tag: tag,
		Registry: &build.RegistryOutput{Blobs: b.blobs, Metadata: b.meta, Repo: "default/" + filepath.Base(out), Tags: []string{tag}}})
	if err != nil {
		return 0, res, fmt.Errorf("%w\n%s", err, res.Log)
	}
	return time.Since(t0), res, nil
}

func (b *bench) podmanBuild(ctx context.Context, tag string, noCache bool) (time.Duration, error) {
	args := append(slices.Clone(b.podman), "build", "--quiet", "--network=host", "--pull=never",
		"-v", "/etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro", "-t", "bench/diabetes-svc:"+tag)
	if noCache {
		args = append(args, "--no-cache")
	}
	t0 := time.Now()
	out, err := exec.CommandContext(ctx, "podman", append(args, b.ctxDir)...).CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("podman build: %v\n%s", err, out)
	}
	return time.Since(t0), nil
}

func (b *bench) editScore(i int) error {
	f, err := os.OpenFile(filepath.Join(b.ctxDir, "serve", "score.py"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	fmt.Fprintf(f, "# edit %d at %d\n", i, time.Now().UnixNano())
	return f.Close()
}

func (b *bench) rebuild(ctx context.Context, reps int) (result, error) {
	cache := filepath.Join(b.work, "cache-warm")
	out := filepath.Join(b.work, "out-warm")
	fmt.Fprintln(os.Stderr, "rebuild: warming both caches (one full build each)")
	if _, _, err := b.atelierBuild(ctx, cache, out, "warm"); err != nil {
		return result{}, err
	}
	if _, err := b.podmanBuild(ctx, "warm", false); err != nil {
		return result{}, err
	}
	var at, pd []time.Duration
	for i := range reps {
		if err := b.editScore(i); err != nil {
			return result{}, err
		}
		d, res, err := b.atelierBuild(ctx, cache, out, fmt.Sprintf("r%d", i))
		if err != nil {
			return result{}, err
		}
		for _, l := range res.Layers {
			if l.Cached != (l.Name != "source") {
				return result{}, fmt.Errorf("rebuild %d: layer %s cached=%v", i, l.Name, l.Cached)
			}
		}
		at = append(at, d)
		if d, err = b.podmanBuild(ctx, fmt.Sprintf("r%d", i), false); err != nil {
			return result{}, err
		}
		pd = append(pd, d)
		fmt.Fprintf(os.Stderr, "rebuild %d: atelier %s, podman %s\n", i, at[i].Round(time.Millisecond), d.Round(time.Millisecond))
	}
	a, p := slices.Min(at), slices.Min(pd)
	return result{
		name: "rebuild after only score.py changed", goal: "< 1 s",
		atelier: fmt.Sprintf("%.2f s (all: %s)", a.Seconds(), secs(at)), peer: fmt.Sprintf("podman build %.2f s (all: %s)", p.Seconds(), secs(pd)),
		ratio: fmt.Sprintf("%.1f× faster", p.Seconds()/a.Seconds()), met: a < time.Second,
	}, nil
}

func (b *bench) cold(ctx context.Context, reps int) (result, error) {
	var at, pd []time.Duration
	var size int64
	// The builder's own pip is installed by a server's first build, once (the host's pip and
	// podman's base image are installed beforehand too): a throwaway build installs it here.
	if err := b.warmTools(ctx); err != nil {
		return result{}, err
	}
	for i := range reps {
		cache := filepath.Join(b.work, fmt.Sprintf("cache-cold-%d", i))
		d, res, err := b.atelierBuild(ctx, cache, filepath.Join(b.work, fmt.Sprintf("out-cold-%d", i)), "1")
		if err != nil {
			return result{}, err
		}
		for _, l := range res.Layers {
			fmt.Fprintf(os.Stderr, "  atelier layer %s: %d bytes in %s\n", l.Name, l.Size, l.Duration.Round(time.Millisecond))
		}
		for _, line := range strings.Split(res.Log, "\n") {
			if strings.HasPrefix(line, "wheel ") || strings.HasPrefix(line, "image ") || strings.HasPrefix(line, "inputs ") ||
				strings.HasPrefix(line, "pip reads ") || strings.HasPrefix(line, "resolving with the host's pip") {
				fmt.Fprintf(os.Stderr, "  atelier %s\n", line)
			}
			if strings.HasPrefix(line, "resolved without pip") || strings.HasPrefix(line, "pip resolves: ") {
				fmt.Fprintf(os.Stderr, "  atelier %s\n", line)
			}
			if strings.HasPrefix(line, "pip resolve took") {
				fmt.Fprintf(os.Stderr, "  atelier %s (the wheels its output names are fetched and written as layers meanwhile: unzip, tar, gzip, digests)\n", line)
			}
		}
		size = res.Size
		at = append(at, d)
		if d, err = b.podmanBuild(ctx, fmt.Sprintf("cold%d", i), true); err != nil {
			return result{}, err
		}
		pd = append(pd, d)
		fmt.Fprintf(os.Stderr, "cold %d: atelier %s, podman %s\n", i, at[i].Round(time.Millisecond), d.Round(time.Millisecond))
	}
	a, p := slices.Min(at), slices.Min(pd)
	return result{
		name: fmt.Sprintf("cold build of the scikit-learn image (%d MB)", size/1e6), goal: "≥ 3× faster than podman build",
		atelier: fmt.Sprintf("%.1f s (all: %s)", a.Seconds(), secs(at)), peer: fmt.Sprintf("podman build --no-cache %.1f s (all: %s)", p.Seconds(), secs(pd)),
		ratio: fmt.Sprintf("%.2f× faster", p.Seconds()/a.Seconds()), met: p >= 3*a,
	}, nil
}

// warmTools installs the builder's tools (its pip) in the directory the cold builds share, with
// a build of one small wheel, and says how long that took.
func (b *bench) warmTools(ctx context.Context) error {
	req := filepath.Join(b.work, "tools-requirements.txt")
	if err := os.WriteFile(req, []byte("threadpoolctl>=3.5,<3.6\n"), 0o644); err != nil {
		return err
	}
	base, err := build.ImportBase(ctx, b.base, build.DefaultPlatform())
	if err != nil {
		return err
	}
	spec := b.spec
	spec.CacheDir, spec.Requirements = filepath.Join(b.work, "cache-tools"), req
	t0 := time.Now()
	res, err := build.Build(ctx, spec, base, build.Output{LayoutDir: filepath.Join(b.work, "out-tools"), Tag: "1"})
	if err != nil {
		return fmt.Errorf("warming the builder's tools: %w\n%s", err, res.Log)
	}
	for _, line := range strings.Split(res.Log, "\n") {
		if strings.Contains(line, "the builder's pip") {
			fmt.Fprintf(os.Stderr, "  atelier %s\n", line)
		}
	}
	fmt.Fprintf(os.Stderr, "cold: the builder's tools warmed by a one-wheel build in %s (once per server)\n", time.Since(t0).Round(time.Millisecond))
	return nil
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func secs(ds []time.Duration) string {
	var s []string
	for _, d := range ds {
		s = append(s, fmt.Sprintf("%.2f", d.Seconds()))
	}
	return strings.Join(s, ", ")
}

// anyone lets every request through: both registries are measured without authentication.
type anyone struct{}

func (anyone) Authorize(*http.Request, string, registry.Action) (string, error) { return "", nil }

// registryStore picks the stores of atelier's registry in the copy benchmark.
var registryStore *string

func benchCopy(ctx context.Context, work string, reps, mib int) (result, error) {
	layout := filepath.Join(work, "big")
	total, err := writeBigImage(layout, mib)
	if err != nil {
		return result{}, err
	}
	// atelier's registry served by this process: over the server's stores (blobs in an artifact
	// store folder, metadata in SQLite), or with -registry-store disk over its disk stores.
	var blobs registry.BlobStore
	var meta registry.Metadata
	if *registryStore == "disk" {
		if blobs, err = registry.OpenDiskBlobs(filepath.Join(work, "atelier-registry", "blobs"), time.Now); err != nil {
			return result{}, err
		}
		if meta, err = registry.OpenDiskMetadata(filepath.Join(work, "atelier-registry", "meta")); err != nil {
			return result{}, err
		}
	} else {
		dir := filepath.Join(work, "atelier-artifacts", "oci")
		b, err := fileblob.OpenBucket(dir, &fileblob.Options{CreateDir: true, NoTempDir: true, Metadata: fileblob.MetadataDontWrite})
		if err != nil {
			return result{}, err
		}
		defer b.Close()
		blobs = registry.NewBucketBlobs(b, dir, time.Now)
		db, err := sqlite.Open(ctx, filepath.Join(work, "atelier-artifacts", "atelier.db"), sqlite.Options{})
		if err != nil {
			return result{}, err
		}
		defer db.Close()
		meta = db.Registry()
	}
	reg, err := registry.New(registry.Options{Blobs: blobs, Metadata: meta, Authorizer: anyone{}})
	if err != nil {
		return result{}, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return result{}, err
	}
	srv := &http.Server{Handler: reg}
	go srv.Serve(l)
	defer srv.Close()
	ours := l.Addr().String()

	// docker-registry (distribution 2.8) on its filesystem driver.
	port, err := freePort()
	if err != nil {
		return result{}, err
	}
	theirs := fmt.Sprintf("127.0.0.1:%d", port)
	cfg := filepath.Join(work, "registry.yml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, "version: 0.1\nlog: {level: error}\nstorage: {filesystem: {rootdirectory: %s}, delete: {enabled: true}}\nhttp: {addr: %s}\n",
		filepath.Join(work, "docker-registry"), theirs), 0o644); err != nil {
		return result{}, err
	}
	dr := exec.CommandContext(ctx, "docker-registry", "serve", cfg)
	drLog, err := os.Create(filepath.Join(work, "docker-registry.log"))
	if err != nil {
		return result{}, err
	}
	defer drLog.Close()
	dr.Stdout, dr.Stderr = drLog, drLog
	if err := dr.Start(); err != nil {
		return result{}, fmt.Errorf("docker-registry (apt-get install docker-registry): %w", err)
	}
	defer func() { dr.Process.Kill(); dr.Wait() }()
	if err := waitHTTP("http://"+theirs+"/v2/", 30*time.Second); err != nil {
		return result{}, err
	}

	for _, host := range []string{ours, theirs} {
		fmt.Fprintf(os.Stderr, "copy: pushing %d MiB to %s\n", mib, host)
		if out, err := exec.CommandContext(ctx, "skopeo", "--insecure-policy", "copy", "-q", "--dest-tls-verify=false",
			"oci:"+layout+":1", "docker://"+host+"/bench/big:1").CombinedOutput(); err != nil {
			return result{}, fmt.Errorf("skopeo push to %s: %v\n%s", host, err, out)
		}
	}
	pull := func(host string, i int) (time.Duration, error) {
		dest := filepath.Join(work, fmt.Sprintf("pulled-%d-%s", i, strings.ReplaceAll(host, ":", "-")))
		exec.Command("sync").Run()
		t0 := time.Now()
		out, err := exec.CommandContext(ctx, "skopeo", "--insecure-policy", "copy", "-q", "--src-tls-verify=false",
			"docker://"+host+"/bench/big:1", "dir:"+dest).CombinedOutput()
		d := time.Since(t0)
		if err != nil {
			return 0, fmt.Errorf("skopeo copy from %s: %v\n%s", host, err, out)
		}
		return d, os.RemoveAll(dest)
	}
	var at, pd []time.Duration
	for i := range reps {
		d, err := pull(ours, i)
		if err != nil {
			return result{}, err
		}
		at = append(at, d)
		if d, err = pull(theirs, i); err != nil {
			return result{}, err
		}
		pd = append(pd, d)
		fmt.Fprintf(os.Stderr, "copy %d: atelier %s, docker-registry %s\n", i, at[i].Round(time.Millisecond), d.Round(time.Millisecond))
	}
	mbps := func(d time.Duration) float64 { return float64(total) / 1e6 / d.Seconds() }
	a, p := slices.Min(at), slices.Min(pd)
	am, pm := median(at), median(pd)
	return result{
		name: fmt.Sprintf("skopeo copy of a %d MiB image out of the registry", mib), goal: "≥ 80 % of docker-registry",
		atelier: fmt.Sprintf("best %.0f MB/s, median %.0f MB/s (%s s)", mbps(a), mbps(am), secs(at)),
		peer:    fmt.Sprintf("docker-registry 2.8: best %.0f MB/s, median %.0f MB/s (%s s)", mbps(p), mbps(pm), secs(pd)),
		ratio:   fmt.Sprintf("best %.0f %%, median %.0f %%", 100*p.Seconds()/a.Seconds(), 100*pm.Seconds()/am.Seconds()), met: p.Seconds()/a.Seconds() >= 0.8,
	}, nil
}

// writeBigImage writes an OCI layout holding one image of four layers of random content (mib
// MiB in all; uncompressed tar layers, so nothing is compressed on either side) and returns the
// size of its blobs.
func writeBigImage(dir string, mib int) (int64, error) {
	blobDir := filepath.Join(dir, "blobs", "sha256")
	if err := os.MkdirAll(blobDir, 0o755); err != nil {
		return 0, err
	}
	var total int64
	put := func(write func(io.Writer) error) (v1.Descriptor, error) {
		tmp, err := os.CreateTemp(blobDir, "tmp-")
		if err != nil {
			return v1.Descriptor{}, err
		}
		h := sha256.New()
		cw := &countWriter{w: io.MultiWriter(tmp, h)}
		if err := write(cw); err != nil {
			tmp.Close()
			return v1.Descriptor{}, err
		}
		if err := tmp.Close(); err != nil {
			return v1.Descriptor{}, err
		}
		d := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))}
		total += cw.n
		return v1.Descriptor{Digest: d, Size: cw.n}, os.Rename(tmp.Name(), filepath.Join(blobDir, d.Hex))
	}
	rng := rand.NewChaCha8([32]byte{20})
	var layers []v1.Descriptor
	var diffIDs []v1.Hash
	per := int64(mib) << 20 / 4
	for i := range 4 {
		d, err := put(func(w io.Writer) error {
			tw := tar.NewWriter(w)
			if err := tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("data/%d.bin", i), Mode: 0o644, Size: per, Typeflag: tar.TypeReg}); err != nil {
				return err
			}
			if _, err := io.CopyN(tw, rng, per); err != nil {
				return err
			}
			return tw.Close()
		})
		if err != nil {
			return 0, err
		}
		d.MediaType = types.OCIUncompressedLayer
		layers = append(layers, d)
		diffIDs = append(diffIDs, d.Digest)
	}
	cfg := v1.ConfigFile{Architecture: runtime.GOARCH, OS: "linux", RootFS: v1.RootFS{Type: "layers", DiffIDs: diffIDs}}
	writeJSON := func(v any) (v1.Descriptor, error) {
		return put(func(w io.Writer) error { return json.NewEncoder(w).Encode(v) })
	}
	cd, err := writeJSON(cfg)
	if err != nil {
		return 0, err
	}
	cd.MediaType = types.OCIConfigJSON
	md, err := writeJSON(v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1, Config: cd, Layers: layers})
	if err != nil {
		return 0, err
	}
	md.MediaType = types.OCIManifestSchema1
	md.Annotations = map[string]string{"org.opencontainers.image.ref.name": "1"}
	idx, _ := json.Marshal(v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: []v1.Descriptor{md}})
	if err := os.WriteFile(filepath.Join(dir, "index.json"), idx, 0o644); err != nil {
		return 0, err
	}
	return total, os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644)
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func waitHTTP(url string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode < 500 {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return errors.New(url + " did not answer")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "model name") {
			_, v, _ := strings.Cut(line, ":")
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}
