package local

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/atelier-ml/atelier"
)

// EnvCache builds Python environments once per specification: the interpreter and the content
// of the requirements (or conda) file. A second run with the same specification reuses the
// environment without installing anything.
type EnvCache struct {
	Dir string
	// DefaultPython is used when a run names no interpreter.
	DefaultPython string
	// Interpreters maps the interpreter names the server trusts (its default) to the real
	// executables behind them (see python.Resolve): a run uses the executable, which a
	// confined run can reach where a shim in the server's home could not be.
	Interpreters map[string]string
	// Isolation confines the installers, which run code of the packages they install.
	Isolation *Isolation

	mu    sync.Mutex
	locks map[string]*sync.Mutex
}

// lock serializes builds of one environment; different environments build in parallel.
func (c *EnvCache) lock(key string) *sync.Mutex {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.locks == nil {
		c.locks = map[string]*sync.Mutex{}
	}
	if c.locks[key] == nil {
		c.locks[key] = &sync.Mutex{}
	}
	return c.locks[key]
}

// Python returns the interpreter to run a script with, building its environment if needed.
// srcDir is the run's working directory (where the requirements file is); log receives the
// installer's output.
func (c *EnvCache) Python(ctx context.Context, env atelier.EnvironmentConfig, srcDir string, log io.Writer) (string, error) {
	python := env.Python
	if python == "" {
		python = c.DefaultPython
	}
	if python == "" {
		python = "python3"
	}
	interp, ok := c.Interpreters[python]
	if !ok {
		var err error
		if interp, err = exec.LookPath(python); err != nil {
			return "", atelier.Errorf(atelier.EINVALID, "python interpreter %q not found on the compute target", python)
		}
	}
	if env.Conda != "" {
		return c.conda(ctx, env, srcDir, log)
	}
	if env.Requirements == "" {
		return interp, nil
	}
	reqs, err := os.ReadFile(filepath.Join(srcDir, filepath.FromSlash(env.Requirements)))
	if err != nil {
		return "", atelier.Errorf(atelier.EINVALID, "reading requirements file %s: %v", env.Requirements, err)
	}
	key := specHash("venv", interp, string(reqs))
	dir := filepath.Join(c.Dir, key)
	venvPython := filepath.Join(dir, "bin", "python")
	l := c.lock(key)
	l.Lock()
	defer l.Unlock()
	// Job runners of other runs share the directory: a file lock serializes them too.
	unlock, err := lockFile(ctx, filepath.Join(c.Dir, ".locks", key))
	if err != nil {
		return "", err
	}
	defer unlock()
	if _, err := os.Stat(filepath.Join(dir, ".ready")); err == nil {
		fmt.Fprintf(log, "reusing environment %s (same interpreter and %s)\n", key[:12], env.Requirements)
		return venvPython, nil
	}
	os.RemoveAll(dir) // a half-built environment from an interrupted build
	fmt.Fprintf(log, "creating environment %s with %s\n", key[:12], interp)
	defer os.RemoveAll(home(dir))
	if err := c.prepareDir(dir); err != nil {
		return "", err
	}
	if err := c.run(ctx, log, srcDir, dir, interp, "-m", "venv", dir); err != nil {
		os.RemoveAll(dir)
		return "", atelier.Errorf(atelier.EINVALID, "creating a virtual environment with %s failed: %v", interp, err)
	}
	fmt.Fprintf(log, "installing %s\n", env.Requirements)
	if err := c.run(ctx, log, srcDir, dir, venvPython, "-m", "pip", "install", "--disable-pip-version-check", "--no-input",
		"-r", filepath.FromSlash(env.Requirements)); err != nil {
		os.RemoveAll(dir)
		return "", atelier.Errorf(atelier.EINVALID, "pip install -r %s failed (%v); the installer's output is in %s", env.Requirements, err, PrepareLogPath)
	}
	if err := os.WriteFile(filepath.Join(dir, ".ready"), reqs, 0o644); err != nil {
		return "", err
	}
	return venvPython, nil
}

// conda builds an environment from an environment.yml with mamba or conda.
func (c *EnvCache) conda(ctx context.Context, env atelier.EnvironmentConfig, srcDir string, log io.Writer) (string, error) {
	tool := ""
	for _, t := range []string{"mamba", "micromamba", "conda"} {
		if p, err := exec.LookPath(t); err == nil {
			tool = p
			break
		}
	}
	if tool == "" {
		return "", atelier.Errorf(atelier.EINVALID, "the run asks for a conda environment (%s), but neither conda nor mamba is installed on the compute target", env.Conda)
	}
	spec, err := os.ReadFile(filepath.Join(srcDir, filepath.FromSlash(env.Conda)))
	if err != nil {
		return "", atelier.Errorf(atelier.EINVALID, "reading conda file %s: %v", env.Conda, err)
	}
	key := specHash("conda", tool, string(spec))
	dir := filepath.Join(c.Dir, key)
	l := c.lock(key)
	l.Lock()
	defer l.Unlock()
	unlock, err := lockFile(ctx, filepath.Join(c.Dir, ".locks", key))
	if err != nil {
		return "", err
	}
	defer unlock()
	if _, err := os.Stat(filepath.Join(dir, ".ready")); err == nil {
		return filepath.Join(dir, "bin", "python"), nil
	}
	os.RemoveAll(dir)
	defer os.RemoveAll(home(dir))
	if err := c.prepareDir(dir); err != nil {
		return "", err
	}
	if err := c.run(ctx, log, srcDir, dir, tool, "env", "create", "--yes", "--prefix", dir, "--file", filepath.FromSlash(env.Conda)); err != nil {
		os.RemoveAll(dir)
		return "", atelier.Errorf(atelier.EINVALID, "%s env create -f %s failed: %v", filepath.Base(tool), env.Conda, err)
	}
	os.WriteFile(filepath.Join(dir, ".ready"), spec, 0o644)
	return filepath.Join(dir, "bin", "python"), nil
}

func specHash(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		io.WriteString(h, p)
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// prepareDir makes an environment's directory and the installers' home, owned by the user
// the installers run as.
func (c *EnvCache) prepareDir(dir string) error {
	os.RemoveAll(home(dir)) // an interrupted build's
	for _, d := range []string{dir, home(dir)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	return c.Isolation.handOver(nil, dir, home(dir))
}

// home is the home directory of the installers building the environment dir (pip's cache is
// there): one per build, removed after it, so that a build cannot leave anything (a wheel in
// pip's cache) another build would use.
func home(dir string) string { return dir + ".home" }

// run runs a preparation command in srcDir, confined to writing the environment's directory
// envDir and the installers' home, streaming its output to log.
func (c *EnvCache) run(ctx context.Context, log io.Writer, srcDir, envDir, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = srcDir
	cmd.Stdout, cmd.Stderr = log, log
	cmd.Env = append(serverEnviron(), "HOME="+home(envDir))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := c.Isolation.wrap(cmd, []string{envDir, home(envDir)}, []string{srcDir}); err != nil {
		return err
	}
	return cmd.Run()
}

// lockFile takes an exclusive lock on path (created if needed) for processes of this machine,
// waiting for it until ctx ends; the function returned releases it.
func lockFile(ctx context.Context, path string) (func(), error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
		}
		if err != syscall.EWOULDBLOCK {
			f.Close()
			return nil, fmt.Errorf("locking %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}
