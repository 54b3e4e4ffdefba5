// Command datastore measures `atelier datastore upload` and `download` against the goal of
// issue 6: 1 GB in 1,000 files and one 1 GB file, to a files datastore and to an S3-compatible
// server (MinIO or versitygw) on loopback, at >= 80 % of `cp` (files) or the aws-sdk-go-v2
// transfer manager (S3) on the same machine; a re-upload of unchanged files transfers nothing.
//
//	go build -o /tmp/bench-atelier ./cmd/atelier
//	go run ./bench/datastore -bin /tmp/bench-atelier [-s3 versitygw] [-reps 2]
//	go run ./bench/datastore -bin /tmp/bench-atelier -only s3-down:many -v  # one case
//	go run ./bench/datastore -bin /tmp/bench-atelier -reupload-only  # only the re-uploads
//
// It prints a markdown table for docs/benchmarks.md, one row per case and client
// configuration (how the CLI reaches the server), each against the same baseline measurement.
//
// Page cache. The source data is written first, so reads come from memory for both sides, and
// `sync` runs (untimed) before every measurement so one's writeback does not slow the next.
// Before a download, what it downloads is read once (untimed), so it comes from memory too.
// On a VM with free page reporting (Firecracker: memory freed in the guest goes back to the
// host at once), a page the kernel takes from its free pool must be faulted back in by the
// host, about 3.5 s of system time per GiB: writing a new file costs 0.4 s or 4 s a GiB
// depending only on whether its pages were "warm", which made the write-heavy cases random.
// So, unless -cgroup-mib 0, the program moves itself (and so every process it starts: the
// servers, the CLI, cp) into a cgroup-v1 memory cgroup with that limit, and fills the cgroup
// with page cache (a scratch file, kept until the end): every page a measurement then needs
// is recycled from the cgroup's own reclaimed page cache, warm. The source data, written
// before, stays charged to the old cgroup, so the limit does not evict it. For the same
// reason nothing is deleted just after a measurement (freed pages would go back to the host):
// each has its own new output folder, and what a measurement wrote is deleted only 4
// measurements later, when it has left the cgroup's page cache; the rest at the end.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

const (
	accessKey = "bench"
	secretKey = "bench-secret-key"
	bucket    = "bench"
	workers   = 8 // the CLI's parallelism
)

var (
	bin       = flag.String("bin", "/tmp/bench-atelier", "the atelier binary")
	s3Server  = flag.String("s3", "minio", "the S3-compatible server: minio (the issue's) or versitygw")
	vgw       = flag.String("versitygw", "/root/go/bin/versitygw", "the versitygw binary")
	minio     = flag.String("minio", "/root/go/bin/minio", "the MinIO binary (go install github.com/minio/minio@latest)")
	base      = flag.String("dir", "", "where to put the temporary data (default: $TMPDIR)")
	reps      = flag.Int("reps", 2, "repetitions of each measurement (the best is kept)")
	nFiles    = flag.Int("files", 1000, "files in the many-files set")
	fileMiB   = flag.Int("file-mib", 1, "size of each of them, MiB")
	bigMiB    = flag.Int("big-mib", 1024, "size of the single big file, MiB")
	reOnly    = flag.Bool("reupload-only", false, "only the re-uploads of unchanged files (each set is uploaded once, untimed)")
	cgroupMiB = flag.Int("cgroup-mib", 4096, "memory limit of the cgroup the measurements run in, filled with page cache first (0: no cgroup)")
	verb      = flag.Bool("v", false, "print each measurement as it ends")
	only      = flag.String("only", "", "measure only these cases, comma-separated, of files-up, files-down, s3-up, s3-down, "+
		"each optionally limited to a set with :many or :big (e.g. s3-down:many); the uploads the downloads read are still made, untimed")
)

// verbose prints a measurement with -v.
func verbose(who string, rep int, d time.Duration, cpu float64) {
	if *verb {
		fmt.Fprintf(os.Stderr, "%s %s rep %d: %.2f s, %.1f CPU s\n", time.Now().Format("15:04:05.000"), who, rep, d.Seconds(), cpu)
	}
}

// selected tells whether the case (e.g. "s3-down") is measured for the set ("many" or "big").
func selected(name, set string) bool {
	if *only == "" {
		return true
	}
	for _, c := range strings.Split(*only, ",") {
		if c == name || c == name+":"+set {
			return true
		}
	}
	return false
}

// A client is one way for the CLI to reach the server: every atelier measurement runs once
// per client. env is the CLI's environment; a nil env skips the client.
type client struct {
	label string
	env   []string
}

func main() {
	flag.Parse()
	var err error
	root, err = os.MkdirTemp(*base, "atelier-dsbench-")
	check(err)
	defer cleanup()
	// Interrupted, still remove the data, the cgroup and the servers.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() { check(fmt.Errorf("%v", <-sig)) }()

	// Data.
	src := filepath.Join(root, "src")
	many, big := filepath.Join(src, "many"), filepath.Join(src, "big.bin")
	check(os.MkdirAll(many, 0o755))
	rng := rand.NewChaCha8([32]byte{6})
	for i := 0; i < *nFiles; i++ {
		writeRandom(filepath.Join(many, fmt.Sprintf("d%02d/f%04d.bin", i/100, i)), int64(*fileMiB)<<20, rng)
	}
	writeRandom(big, int64(*bigMiB)<<20, rng)
	manyBytes, bigBytes := int64(*nFiles)*int64(*fileMiB)<<20, int64(*bigMiB)<<20

	// The memory cgroup, after the data (which stays charged outside it) and before any
	// process the measurements use is started (they inherit it).
	memNote := "no cgroup"
	if *cgroupMiB > 0 {
		limit := int64(*cgroupMiB) << 20
		if err := enterMemcg(limit); err != nil {
			fmt.Fprintf(os.Stderr, "bench: WARNING: no memory cgroup (%v): new page-cache pages will come cold "+
				"from the host, so the write-heavy results will be noisy\n", err)
		} else {
			t := time.Now()
			fill(filepath.Join(root, "memcg-fill"), limit)
			memNote = fmt.Sprintf("memory cgroup of %d MiB, filled with page cache (%.0f MiB used) in %.1f s",
				*cgroupMiB, float64(memcgUsage())/(1<<20), time.Since(t).Seconds())
		}
	}
	fmt.Println("Page cache:", memNote)

	// The S3 server and its bucket.
	s3dir := filepath.Join(root, "s3")
	check(os.MkdirAll(s3dir, 0o755))
	s3addr := freeAddr()
	var gw *exec.Cmd
	switch *s3Server {
	case "versitygw":
		gw = exec.Command(*vgw, "--port", s3addr, "posix", s3dir)
		gw.Env = append(os.Environ(), "ROOT_ACCESS_KEY="+accessKey, "ROOT_SECRET_KEY="+secretKey)
	case "minio":
		gw = exec.Command(*minio, "server", "--quiet", "--address", s3addr, "--console-address", freeAddr(), s3dir)
		gw.Env = append(os.Environ(), "MINIO_ROOT_USER="+accessKey, "MINIO_ROOT_PASSWORD="+secretKey, "MINIO_BROWSER=off")
	default:
		check(fmt.Errorf("-s3 %q: versitygw or minio", *s3Server))
	}
	if _, err := os.Stat(gw.Path); err != nil {
		check(fmt.Errorf("%s: %v (go install github.com/minio/minio@latest, or github.com/versity/versitygw/cmd/versitygw@latest with -s3 versitygw)", *s3Server, err))
	}
	startProc(gw)
	waitHTTP("http://" + s3addr)
	s3c := s3.NewFromConfig(aws.Config{
		Region:                     "us-east-1",
		Credentials:                credentials.NewStaticCredentialsProvider(accessKey, secretKey, ""),
		HTTPClient:                 &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}},
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	}, func(o *s3.Options) { o.BaseEndpoint = aws.String("http://" + s3addr); o.UsePathStyle = true })
	ctx := context.Background()
	_, err = s3c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)})
	check(err)
	tm := transfermanager.New(s3c, func(o *transfermanager.Options) {
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		o.DisableChecksumValidation = true
	})
	// Both keep an object's content under <bucket>/<key> (versitygw's posix backend as that
	// file, MinIO as files in that folder): reading the folder of a prefix warms its objects.
	objects := filepath.Join(s3dir, bucket)
	// deleteObjects deletes the object key, or the objects under key/, through the API.
	deleteObjects := func(key string) {
		_, err := s3c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
		check(err)
		p := s3.NewListObjectsV2Paginator(s3c, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(key + "/")})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			check(err)
			if len(page.Contents) == 0 {
				break
			}
			var ids []types.ObjectIdentifier
			for _, o := range page.Contents {
				ids = append(ids, types.ObjectIdentifier{Key: o.Key})
			}
			_, err = s3c.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: aws.String(bucket), Delete: &types.Delete{Objects: ids, Quiet: aws.Bool(true)}})
			check(err)
		}
	}

	// The atelier server and its datastores.
	data := filepath.Join(root, "server")
	addr := freeAddr()
	srv := exec.Command(*bin, "server", "--data", data, "--addr", addr, "--log-level", "warn")
	srv.Stderr = os.Stderr
	startProc(srv)
	var token string
	for deadline := time.Now().Add(30 * time.Second); token == "" && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		b, _ := os.ReadFile(filepath.Join(data, "admin-token"))
		token = strings.TrimSpace(string(b))
	}
	if token == "" {
		check(fmt.Errorf("the server did not write its admin token"))
	}
	waitHTTP("http://" + addr)
	cliEnv := func(vars ...string) []string {
		return append(os.Environ(), append([]string{"ATELIER_SERVER=http://" + addr, "ATELIER_TOKEN=" + token}, vars...)...)
	}
	var clients []client
	for _, c := range []client{
		// Over TCP, as a CLI on another machine would reach the server.
		{"tcp", cliEnv("ATELIER_SOCKET=off")},
		// A CLI on the server's machine, given its TCP address as users do: it finds the
		// server's socket (atelier server --socket auto) and passes the files over it.
		{"socket", cliEnv()},
	} {
		if c.env != nil {
			clients = append(clients, c)
		}
	}
	if len(clients) == 0 {
		check(fmt.Errorf("no client configuration"))
	}
	cli := func(c client, args ...string) []byte {
		cmd := exec.Command(*bin, args...)
		cmd.Env = c.env // standard error (progress bars) is kept for the error message
		out, err := cmd.Output()
		if err != nil {
			if ee, ok := err.(*exec.ExitError); ok {
				err = fmt.Errorf("%v: %s", err, ee.Stderr)
			}
			check(fmt.Errorf("atelier %s (%s): %v", strings.Join(args, " "), c.label, err))
		}
		return out
	}
	fsStore := filepath.Join(root, "fsstore")
	check(os.MkdirAll(fsStore, 0o755))
	cli(clients[0], "datastore", "register", "fs", "--kind", "files", "--path", fsStore)
	cli(clients[0], "datastore", "register", "lake", "--kind", "s3", "--endpoint", "http://"+s3addr, "--path-style",
		"--bucket", bucket, "--access-key", accessKey, "--secret-key", secretKey)

	// Check now that everything will fit: the uploads that later cases read (rep 0 of the
	// baseline and of the first client, to each datastore: 4 copies of each set), and what the
	// last 4 measurements wrote before it is disposed of (see once).
	need := 4*(manyBytes+bigBytes) + 4*max(manyBytes, bigBytes)
	if *reOnly {
		need = 2 * (manyBytes + bigBytes)
	}
	need += bigBytes + 1<<30 // the S3 server's multipart parts until assembled, metadata, margin
	var st syscall.Statfs_t
	check(syscall.Statfs(root, &st))
	if free := int64(st.Bavail) * st.Bsize; need > free {
		check(fmt.Errorf("the measurements need about %.1f GiB in %s and %.1f GiB are free (try fewer -reps, or -dir elsewhere)",
			float64(need)/(1<<30), root, float64(free)/(1<<30)))
	}

	// Each measurement writes into a new folder under out: deleting the previous one would
	// free its pages, and the next measurement would get cold ones.
	out := filepath.Join(root, "out")
	var outN int
	var outDir string
	// disposable is what a measurement wrote that no later one reads, in order, with how to
	// delete it.
	type written struct {
		n      int
		delete func()
	}
	var disposable []written
	dispose := func(delete func()) { disposable = append(disposable, written{outN, delete}) }
	removeAll := func(path string) func() { return func() { os.RemoveAll(path) } }
	// keepFirst keeps an upload of rep 0 by the first client (or the baseline), which the
	// downloads and re-uploads read; any other is disposable.
	keepFirst := func(rep int, c client, delete func()) {
		if rep > 0 || c.label != clients[0].label {
			dispose(delete)
		}
	}
	fresh := func() string { return outDir }
	// cpu is the CPU time used so far by this program, its children and both servers.
	cpu := func() float64 { return rusage() + procCPU(srv.Process.Pid) + procCPU(gw.Process.Pid) }
	type meas struct {
		d   time.Duration
		cpu float64
	}
	// once measures f; warm, when set, is what f reads (a file or a folder), read untimed
	// first so that it comes from the page cache (the cgroup's limit may have evicted it).
	once := func(warm string, f func()) meas {
		outN++
		// What measurements 4 and more ago wrote has left the cgroup's page cache (each writes
		// about as much as the set, the limit holds a few sets): deleting it frees disk, not
		// warm pages.
		for len(disposable) > 0 && disposable[0].n <= outN-4 {
			disposable[0].delete()
			disposable = disposable[1:]
		}
		outDir = filepath.Join(out, strconv.Itoa(outN))
		dispose(removeAll(outDir))
		check(os.MkdirAll(outDir, 0o755))
		if warm != "" {
			readAll(warm)
		}
		exec.Command("sync").Run()
		c, t := cpu(), time.Now()
		f()
		return meas{time.Since(t), cpu() - c}
	}
	// pair runs the baseline and atelier with each client alternately (baseline, client 1,
	// client 2, ..., reps times, so all see the same load), and keeps the fastest of each.
	// baseWarm and mineWarm are what each side downloads, if it does (see once).
	pair := func(baseWarm, mineWarm string, baseF func(rep int), mineF func(rep int, c client)) (b meas, m []meas) {
		m = make([]meas, len(clients))

		for r := 0; r < *reps; r++ {
			x := once(baseWarm, func() { baseF(r) })
			verbose("baseline", r, x.d, x.cpu)
			if r == 0 || x.d < b.d {
				b = x
			}
			for i, c := range clients {
				x := once(mineWarm, func() { mineF(r, c) })
				verbose(c.label, r, x.d, x.cpu)
				if r == 0 || x.d < m[i].d {
					m[i] = x
				}
			}
		}
		return b, m
	}

	type row struct {
		name, client string
		size         int64
		base, mine   meas
	}
	var rows []row
	addRows := func(name string, size int64, b meas, m []meas) {

		for i, c := range clients {
			rows = append(rows, row{name, c.label, size, b, m[i]})
		}
	}
	var notes []string
	// reuploads times uploads of the unchanged set at path to target tgt of datastore ds:
	// with first, one the server has not seen yet (a files datastore then hashes its copies),
	// with the first client; then one with each client.
	reuploads := func(kind, ds, set, path, tgt string, first bool) {
		up := func(when string, c client) {
			notes = append(notes, when+reupload(kind, set, c.label, func() []byte {
				return cli(c, "-o", "json", "datastore", "upload", ds, path, "--target", tgt)
			}))
		}
		if first {
			up("first ", clients[0])
		}
		for _, c := range clients {
			if first {
				up("second ", c) // the server's digest cache is warm
			} else {
				up("", c)
			}
		}
	}
	sets := []struct {
		name, path string
		size       int64
	}{
		{fmt.Sprintf("%d × %d MiB", *nFiles, *fileMiB), many, manyBytes},
		{fmt.Sprintf("1 × %d MiB", *bigMiB), big, bigBytes},
	}
	for _, set := range sets {
		// Targets (folders, object key prefixes or keys): the baseline's per tool and rep,
		// atelier's per datastore, client and rep. Downloads all read rep 0 of the first client.
		name := filepath.Base(set.path)
		baseTarget := func(tool string, rep int) string { return fmt.Sprintf("%s-%s-%d", tool, name, rep) }
		mineTarget := func(ds string, c client, rep int) string {
			return fmt.Sprintf("%s-%s-%s-%d", ds, name, c.label, rep)
		}
		fsSrc, lakeSrc := mineTarget("fs", clients[0], 0), mineTarget("lake", clients[0], 0)
		if *reOnly {
			for _, ds := range []struct{ kind, name, tgt string }{{"files", "fs", fsSrc}, {"s3", "lake", lakeSrc}} {
				cli(clients[0], "datastore", "upload", ds.name, set.path, "--target", ds.tgt)
				// Past the server's racy window (3 s), as after a real upload of this size.
				time.Sleep(4 * time.Second)
				reuploads(ds.kind, ds.name, set.name, set.path, ds.tgt, true)
			}
			continue
		}
		short := map[string]string{many: "many", big: "big"}[set.path]
		// measure measures a case, or when -only leaves it out makes an upload's rep 0 (which
		// later cases read) untimed, and skips a download.
		measure := func(name, label, baseWarm, mineWarm string, upload bool, baseF func(rep int), mineF func(rep int, c client)) {
			if !selected(name, short) {
				if upload {
					baseF(0)
					mineF(0, clients[0])
				}
				return
			}
			b, m := pair(baseWarm, mineWarm, baseF, mineF)
			addRows(label+", "+set.name, set.size, b, m)
		}
		// files: cp against the CLI through the server.
		measure("files-up", "files upload", "", "", true,
			func(rep int) {
				run("cp", "-r", set.path, filepath.Join(fsStore, baseTarget("cp", rep)))
				keepFirst(rep, clients[0], removeAll(filepath.Join(fsStore, baseTarget("cp", rep))))
			},
			func(rep int, c client) {
				cli(c, "datastore", "upload", "fs", set.path, "--target", mineTarget("fs", c, rep))
				keepFirst(rep, c, removeAll(filepath.Join(fsStore, mineTarget("fs", c, rep))))
			})
		cpSrc := filepath.Join(fsStore, baseTarget("cp", 0))
		measure("files-down", "files download", cpSrc, filepath.Join(fsStore, fsSrc), false,
			func(rep int) { run("cp", "-r", cpSrc, filepath.Join(fresh(), "x")) },
			func(rep int, c client) { cli(c, "datastore", "download", "fs", fsSrc, "-d", fresh()) })
		if *only == "" {
			// Twice: the first time the server hashes every file, the second from its cache.
			reuploads("files", "fs", set.name, set.path, fsSrc, true)
		}

		// s3: the aws-sdk-go-v2 transfer manager against the CLI through the server.
		measure("s3-up", "s3 upload", "", "", true,
			func(rep int) {
				sdkUpload(ctx, tm, set.path, baseTarget("sdk", rep))
				keepFirst(rep, clients[0], func() { deleteObjects(baseTarget("sdk", rep)) })
			},
			func(rep int, c client) {
				cli(c, "datastore", "upload", "lake", set.path, "--target", mineTarget("lake", c, rep))
				keepFirst(rep, c, func() { deleteObjects(mineTarget("lake", c, rep)) })
			})
		sdkSrc := baseTarget("sdk", 0)
		measure("s3-down", "s3 download", filepath.Join(objects, sdkSrc), filepath.Join(objects, lakeSrc), false,
			func(rep int) { sdkDownload(ctx, s3c, tm, sdkSrc, fresh()) },
			func(rep int, c client) { cli(c, "datastore", "download", "lake", lakeSrc, "-d", fresh()) })
		if *only == "" {
			reuploads("s3", "lake", set.name, set.path, lakeSrc, false)
		}
	}

	la, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf("\nMachine: %s, %d cores, %s, load average %s; S3 server %s; everything on one host, loopback; best of %d, alternating.\n",
		cpuModel(), runtime.NumCPU(), runtime.Version(), strings.Join(strings.Fields(string(la))[:3], " "), *s3Server, *reps)
	fmt.Printf("Page cache: %s.\n\n", memNote)
	fmt.Println("| case | client | baseline MB/s | atelier MB/s | ratio | goal ≥ 80 % | CPU s, baseline / atelier |")
	fmt.Println("|---|---|---|---|---|---|---|")
	for _, r := range rows {
		b, m := mbps(r.size, r.base.d), mbps(r.size, r.mine.d)
		met := "no"
		if m >= 0.8*b {
			met = "yes"
		}
		fmt.Printf("| %s | %s | %.0f | %.0f | %.0f %% | %s | %.1f / %.1f |\n",
			r.name, r.client, b, m, 100*m/b, met, r.base.cpu, r.mine.cpu)
	}
	fmt.Println()
	for _, n := range notes {
		fmt.Println("- " + n)
	}
}

// rusage is the CPU time of this process and of its children that have been waited for.
func rusage() float64 {
	var t float64
	for _, who := range []int{syscall.RUSAGE_SELF, syscall.RUSAGE_CHILDREN} {
		var ru syscall.Rusage
		check(syscall.Getrusage(who, &ru))
		t += float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
	}
	return t
}

// procCPU is the CPU time a running process has used (utime + stime, at 100 ticks a second).
func procCPU(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	check(err)
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	u, _ := strconv.ParseFloat(f[11], 64) // field 14 of stat
	st, _ := strconv.ParseFloat(f[12], 64)
	return (u + st) / 100
}

// reupload times an upload of unchanged files and reports what it transferred.
func reupload(kind, set, client string, f func() []byte) string {
	exec.Command("sync").Run()
	t := time.Now()
	out := f()
	d := time.Since(t)
	var res struct {
		Uploaded, Skipped int
		Bytes             int64
	}
	check(json.Unmarshal(out, &res))
	return fmt.Sprintf("re-upload to %s, %s (%s): %d files (%.0f MB) transferred, %d skipped, %.2f s",
		kind, set, client, res.Uploaded, float64(res.Bytes)/1e6, res.Skipped, d.Seconds())
}

// sdkUpload uploads a file, or a folder's files 8 at a time, with the transfer manager
// (multipart above 16 MiB: 8 MiB parts, 5 at a time).
func sdkUpload(ctx context.Context, tm *transfermanager.Client, src, key string) {
	paths, rels := listFiles(src)
	parallel(len(paths), func(i int) {
		f, err := os.Open(paths[i])
		check(err)
		defer f.Close()
		k := key
		if rels[i] != "" {
			k += "/" + rels[i]
		}
		_, err = tm.UploadObject(ctx, &transfermanager.UploadObjectInput{Bucket: aws.String(bucket), Key: aws.String(k), Body: f})
		check(err)
	})
}

// sdkDownload downloads every object under key/ (8 at a time, one GetObject each) or the
// object key (the transfer manager's ranged parallel download).
func sdkDownload(ctx context.Context, c *s3.Client, tm *transfermanager.Client, key, dir string) {
	var keys []string
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(key + "/")})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		check(err)
		for _, o := range page.Contents {
			keys = append(keys, *o.Key)
		}
	}
	if len(keys) == 0 {
		f, err := os.Create(filepath.Join(dir, filepath.Base(key)))
		check(err)
		_, err = tm.DownloadObject(ctx, &transfermanager.DownloadObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), WriterAt: f})
		check(err)
		check(f.Close())
		return
	}
	parallel(len(keys), func(i int) {
		local := filepath.Join(dir, filepath.FromSlash(keys[i]))
		check(os.MkdirAll(filepath.Dir(local), 0o755))
		o, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(keys[i])})
		check(err)
		defer o.Body.Close()
		f, err := os.Create(local)
		check(err)
		_, err = io.Copy(f, o.Body)
		check(err)
		check(f.Close())
	})
}

func listFiles(src string) (paths, rels []string) {
	check(filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(src, p)
			if p == src {
				rel = ""
			}
			paths, rels = append(paths, p), append(rels, filepath.ToSlash(rel))
		}
		return err
	}))
	return paths, rels
}

func parallel(n int, f func(i int)) {
	ch := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range ch {
				f(i)
			}
		}()
	}
	for i := 0; i < n; i++ {
		ch <- i
	}
	close(ch)
	wg.Wait()
}

func writeRandom(p string, n int64, rng *rand.ChaCha8) {
	check(os.MkdirAll(filepath.Dir(p), 0o755))
	f, err := os.Create(p)
	check(err)
	_, err = io.CopyN(f, rng, n)
	check(err)
	check(f.Close())
}

// readAll reads the file p, or every file under the folder p, once, to put it in the page cache.
func readAll(p string) {
	buf := make([]byte, 1<<20)
	check(filepath.WalkDir(p, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		for {
			if _, err := f.Read(buf); err == io.EOF {
				return nil
			} else if err != nil {
				return err
			}
		}
	}))
}

func run(name string, args ...string) {
	c := exec.Command(name, args...)
	c.Stderr = os.Stderr
	check(c.Run())
}

func mbps(n int64, d time.Duration) float64 { return float64(n) / 1e6 / d.Seconds() }

func freeAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	check(err)
	defer ln.Close()
	return ln.Addr().String()
}

func waitHTTP(url string) {
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if r, err := http.Get(url); err == nil {
			r.Body.Close()
			return
		}
	}
	check(fmt.Errorf("%s did not answer", url))
}

func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "model name") {
			_, v, _ := strings.Cut(line, ":")
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}

// memcgRoot is where the cgroup-v1 memory controller is mounted.
const memcgRoot = "/sys/fs/cgroup/memory"

// enterMemcg makes the memory cgroup memcg, limited to limit bytes, and moves this process
// into it (with all its threads; the processes it starts later inherit it). The pages cached
// before stay charged to the cgroup it leaves (memory.move_charge_at_immigrate is 0 by
// default), so the limit never evicts them.
func enterMemcg(limit int64) (err error) {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return err
	}
	home := ""
	for _, line := range strings.Split(string(b), "\n") { // hierarchy-ID:controllers:path
		if f := strings.SplitN(line, ":", 3); len(f) == 3 && slices.Contains(strings.Split(f[1], ","), "memory") {
			home = f[2]
		}
	}
	if home == "" {
		return fmt.Errorf("no cgroup-v1 memory controller in /proc/self/cgroup")
	}
	if _, err := os.Stat(filepath.Join(memcgRoot, "cgroup.procs")); err != nil {
		return err
	}
	dir := filepath.Join(memcgRoot, fmt.Sprintf("atelier-dsbench-%d", os.Getpid()))
	if err := os.Mkdir(dir, 0o755); err != nil {
		return err // not root, typically
	}
	mu.Lock()
	memcg, memcgHome = dir, filepath.Join(memcgRoot, home)
	mu.Unlock()
	defer func() {
		if err != nil {
			mu.Lock()
			leaveMemcg()
			removeMemcg()
			mu.Unlock()
		}
	}()
	if err := writeFile(filepath.Join(dir, "memory.limit_in_bytes"), strconv.FormatInt(limit, 10)); err != nil {
		return err
	}
	return writeFile(filepath.Join(dir, "cgroup.procs"), strconv.Itoa(os.Getpid()))
}

// fill writes n bytes to the new file p, which fills the cgroup with page cache: from then on,
// the pages a measurement needs are reclaimed from the cgroup's own page cache, warm, instead
// of coming from the kernel's free pool, cold. p is kept until the end: deleting it would give
// its pages back to the host. It is synced, so its pages are clean and cheap to reclaim.
func fill(p string, n int64) {
	f, err := os.Create(p)
	check(err)
	buf := make([]byte, 1<<20)
	for left := n; left > 0; left -= int64(len(buf)) {
		_, err := f.Write(buf[:min(left, int64(len(buf)))])
		check(err)
	}
	check(f.Sync())
	check(f.Close())
}

// memcgUsage is the memory charged to the cgroup (page cache included), in bytes.
func memcgUsage() int64 {
	b, err := os.ReadFile(filepath.Join(memcg, "memory.usage_in_bytes"))
	check(err)
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	check(err)
	return n
}

// leaveMemcg moves this process back to the cgroup it came from.
func leaveMemcg() {
	if memcg == "" {
		return
	}
	if err := writeFile(filepath.Join(memcgHome, "cgroup.procs"), strconv.Itoa(os.Getpid())); err != nil {
		fmt.Fprintln(os.Stderr, "bench: leaving the memory cgroup:", err)
	}
}

// removeMemcg removes the cgroup, once no process is left in it (one just killed may still
// be there for a moment).
func removeMemcg() {
	if memcg == "" {
		return
	}
	var err error
	for i := 0; i < 50; i++ {
		if err = syscall.Rmdir(memcg); err == nil || err == syscall.ENOENT {
			memcg = ""
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	fmt.Fprintf(os.Stderr, "bench: removing the memory cgroup %s: %v\n", memcg, err)
	memcg = ""
}

// writeFile writes s to the existing file p (a cgroup's control file).
func writeFile(p, s string) error {
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(s)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// root, procs and memcg (with memcgHome, the cgroup this process came from) are what cleanup
// removes, stops and leaves; mu keeps cleanup from running twice at once (interrupted while a
// check fails).
var (
	mu        sync.Mutex
	root      string
	procs     []*exec.Cmd
	memcg     string
	memcgHome string
)

// startProc starts a server for cleanup to stop.
func startProc(c *exec.Cmd) {
	check(c.Start())
	mu.Lock()
	procs = append(procs, c)
	mu.Unlock()
}

func cleanup() {
	mu.Lock()
	defer mu.Unlock()
	for _, p := range procs {
		p.Process.Kill()
		p.Wait()
	}
	procs = nil
	// Out of the cgroup before removing the data (its scratch file included), then the
	// cgroup itself, which must have no process left.
	leaveMemcg()
	if root != "" {
		os.RemoveAll(root)
		root = ""
	}
	removeMemcg()
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		cleanup()
		os.Exit(1)
	}
}
