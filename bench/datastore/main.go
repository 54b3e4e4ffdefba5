// Command datastore measures `atelier datastore upload` and `download` against the goal of
// issue 6: 1 GB in 1,000 files and one 1 GB file, to a files datastore and to an S3-compatible
// server (versitygw) on loopback, at >= 80 % of `cp` (files) or the aws-sdk-go-v2 transfer
// manager (S3) on the same machine; a re-upload of unchanged files transfers nothing.
//
//	go build -o /tmp/bench-atelier ./cmd/atelier
//	go run ./bench/datastore -bin /tmp/bench-atelier [-versitygw /root/go/bin/versitygw] [-reps 2]
//	go run ./bench/datastore -bin /tmp/bench-atelier -reupload-only  # only the re-uploads
//
// It prints a markdown table for docs/benchmarks.md. Nothing is dropped from the page cache:
// the source data was just written, so reads come from memory for both sides; `sync` runs
// (untimed) before every measurement so one's writeback does not slow the next.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

const (
	accessKey = "bench"
	secretKey = "bench-secret-key"
	bucket    = "bench"
	workers   = 8 // the CLI's parallelism
)

var (
	bin     = flag.String("bin", "/tmp/bench-atelier", "the atelier binary")
	vgw     = flag.String("versitygw", "/root/go/bin/versitygw", "the versitygw binary")
	base    = flag.String("dir", "", "where to put the temporary data (default: $TMPDIR)")
	reps    = flag.Int("reps", 2, "repetitions of each measurement (the best is kept)")
	nFiles  = flag.Int("files", 1000, "files in the many-files set")
	fileMiB = flag.Int("file-mib", 1, "size of each of them, MiB")
	bigMiB  = flag.Int("big-mib", 1024, "size of the single big file, MiB")
	reOnly  = flag.Bool("reupload-only", false, "only the re-uploads of unchanged files (each set is uploaded once, untimed)")
)

func main() {
	flag.Parse()
	var err error
	root, err = os.MkdirTemp(*base, "atelier-dsbench-")
	check(err)
	defer cleanup()

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

	// versitygw and its bucket.
	s3dir := filepath.Join(root, "s3")
	check(os.MkdirAll(s3dir, 0o755))
	s3addr := freeAddr()
	gw := exec.Command(*vgw, "--port", s3addr, "posix", s3dir)
	gw.Env = append(os.Environ(), "ROOT_ACCESS_KEY="+accessKey, "ROOT_SECRET_KEY="+secretKey)
	check(gw.Start())
	procs = append(procs, gw)
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

	// The atelier server and its datastores.
	data := filepath.Join(root, "server")
	addr := freeAddr()
	srv := exec.Command(*bin, "server", "--data", data, "--addr", addr, "--log-level", "warn")
	srv.Stderr = os.Stderr
	check(srv.Start())
	procs = append(procs, srv)
	var token string
	for deadline := time.Now().Add(30 * time.Second); token == "" && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		b, _ := os.ReadFile(filepath.Join(data, "admin-token"))
		token = strings.TrimSpace(string(b))
	}
	if token == "" {
		check(fmt.Errorf("the server did not write its admin token"))
	}
	waitHTTP("http://" + addr)
	env := append(os.Environ(), "ATELIER_SERVER=http://"+addr, "ATELIER_TOKEN="+token)
	cli := func(args ...string) []byte {
		c := exec.Command(*bin, args...)
		c.Env = env // standard error (progress bars) is kept for the error message
		out, err := c.Output()
		if err != nil {
			if ee, ok := err.(*exec.ExitError); ok {
				err = fmt.Errorf("%v: %s", err, ee.Stderr)
			}
			check(fmt.Errorf("atelier %s: %v", strings.Join(args, " "), err))
		}
		return out
	}
	fsStore := filepath.Join(root, "fsstore")
	check(os.MkdirAll(fsStore, 0o755))
	cli("datastore", "register", "fs", "--kind", "files", "--path", fsStore)
	cli("datastore", "register", "lake", "--kind", "s3", "--endpoint", "http://"+s3addr, "--path-style",
		"--bucket", bucket, "--access-key", accessKey, "--secret-key", secretKey)

	out := filepath.Join(root, "out")
	fresh := func() string { return out } // emptied before each measurement, untimed
	// cpu is the CPU time used so far by this program, its children and both servers.
	cpu := func() float64 { return rusage() + procCPU(srv.Process.Pid) + procCPU(gw.Process.Pid) }
	type meas struct {
		d   time.Duration
		cpu float64
	}
	once := func(f func()) meas {
		os.RemoveAll(out)
		check(os.MkdirAll(out, 0o755))
		exec.Command("sync").Run()
		c, t := cpu(), time.Now()
		f()
		return meas{time.Since(t), cpu() - c}
	}
	// pair runs the baseline and atelier alternately, reps times each (so both see the same
	// load), and keeps the fastest of each.
	pair := func(baseF, mineF func(rep int)) (b, m meas) {
		for r := 0; r < *reps; r++ {
			if x := once(func() { baseF(r) }); r == 0 || x.d < b.d {
				b = x
			}
			if x := once(func() { mineF(r) }); r == 0 || x.d < m.d {
				m = x
			}
		}
		return b, m
	}

	type row struct {
		name       string
		size       int64
		base, mine meas
	}
	var rows []row
	var notes []string
	sets := []struct {
		name, path string
		size       int64
	}{
		{fmt.Sprintf("%d × %d MiB", *nFiles, *fileMiB), many, manyBytes},
		{fmt.Sprintf("1 × %d MiB", *bigMiB), big, bigBytes},
	}
	for _, set := range sets {
		target := func(kind string, rep int) string { return fmt.Sprintf("%s-%s-%d", kind, filepath.Base(set.path), rep) }
		if *reOnly {
			for _, ds := range []struct{ kind, name string }{{"files", "fs"}, {"s3", "lake"}} {
				cli("datastore", "upload", ds.name, set.path, "--target", target(ds.kind, 0))
				// Past the server's racy window (3 s), as after a real upload of this size.
				time.Sleep(4 * time.Second)
				for _, when := range []string{"first", "second"} {
					notes = append(notes, when+" "+reupload(ds.kind, set.name, func() []byte {
						return cli("-o", "json", "datastore", "upload", ds.name, set.path, "--target", target(ds.kind, 0))
					}))
				}
			}
			continue
		}
		// files: cp against the CLI through the server.
		b, m := pair(func(rep int) { run("cp", "-r", set.path, filepath.Join(fsStore, "cp-"+target("fs", rep))) },
			func(rep int) { cli("datastore", "upload", "fs", set.path, "--target", target("fs", rep)) })
		rows = append(rows, row{"files upload, " + set.name, set.size, b, m})
		b, m = pair(func(rep int) {
			run("cp", "-r", filepath.Join(fsStore, "cp-"+target("fs", 0)), filepath.Join(fresh(), "x"))
		},
			func(rep int) { cli("datastore", "download", "fs", target("fs", 0), "-d", fresh()) })
		rows = append(rows, row{"files download, " + set.name, set.size, b, m})
		// Twice: the first time the server hashes every file, the second from its cache.
		for _, when := range []string{"first", "second"} {
			notes = append(notes, when+" "+reupload("files", set.name, func() []byte {
				return cli("-o", "json", "datastore", "upload", "fs", set.path, "--target", target("fs", 0))
			}))
		}

		// s3: the aws-sdk-go-v2 transfer manager against the CLI through the server.
		b, m = pair(func(rep int) { sdkUpload(ctx, tm, set.path, "sdk-"+target("s3", rep)) },
			func(rep int) { cli("datastore", "upload", "lake", set.path, "--target", target("s3", rep)) })
		rows = append(rows, row{"s3 upload, " + set.name, set.size, b, m})
		b, m = pair(func(rep int) { sdkDownload(ctx, s3c, tm, "sdk-"+target("s3", 0), fresh()) },
			func(rep int) { cli("datastore", "download", "lake", target("s3", 0), "-d", fresh()) })
		rows = append(rows, row{"s3 download, " + set.name, set.size, b, m})
		notes = append(notes, reupload("s3", set.name, func() []byte {
			return cli("-o", "json", "datastore", "upload", "lake", set.path, "--target", target("s3", 0))
		}))
		os.RemoveAll(out)
	}

	la, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf("\nMachine: %s, %d cores, %s, load average %s; everything on one host, loopback; best of %d, alternating.\n\n",
		cpuModel(), runtime.NumCPU(), runtime.Version(), strings.Join(strings.Fields(string(la))[:3], " "), *reps)
	fmt.Println("| case | baseline MB/s | atelier MB/s | ratio | goal ≥ 80 % | CPU s, baseline / atelier |")
	fmt.Println("|---|---|---|---|---|---|")
	for _, r := range rows {
		b, m := mbps(r.size, r.base.d), mbps(r.size, r.mine.d)
		met := "no"
		if m >= 0.8*b {
			met = "yes"
		}
		fmt.Printf("| %s | %.0f | %.0f | %.0f %% | %s | %.1f / %.1f |\n", r.name, b, m, 100*m/b, met, r.base.cpu, r.mine.cpu)
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
func reupload(kind, set string, f func() []byte) string {
	exec.Command("sync").Run()
	t := time.Now()
	out := f()
	d := time.Since(t)
	var res struct {
		Uploaded, Skipped int
		Bytes             int64
	}
	check(json.Unmarshal(out, &res))
	return fmt.Sprintf("re-upload to %s, %s: %d files (%.0f MB) transferred, %d skipped, %.2f s",
		kind, set, res.Uploaded, float64(res.Bytes)/1e6, res.Skipped, d.Seconds())
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

// root and procs are what cleanup removes and stops.
var (
	root  string
	procs []*exec.Cmd
)

func cleanup() {
	for _, p := range procs {
		p.Process.Kill()
		p.Wait()
	}
	procs = nil
	if root != "" {
		os.RemoveAll(root)
	}
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		cleanup()
		os.Exit(1)
	}
}
