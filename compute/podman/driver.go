// Package podman is the driver of podman compute targets: each run's in-job runner (`atelier
// job exec`, the server's own binary) runs in a container of the target's image (podman.image,
// or the server's default base image), on the server's machine or on a Podman service.
//
// The driver drives the podman CLI: without podman.url the server's own podman (no service
// needed), with it the CLI in remote mode (`podman --url URL`), which speaks the service's REST
// API. A job's handle is its container's id and name: a restarted server asks podman about the
// container again, and a container that vanished fails its run with the reason.
package podman

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/oci/build"
)

var (
	_ atelier.ComputeDriver  = (*Driver)(nil)
	_ atelier.ComputeChecker = (*Driver)(nil)
)

// Paths inside a job's container.
const (
	// RunnerPath is where the runner's binary is in the container (bind-mounted read-only, or
	// copied in for a service on another machine).
	RunnerPath = "/opt/atelier/bin/atelier"
	// JobDir holds the runner's environment file (0600, removed as soon as the runner starts)
	// and the run's working directory.
	JobDir = "/atelier-job"
	// EnvsDir holds the Python environments, on a podman volume per image shared by the runs
	// of that image (atelier-envs-<image id>).
	EnvsDir = "/var/cache/atelier/envs"
	// BaseRepo names the server's default base image once loaded into a target's podman.
	BaseRepo = "localhost/atelier/base"
)

// Driver runs jobs on podman compute targets. It serves every podman target of every
// workspace: a job's handle names the service (podman.url) and the container.
type Driver struct {
	// Podman is the podman CLI ("podman" on the PATH when empty).
	Podman string
	// Binary is the runner (the server's own binary), of the containers' OS and architecture.
	Binary string
	// Args are added after the runner's own arguments (--cancel-grace, --server-wait).
	Args []string
	// DefaultBase is the image of targets that name none: an OCI layout or an OCI or docker
	// archive on the server's machine (the server's --image-base), loaded into a target's
	// podman once (BaseRepo:<digest>). Empty: targets must name podman.image.
	DefaultBase string
	// Dir is a directory of the server's machine where each job of a service on this machine
	// gets a directory (0700) holding its runner's environment file (0600), bind-mounted into
	// the container and removed by the container as its runner starts. Empty (or a service on
	// another machine): the file is copied into the created container instead (podman cp,
	// about half a second more).
	Dir string
	// CopyRunner copies the runner's binary into each container instead of bind-mounting it:
	// always so for a service reached over tcp:// or ssh:// (another machine), whose
	// filesystem does not hold the server's binary.
	CopyRunner bool
	// StopTimeout is how long a canceled runner gets to stop its script and record the run's
	// end before podman kills its container (a minute when zero).
	StopTimeout time.Duration
	// ListingTTL is how long a listing of a service's job containers answers Status
	// (DefaultListingTTL when zero).
	ListingTTL time.Duration
	Log        *slog.Logger

	mu       sync.Mutex
	loads    map[string]*sync.Mutex // per service: one base image load at a time
	listings map[string]*listing    // per service: its job containers, listed at most every ListingTTL
}

// New returns the driver of podman targets, which runs binary (the server's own) as the
// runner in the containers, with args added to its command line.
func New(binary string, args ...string) *Driver {
	return &Driver{Binary: binary, Args: args}
}

func (d *Driver) log() *slog.Logger {
	if d.Log != nil {
		return d.Log
	}
	return slog.New(slog.DiscardHandler)
}

func (d *Driver) cli() string {
	if d.Podman != "" {
		return d.Podman
	}
	return "podman"
}

// handle is what the driver stores of a job: the service and the container.
type handle struct {
	Workspace string `json:"workspace"`
	Target    string `json:"target"`
	URL       string `json:"url,omitempty"`
	ID        string `json:"id"`
	Name      string `json:"name"`
	// Dir is the job's directory under the driver's Dir, when it has one.
	Dir string `json:"dir,omitempty"`
}

var (
	idPattern    = regexp.MustCompile(`^[0-9a-f]{12,64}$`)
	namePattern  = regexp.MustCompile(`^atelier-job-[A-Za-z0-9_.-]{1,128}$`)
	runIDPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)
	envName      = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

func parse(h string) (*handle, error) {
	var j handle
	if err := json.Unmarshal([]byte(h), &j); err != nil || !idPattern.MatchString(j.ID) || !namePattern.MatchString(j.Name) ||
		j.Target == "" || strings.HasPrefix(j.URL, "-") || strings.ContainsAny(j.URL, "\x00\n") {
		return nil, atelier.Errorf(atelier.EINVALID, "podman job handle %q is not one this driver wrote", h)
	}
	return &j, nil
}

// podmanError is podman's own word on a failed command.
type podmanError struct {
	args   []string
	err    error
	stderr string
}

func (e *podmanError) Error() string {
	msg := e.stderr
	if msg == "" {
		msg = e.err.Error()
	}
	return fmt.Sprintf("podman %s: %s", e.args[0], msg)
}

// noSuchContainer tells a container podman does not know.
func noSuchContainer(err error) bool {
	var pe *podmanError
	return errors.As(err, &pe) && (strings.Contains(pe.stderr, "no such container") || strings.Contains(pe.stderr, "no container with name or ID"))
}

// run runs the podman CLI for a service ("" for the local podman), returning its output.
func (d *Driver) run(ctx context.Context, url string, stdin io.Reader, args ...string) ([]byte, error) {
	full := args
	if url != "" {
		full = append([]string{"--url", url}, args...)
	}
	cmd := exec.CommandContext(ctx, d.cli(), full...)
	cmd.Stdin = stdin
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		msg = strings.TrimPrefix(msg, "Error: ")
		return stdout.Bytes(), &podmanError{args: args, err: err, stderr: msg}
	}
	return stdout.Bytes(), nil
}

// remote tells a service on another machine, whose filesystem cannot be bind-mounted from.
func remote(url string) bool {
	return url != "" && !strings.HasPrefix(url, "unix:")
}

func target(t *atelier.ComputeTarget) (*atelier.PodmanCompute, error) {
	if t == nil || t.Podman == nil {
		return nil, atelier.Errorf(atelier.EINVALID, "the podman driver runs jobs of stored podman compute targets only")
	}
	return t.Podman, nil
}

// imageInfo is what the driver reads of an image in podman's storage.
type imageInfo struct {
	Name, ID, OS, Arch string
}

// image returns the target's image in its podman's storage: podman.image (pulled when absent)
// or the server's default base (loaded when absent).
func (d *Driver) image(ctx context.Context, t *atelier.ComputeTarget) (*imageInfo, error) {
	c, err := target(t)
	if err != nil {
		return nil, err
	}
	name := c.Image
	if name == "" {
		if d.DefaultBase == "" {
			return nil, atelier.Errorf(atelier.EINVALID, "compute target %s names no image and this server has no default one: attach it with --image IMAGE (an image with python3), or start the server with --image-base (scripts/build-python-base.sh makes one)", t.Name)
		}
		if name, err = d.loadBase(ctx, t.Name, c.URL); err != nil {
			return nil, err
		}
	}
	info, err := d.inspectImage(ctx, c.URL, name)
	if err != nil && c.Image != "" && strings.Contains(err.Error(), "image not known") {
		if _, perr := d.run(ctx, c.URL, nil, "pull", "--quiet", name); perr != nil {
			return nil, atelier.Errorf(atelier.EINVALID, "compute target %s: the image %s is not in podman's storage and cannot be pulled (%s): give an image podman can pull, or load it there (podman load, podman build)",
				t.Name, name, perr)
		}
		d.log().Info("pulled a podman compute target's image", "compute", t.Name, "image", name)
		info, err = d.inspectImage(ctx, c.URL, name)
	}
	if err != nil {
		return nil, atelier.Errorf(atelier.EUNAVAILABLE, "compute target %s: reading the image %s: %v", t.Name, name, err)
	}
	if info.OS != runtime.GOOS || info.Arch != runtime.GOARCH {
		return nil, atelier.Errorf(atelier.EINVALID, "compute target %s: the image %s is for %s/%s; this server's job runner needs %s/%s: give an image of the server's OS and architecture",
			t.Name, name, info.OS, info.Arch, runtime.GOOS, runtime.GOARCH)
	}
	return info, nil
}

func (d *Driver) inspectImage(ctx context.Context, url, name string) (*imageInfo, error) {
	out, err := d.run(ctx, url, nil, "image", "inspect", "--format", "{{.Id}} {{.Os}} {{.Architecture}}", name)
	if err != nil {
		return nil, err
	}
	f := strings.Fields(string(out))
	if len(f) != 3 || !idPattern.MatchString(f[0]) {
		return nil, fmt.Errorf("podman image inspect: unexpected answer %q", out)
	}
	return &imageInfo{Name: name, ID: f[0], OS: f[1], Arch: f[2]}, nil
}

// loadBase loads the server's default base image into a service's storage once, as
// BaseRepo:<digest of the layout's index or of the archive>.
func (d *Driver) loadBase(ctx context.Context, targetName, url string) (string, error) {
	d.mu.Lock()
	if d.loads == nil {
		d.loads = map[string]*sync.Mutex{}
	}
	m := d.loads[url]
	if m == nil {
		m = &sync.Mutex{}
		d.loads[url] = m
	}
	d.mu.Unlock()
	m.Lock()
	defer m.Unlock()

	path, err := filepath.EvalSymlinks(d.DefaultBase)
	if err != nil {
		return "", fmt.Errorf("the server's default base image %s: %w", d.DefaultBase, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("the server's default base image: %w", err)
	}
	sum := sha256.New()
	if fi.IsDir() {
		b, err := os.ReadFile(filepath.Join(path, "index.json"))
		if err != nil {
			return "", fmt.Errorf("the server's default base image %s is not an OCI layout: %w", path, err)
		}
		sum.Write(b)
	} else {
		fmt.Fprintf(sum, "%s %d %d", path, fi.Size(), fi.ModTime().UnixNano())
	}
	name := BaseRepo + ":" + hex.EncodeToString(sum.Sum(nil))[:16]
	if _, err := d.run(ctx, url, nil, "image", "exists", name); err == nil {
		return name, nil
	}
	// podman load reads an OCI or docker archive; a layout is sent as the OCI archive it makes.
	var r io.Reader
	if fi.IsDir() {
		pr, pw := io.Pipe()
		go func() { pw.CloseWithError(build.TarDir(pw, path)) }()
		defer pr.Close()
		r = pr
	} else {
		f, err := os.Open(path)
		if err != nil {
			return "", err
		}
		defer f.Close()
		r = f
	}
	out, err := d.run(ctx, url, r, "load")
	if err != nil {
		return "", atelier.Errorf(atelier.EUNAVAILABLE, "compute target %s: loading the server's default base image into podman: %v", targetName, err)
	}
	loaded := ""
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "Loaded image:"); ok {
			loaded = strings.TrimSpace(strings.Split(v, ",")[0])
		}
	}
	if loaded == "" {
		return "", atelier.Errorf(atelier.EUNAVAILABLE, "compute target %s: podman load named no image: %s", targetName, strings.TrimSpace(string(out)))
	}
	if _, err := d.run(ctx, url, nil, "tag", loaded, name); err != nil {
		return "", atelier.Errorf(atelier.EUNAVAILABLE, "compute target %s: %v", targetName, err)
	}
	d.log().Info("loaded the default base image into a podman compute target", "compute", targetName, "image", name)
	return name, nil
}

// quote quotes s for a POSIX shell.
func quote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// containerName is the name of a run's container.
func containerName(runID string) string {
	return "atelier-job-" + runID
}

// Launch creates the run's container, puts the runner's environment in it (a 0600 file, not
// the container's configuration: `podman inspect` shows no token) and starts it.
func (d *Driver) Launch(ctx context.Context, l *atelier.JobLaunch) (string, error) {
	t := l.Target
	c, err := target(t)
	if err != nil {
		return "", err
	}
	if !runIDPattern.MatchString(l.Run.ID) {
		return "", atelier.Errorf(atelier.EINVALID, "run id %q cannot name a container", l.Run.ID)
	}
	var config atelier.RunConfig
	if len(l.Run.Config) > 0 {
		if err := json.Unmarshal(l.Run.Config, &config); err != nil {
			return "", atelier.Errorf(atelier.EINVALID, "run %s has an unreadable configuration: %v", l.Run.ID, err)
		}
	}
	if n := config.NodeCount; n > 1 {
		return "", atelier.Errorf(atelier.EINVALID, "compute target %s runs a run in one container: node_count %d needs a cluster target (slurm, kubernetes)", t.Name, n)
	}
	if g := config.GPUs; g > 0 {
		return "", atelier.Errorf(atelier.EINVALID, "compute target %s gives containers no GPUs: gpus %d needs another target", t.Name, g)
	}
	env := []string{"ATELIER_SERVER=" + l.Server, "ATELIER_TOKEN=" + l.Token, "ATELIER_WORKSPACE=" + l.Run.Workspace}
	if l.ScriptToken != "" {
		env = append(env, "ATELIER_SCRIPT_TOKEN="+l.ScriptToken)
	}
	for name, value := range l.Secrets {
		if !envName.MatchString(name) || strings.ContainsRune(value, 0) {
			return "", atelier.Errorf(atelier.EINVALID, "secret %q cannot be passed in an environment variable", name)
		}
		env = append(env, "ATELIER_SECRET_"+name+"="+value)
	}
	var envText strings.Builder
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		fmt.Fprintf(&envText, "%s=%s\n", k, quote(v))
	}
	img, err := d.image(ctx, t)
	if err != nil {
		return "", err
	}
	copyRunner := d.CopyRunner || remote(c.URL)
	var binary *os.File
	var binaryInfo os.FileInfo
	if copyRunner {
		if binary, err = os.Open(d.Binary); err != nil {
			return "", fmt.Errorf("reading the runner's binary: %w", err)
		}
		defer binary.Close()
		if binaryInfo, err = binary.Stat(); err != nil {
			return "", err
		}
	}

	name := containerName(l.Run.ID)
	runner := []string{RunnerPath, "job", "exec", "--run", l.Run.ID, "--work-dir", JobDir + "/work", "--envs-dir", EnvsDir}
	runner = append(runner, d.Args...)
	var cmdline strings.Builder
	for i, a := range runner {
		if i > 0 {
			cmdline.WriteByte(' ')
		}
		cmdline.WriteString(quote(a))
	}
	// The environment file: in a directory of the server's bind-mounted into the container, or
	// copied into the created container.
	envFile, dir := JobDir+"/env", ""
	if !copyRunner && d.Dir != "" {
		dir = filepath.Join(d.Dir, l.Run.ID)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return "", fmt.Errorf("the job's directory: %w", err)
		}
		// Renamed into place: a container of an earlier launch of the run reads one whole file.
		tmp := filepath.Join(dir, ".env.tmp")
		if err := os.WriteFile(tmp, []byte(envText.String()), 0o600); err != nil {
			os.RemoveAll(dir)
			return "", fmt.Errorf("the runner's environment file: %w", err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, "env")); err != nil {
			os.RemoveAll(dir)
			return "", fmt.Errorf("the runner's environment file: %w", err)
		}
		envFile = JobDir + "/secret/env"
	}
	// The entrypoint reads the environment file and removes it before the runner starts.
	script := `set -e
umask 077
set -a
. ` + envFile + `
set +a
rm -f ` + envFile + `
exec ` + cmdline.String() + "\n"
	create := []string{"create"}
	if dir != "" {
		create = []string{"run", "--detach"} // nothing to copy in: created and started at once
	}
	args := append(create, "--name", name, "--network=host", "--init", "--log-driver", "k8s-file",
		"--label", "ai.atelier.run="+l.Run.Workspace+"/"+l.Run.ID, "--label", "ai.atelier.compute="+l.Run.Workspace+"/"+t.Name,
		"-v", "atelier-envs-"+img.ID[:12]+":"+EnvsDir)
	if !copyRunner {
		args = append(args, "-v", d.Binary+":"+RunnerPath+":ro")
	}
	if dir != "" {
		args = append(args, "-v", dir+":"+JobDir+"/secret")
	}
	if c.CPUs > 0 {
		args = append(args, "--cpus", strconv.FormatFloat(c.CPUs, 'f', -1, 64))
	}
	if c.MemoryGB > 0 {
		args = append(args, "--memory", strconv.FormatInt(int64(c.MemoryGB*(1<<30)), 10))
	}
	args = append(args, "--entrypoint", "/bin/sh", img.Name, "-c", script)
	out, err := d.run(ctx, c.URL, nil, args...)
	if err != nil && strings.Contains(err.Error(), "already in use") {
		// The run's container exists: a server launched it and stopped before it recorded the
		// handle, and its successor launches the run again. A container of this run that
		// started is the run's job (its runner has the earlier tokens, which stay valid while
		// the run is leased): it is adopted, not restarted. One that never started, or not of
		// this run, is replaced.
		info, _ := d.run(ctx, c.URL, nil, "container", "inspect", "--format", `{{.Id}} {{.State.Status}} {{index .Config.Labels "ai.atelier.run"}}`, name)
		if f := strings.Fields(string(info)); len(f) == 3 && idPattern.MatchString(f[0]) && f[2] == l.Run.Workspace+"/"+l.Run.ID &&
			f[1] != "created" && f[1] != "configured" && f[1] != "initialized" {
			if dir != "" {
				os.Remove(filepath.Join(dir, "env"))
			}
			b, _ := json.Marshal(handle{Workspace: l.Run.Workspace, Target: t.Name, URL: c.URL, ID: f[0], Name: name, Dir: dir})
			d.log().Info("podman job adopted: the run's container was launched before", "compute", t.Name, "run", l.Run.ID, "container", f[0][:12], "state", f[1])
			return string(b), nil
		}
		d.run(ctx, c.URL, nil, "rm", "--force", "--time", "0", name)
		out, err = d.run(ctx, c.URL, nil, args...)
	}
	if err != nil {
		if dir != "" {
			d.run(context.WithoutCancel(ctx), c.URL, nil, "rm", "--force", "--time", "0", name)
			os.RemoveAll(dir)
		}
		return "", atelier.Errorf(atelier.EUNAVAILABLE, "compute target %s: creating the run's container: %v", t.Name, err)
	}
	id := strings.TrimSpace(string(out))
	if i := strings.LastIndexByte(id, '\n'); i >= 0 {
		id = id[i+1:] // after a pull's progress
	}
	if !idPattern.MatchString(id) {
		d.run(context.WithoutCancel(ctx), c.URL, nil, "rm", "--force", "--time", "0", name)
		if dir != "" {
			os.RemoveAll(dir)
		}
		return "", atelier.Errorf(atelier.EUNAVAILABLE, "compute target %s: podman create answered %q, not a container id", t.Name, out)
	}
	done := func() (string, error) {
		b, _ := json.Marshal(handle{Workspace: l.Run.Workspace, Target: t.Name, URL: c.URL, ID: id, Name: name, Dir: dir})
		d.log().Info("podman job launched", "compute", t.Name, "run", l.Run.ID, "container", id[:12], "image", img.Name)
		return string(b), nil
	}
	if dir != "" {
		return done()
	}
	fail := func(what string, err error) (string, error) {
		d.run(context.WithoutCancel(ctx), c.URL, nil, "rm", "--force", "--time", "0", id)
		return "", atelier.Errorf(atelier.EUNAVAILABLE, "compute target %s: %s: %v", t.Name, what, err)
	}
	// The job's directory with the environment file (and the runner, when copied), as a tar
	// stream into the created container: nothing of it touches a disk outside the container.
	pr, pw := io.Pipe()
	go func() {
		tw := tar.NewWriter(pw)
		now := time.Now()
		err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: strings.TrimPrefix(JobDir, "/") + "/", Mode: 0o700, ModTime: now})
		if err == nil {
			err = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: strings.TrimPrefix(JobDir, "/") + "/env", Mode: 0o600, Size: int64(envText.Len()), ModTime: now})
		}
		if err == nil {
			_, err = io.WriteString(tw, envText.String())
		}
		if err == nil && copyRunner {
			dir := strings.TrimPrefix(filepath.Dir(RunnerPath), "/")
			for i, p := 0, ""; err == nil && i < len(strings.Split(dir, "/")); i++ {
				p = strings.Join(strings.Split(dir, "/")[:i+1], "/")
				err = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: p + "/", Mode: 0o755, ModTime: now})
			}
			if err == nil {
				err = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: strings.TrimPrefix(RunnerPath, "/"), Mode: 0o755, Size: binaryInfo.Size(), ModTime: now})
			}
			if err == nil {
				_, err = io.Copy(tw, binary)
			}
		}
		if err == nil {
			err = tw.Close()
		}
		pw.CloseWithError(err)
	}()
	_, err = d.run(ctx, c.URL, pr, "cp", "-", id+":/")
	pr.Close()
	if err != nil {
		return fail("putting the runner's environment in the container", err)
	}
	if _, err := d.run(ctx, c.URL, nil, "start", id); err != nil {
		return fail("starting the run's container", err)
	}
	return done()
}

// listedContainer is a container of a job in a service's listing.
type listedContainer struct {
	ID       string `json:"Id"`
	State    string `json:"State"`
	ExitCode int    `json:"ExitCode"`
}

// listing is one `podman ps` of a service's job containers.
type listing struct {
	mu         sync.Mutex
	at         time.Time
	containers map[string]listedContainer
}

// DefaultListingTTL is how long one listing of a service's job containers answers Status: the
// controller asks about every job each second, and one podman process a pass costs what one
// a job would.
const DefaultListingTTL = 500 * time.Millisecond

// listed returns a container as the service's listing of job containers has it, listed anew
// when older than ListingTTL; false when it is not listed or the listing failed.
func (d *Driver) listed(ctx context.Context, url, id string) (listedContainer, bool) {
	d.mu.Lock()
	if d.listings == nil {
		d.listings = map[string]*listing{}
	}
	l := d.listings[url]
	if l == nil {
		l = &listing{}
		d.listings[url] = l
	}
	d.mu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	ttl := d.ListingTTL
	if ttl == 0 {
		ttl = DefaultListingTTL
	}
	if time.Since(l.at) > ttl {
		out, err := d.run(ctx, url, nil, "ps", "--all", "--no-trunc", "--filter", "label=ai.atelier.run", "--format", "json")
		var cs []listedContainer
		if err != nil || json.Unmarshal(out, &cs) != nil {
			l.at, l.containers = time.Time{}, nil
			return listedContainer{}, false
		}
		l.at, l.containers = time.Now(), make(map[string]listedContainer, len(cs))
		for _, c := range cs {
			l.containers[c.ID] = c
		}
	}
	c, ok := l.containers[id]
	return c, ok
}

// Status reads the container's state. A service that does not answer is an error (the
// controller asks again); a container podman no longer knows is Gone, with the reason.
func (d *Driver) Status(ctx context.Context, h string) (atelier.JobState, error) {
	j, err := parse(h)
	if err != nil {
		return atelier.JobState{}, err
	}
	if c, ok := d.listed(ctx, j.URL, j.ID); ok && c.State != "removing" {
		switch c.State {
		case "exited", "stopped":
			return atelier.JobState{Phase: atelier.JobExited, ExitCode: c.ExitCode}, nil
		case "running", "paused", "stopping":
			return atelier.JobState{Phase: atelier.JobRunning}, nil
		}
	}
	// Not in the listing (launched since, or gone), or in a state of its own: asked alone.
	out, err := d.run(ctx, j.URL, nil, "container", "inspect", "--format", "{{.State.Status}} {{.State.ExitCode}} {{.State.OOMKilled}}", j.ID)
	if noSuchContainer(err) {
		return atelier.JobState{Phase: atelier.JobGone, Detail: fmt.Sprintf("the run's container %s (%s) on compute target %s is gone: it was removed outside atelier, or podman's storage was reset",
			j.Name, j.ID[:12], j.Target)}, nil
	}
	if err != nil {
		return atelier.JobState{}, atelier.Errorf(atelier.EUNAVAILABLE, "compute target %s: reading the state of container %s: %v", j.Target, j.Name, err)
	}
	f := strings.Fields(string(out))
	if len(f) != 3 {
		return atelier.JobState{}, atelier.Errorf(atelier.EUNAVAILABLE, "compute target %s: podman inspect answered %q", j.Target, out)
	}
	switch f[0] {
	case "exited", "stopped":
		code, err := strconv.Atoi(f[1])
		if err != nil {
			return atelier.JobState{}, atelier.Errorf(atelier.EUNAVAILABLE, "compute target %s: podman inspect answered %q", j.Target, out)
		}
		st := atelier.JobState{Phase: atelier.JobExited, ExitCode: code}
		if f[2] == "true" {
			st.Detail = fmt.Sprintf("the container %s was killed for exceeding its memory limit (podman.memory_gb of compute target %s)", j.Name, j.Target)
		}
		return st, nil
	case "removing":
		return atelier.JobState{Phase: atelier.JobGone, Detail: fmt.Sprintf("the run's container %s on compute target %s is being removed", j.Name, j.Target)}, nil
	case "created", "configured", "initialized":
		// Never started (a launch interrupted between create and start): nothing will run it.
		return atelier.JobState{Phase: atelier.JobGone, Detail: fmt.Sprintf("the run's container %s on compute target %s was created but never started", j.Name, j.Target)}, nil
	}
	return atelier.JobState{Phase: atelier.JobRunning}, nil // running, paused, stopping
}

// Cancel sends the runner SIGTERM (through the container's init): it stops the script's
// process group and records the run's end. A runner that does not stop within StopTimeout
// has its container killed.
func (d *Driver) Cancel(ctx context.Context, h string) error {
	j, err := parse(h)
	if err != nil {
		return err
	}
	if _, err := d.run(ctx, j.URL, nil, "kill", "--signal", "TERM", j.ID); err != nil {
		if noSuchContainer(err) || strings.Contains(err.Error(), "not running") || strings.Contains(err.Error(), "state improper") {
			return nil
		}
		return atelier.Errorf(atelier.EUNAVAILABLE, "compute target %s: stopping container %s: %v", j.Target, j.Name, err)
	}
	timeout := d.StopTimeout
	if timeout == 0 {
		timeout = time.Minute
	}
	go func() {
		// The backstop: podman stop returns as soon as the container exits.
		ctx, cancel := context.WithTimeout(context.Background(), timeout+30*time.Second)
		defer cancel()
		d.run(ctx, j.URL, nil, "stop", "--time", strconv.Itoa(int(timeout.Seconds())), j.ID)
	}()
	return nil
}

// Logs returns the runner's own output (the container's) from offset.
func (d *Driver) Logs(ctx context.Context, h string, offset int64) (io.ReadCloser, error) {
	j, err := parse(h)
	if err != nil {
		return nil, err
	}
	if offset < 0 {
		return nil, atelier.Errorf(atelier.EINVALID, "offset %d is negative", offset)
	}
	full := []string{"logs", j.ID}
	if j.URL != "" {
		full = append([]string{"--url", j.URL}, full...)
	}
	cmd := exec.CommandContext(ctx, d.cli(), full...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out // one pipe: the order podman wrote them in
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(out.String())
		if strings.Contains(msg, "no such container") || strings.Contains(msg, "no container with name or ID") {
			return nil, atelier.Errorf(atelier.ENOTFOUND, "the job's container %s is gone (released)", j.Name)
		}
		return nil, atelier.Errorf(atelier.EUNAVAILABLE, "compute target %s: reading the logs of container %s: %v: %s", j.Target, j.Name, err, msg)
	}
	b := out.Bytes()
	// A container killed from outside (podman kill, stop or rm, the memory limit) has no word
	// of its runner on it: the driver's last line says what podman saw.
	if st, err := d.run(ctx, j.URL, nil, "container", "inspect", "--format", "{{.State.Status}} {{.State.ExitCode}} {{.State.OOMKilled}}", j.ID); err == nil {
		if f := strings.Fields(string(st)); len(f) == 3 && (f[0] == "exited" || f[0] == "stopped") {
			if code, _ := strconv.Atoi(f[1]); f[2] == "true" {
				b = fmt.Appendf(b, "atelier: the container %s was killed for exceeding its memory limit (exit code %d): raise podman.memory_gb of compute target %s\n", j.Name, code, j.Target)
			} else if code > 128 && code <= 128+64 {
				b = fmt.Appendf(b, "atelier: the container %s was killed by signal %d (exit code %d): podman kill, stop or rm outside atelier, or the machine ran out of memory\n", j.Name, code-128, code)
			}
		}
	}
	if offset >= int64(len(b)) {
		b = nil
	} else {
		b = b[offset:]
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

// Release removes the ended job's container.
func (d *Driver) Release(ctx context.Context, h string) error {
	j, err := parse(h)
	if err != nil {
		return err
	}
	_, err = d.run(ctx, j.URL, nil, "rm", j.ID)
	switch {
	case err == nil || noSuchContainer(err):
		// The job's directory, when it is one of this driver's (a handle names no other).
		if j.Dir != "" && d.Dir != "" && filepath.Dir(j.Dir) == filepath.Clean(d.Dir) && runIDPattern.MatchString(filepath.Base(j.Dir)) {
			os.RemoveAll(j.Dir)
		}
		return nil
	case strings.Contains(err.Error(), "running") || strings.Contains(err.Error(), "state improper"):
		return atelier.Errorf(atelier.ECONFLICT, "the job's container %s is still running", j.Name)
	}
	return atelier.Errorf(atelier.EUNAVAILABLE, "compute target %s: removing container %s: %v", j.Target, j.Name, err)
}

// Check checks that a target can run jobs: podman answers (the service at podman.url, or the
// server's own podman), the image is there or can be pulled (or the server's default base
// loaded), is of the server's OS and architecture, and has /bin/sh and python3.
func (d *Driver) Check(ctx context.Context, t *atelier.ComputeTarget, _ atelier.ComputeCredentials) error {
	c, err := target(t)
	if err != nil {
		return err
	}
	if c.URL == "" {
		if _, err := exec.LookPath(d.cli()); err != nil {
			return atelier.Errorf(atelier.EINVALID, "compute target %s: podman is not installed on the server's machine (apt-get install podman), or give podman.url, a Podman service", t.Name)
		}
	}
	if _, err := d.run(ctx, c.URL, nil, "version", "--format", "{{.Server.Version}}"); err != nil {
		where := "the server's podman"
		fix := "see `podman info` on the server's machine"
		if c.URL != "" {
			where = "the Podman service at " + c.URL
			fix = "start it (systemctl start podman.socket, or podman system service --time=0 " + c.URL + ") or fix podman.url"
		}
		return atelier.Errorf(atelier.EINVALID, "compute target %s: %s does not answer (%v): %s", t.Name, where, err, fix)
	}
	img, err := d.image(ctx, t)
	if err != nil {
		return err
	}
	// python3, and the runner itself where it is bind-mounted (it is linked against glibc).
	args := []string{"run", "--rm", "--network=none", "--entrypoint", "/bin/sh"}
	script := "python3 --version 2>&1 || echo no-python3"
	bound := !d.CopyRunner && !remote(c.URL) && d.Binary != ""
	if bound {
		args = append(args, "-v", d.Binary+":"+RunnerPath+":ro")
		script += "; echo; " + RunnerPath + " version 2>&1 || echo no-runner"
	}
	out, err := d.run(ctx, c.URL, nil, append(args, img.Name, "-c", script)...)
	if err != nil {
		return atelier.Errorf(atelier.EINVALID, "compute target %s: running /bin/sh in the image %s failed (%v): the runner needs an image with /bin/sh and python3", t.Name, img.Name, err)
	}
	python, runner, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	if v := strings.TrimSpace(python); !strings.HasPrefix(v, "Python 3") {
		return atelier.Errorf(atelier.EINVALID, "compute target %s: `python3 --version` fails in the image %s (%s): give an image with Python 3 on its PATH (--image)", t.Name, img.Name, v)
	}
	if runner = strings.TrimSpace(runner); bound && !strings.HasPrefix(runner, "atelier ") {
		return atelier.Errorf(atelier.EINVALID, "compute target %s: the job runner (this server's binary) does not start in the image %s (%s): give a glibc-based image (Debian, Ubuntu) of the server's glibc version or newer",
			t.Name, img.Name, runner)
	}
	return nil
}
