// Package slurmtest starts a real one-node Slurm cluster for tests: munged, slurmctld, slurmd
// and slurmrestd (Debian's slurm-wlm, munge and slurmrestd packages) on loopback ports, with
// their configuration, keys, state and logs in a temporary directory of their own.
package slurmtest

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Partition is the cluster's one partition (its default). The node has 8 CPUs and 2 GPUs (a
// count only: no devices), whatever the machine has.
const Partition = "debug"

// Cluster is a running cluster.
type Cluster struct {
	// URL is slurmrestd's (JWT authentication, API v0.0.38).
	URL string
	// Dir holds the configuration, state and logs; Conf is its slurm.conf (SLURM_CONF for
	// the Slurm commands).
	Dir  string
	Conf string
	key  []byte // the cluster's jwt_key
	logs []*procLog
}

type procLog struct {
	name string
	mu   sync.Mutex
	b    bytes.Buffer
}

func (l *procLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// Binaries are the programs a cluster needs.
var Binaries = []string{"munged", "slurmctld", "slurmd", "slurmrestd", "scontrol", "sinfo", "squeue", "scancel", "sbatch"}

func find(name string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/usr/bin"} {
		if p := filepath.Join(dir, name); fileExists(p) {
			return p
		}
	}
	return ""
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// Available says why a cluster cannot be started here ("" when it can).
func Available() string {
	var missing []string
	for _, b := range Binaries {
		if find(b) == "" {
			missing = append(missing, b)
		}
	}
	if len(missing) > 0 {
		return "Slurm is not installed (no " + strings.Join(missing, ", ") + "): apt-get install slurm-wlm slurmrestd munge"
	}
	if os.Geteuid() != 0 {
		return "slurmd runs jobs as their users and needs root"
	}
	return ""
}

func freePort(tb testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Start starts a cluster, stopped (its jobs canceled) at the end of the test. Without Slurm
// installed or root, it skips saying why, unless CI is set: there it fails (.ci/run installs
// Slurm).
func Start(tb testing.TB) *Cluster {
	tb.Helper()
	if why := Available(); why != "" {
		if os.Getenv("CI") != "" {
			tb.Fatalf("a real Slurm cluster is needed (CI is set, so this fails instead of skipping): %s", why)
		}
		tb.Skipf("a real Slurm cluster is needed: %s", why)
	}
	dir, err := os.MkdirTemp("", "atelier-slurm-")
	if err != nil {
		tb.Fatal(err)
	}
	// slurmrestd runs as nobody and reads slurm.conf.
	os.Chmod(dir, 0o755)
	c := &Cluster{Dir: dir, Conf: filepath.Join(dir, "slurm.conf")}
	for _, d := range []string{"ctld", "d", "log", "run"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			tb.Fatal(err)
		}
	}
	munge := make([]byte, 1024)
	c.key = make([]byte, 32)
	rand.Read(munge)
	rand.Read(c.key)
	write := func(name string, data []byte, mode os.FileMode) {
		if err := os.WriteFile(filepath.Join(dir, name), data, mode); err != nil {
			tb.Fatal(err)
		}
	}
	write("munge.key", munge, 0o600)
	write("jwt.key", c.key, 0o600)
	ctldPort, dPort, restPort := freePort(tb), freePort(tb), freePort(tb)
	p := func(name string) string { return filepath.Join(dir, name) }
	conf := strings.Join([]string{
		"ClusterName=atest",
		"SlurmctldHost=localhost(127.0.0.1)",
		"SlurmctldPort=" + strconv.Itoa(ctldPort),
		"SlurmdPort=" + strconv.Itoa(dPort),
		"SlurmUser=root",
		"AuthType=auth/munge",
		"CredType=cred/munge",
		"AuthInfo=socket=" + p("run/munge.sock"),
		"AuthAltTypes=auth/jwt",
		"AuthAltParameters=jwt_key=" + p("jwt.key"),
		"StateSaveLocation=" + p("ctld"),
		"SlurmdSpoolDir=" + p("d"),
		"SlurmctldPidFile=" + p("run/slurmctld.pid"),
		"SlurmdPidFile=" + p("run/slurmd.pid"),
		"SlurmctldLogFile=" + p("log/slurmctld.log"),
		"SlurmdLogFile=" + p("log/slurmd.log"),
		"ProctrackType=proctrack/linuxproc",
		"TaskPlugin=task/none",
		"JobAcctGatherType=jobacct_gather/none",
		"AccountingStorageType=accounting_storage/none",
		"MpiDefault=none",
		"SelectType=select/cons_tres",
		"SelectTypeParameters=CR_Core",
		"SlurmdParameters=config_overrides",
		"ReturnToService=2",
		"KillWait=5",
		"GresTypes=gpu",
		"NodeName=localhost NodeAddr=127.0.0.1 CPUs=8 RealMemory=4096 Gres=gpu:2 State=UNKNOWN",
		"PartitionName=" + Partition + " Nodes=ALL Default=YES MaxTime=INFINITE State=UP",
	}, "\n") + "\n"
	write("slurm.conf", []byte(conf), 0o644)
	// Two GPUs without devices: a count needs device files, any will do.
	write("gres.conf", []byte("AutoDetect=off\nNodeName=localhost Name=gpu File=/dev/null\nNodeName=localhost Name=gpu File=/dev/zero\n"), 0o644)

	ctx, cancel := context.WithCancel(context.Background())
	var cmds []*exec.Cmd
	start := func(name string, env []string, args ...string) {
		l := &procLog{name: name}
		c.logs = append(c.logs, l)
		cmd := exec.CommandContext(ctx, find(name), args...)
		cmd.Env = append(append(os.Environ(), "SLURM_CONF="+c.Conf), env...)
		cmd.Stdout, cmd.Stderr = l, l
		if err := cmd.Start(); err != nil {
			tb.Fatalf("starting %s: %v", name, err)
		}
		cmds = append(cmds, cmd)
	}
	tb.Cleanup(func() {
		// Jobs first: their processes (runners, scripts) outlive the daemons otherwise.
		c.Command("scancel", "--full", "--user=root").Run()
		deadline := time.Now().Add(15 * time.Second)
		for time.Now().Before(deadline) {
			out, err := c.Command("squeue", "-h", "-o", "%i").Output()
			if err != nil || len(bytes.TrimSpace(out)) == 0 {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		cancel()
		for i := len(cmds) - 1; i >= 0; i-- {
			cmds[i].Wait()
		}
		if t, ok := tb.(interface{ Failed() bool }); ok && t.Failed() {
			for _, f := range []string{"log/slurmctld.log", "log/slurmd.log"} {
				b, _ := os.ReadFile(p(f))
				tb.Logf("%s:\n%s", f, lastLines(string(b), 40))
			}
			for _, l := range c.logs {
				l.mu.Lock()
				tb.Logf("%s:\n%s", l.name, lastLines(l.b.String(), 40))
				l.mu.Unlock()
			}
		}
		os.RemoveAll(dir)
	})

	start("munged", nil, "-F", "-f", "--socket="+p("run/munge.sock"), "--key-file="+p("munge.key"), "--log-file="+p("log/munged.log"),
		"--pid-file="+p("run/munged.pid"), "--seed-file="+p("run/munge.seed"))
	waitFor(tb, "munged's socket", func() bool { return fileExists(p("run/munge.sock")) })
	start("slurmctld", nil, "-D", "-f", c.Conf)
	start("slurmd", nil, "-D", "-N", "localhost", "-f", c.Conf)
	// slurmrestd refuses to run as root: it drops to nobody.
	start("slurmrestd", []string{"SLURM_JWT=daemon"}, "-f", c.Conf, "-a", "rest_auth/jwt", "-u", "nobody", "-g", "nogroup", "-s", "openapi/v0.0.38",
		"127.0.0.1:"+strconv.Itoa(restPort))
	c.URL = "http://127.0.0.1:" + strconv.Itoa(restPort)
	waitFor(tb, "the node to be idle", func() bool {
		out, err := c.Command("sinfo", "-h", "-o", "%t").Output()
		return err == nil && strings.TrimSpace(string(out)) == "idle"
	})
	token := c.Token("root", time.Hour)
	waitFor(tb, "slurmrestd to answer", func() bool {
		req, _ := http.NewRequest("GET", c.URL+"/slurm/v0.0.38/ping", nil)
		req.Header.Set("X-SLURM-USER-NAME", "root")
		req.Header.Set("X-SLURM-USER-TOKEN", token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	return c
}

func waitFor(tb testing.TB, what string, ok func() bool) {
	tb.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			tb.Fatalf("the Slurm cluster did not start: waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Command is a Slurm command (scontrol, squeue, sbatch...) of this cluster.
func (c *Cluster) Command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(find(name), args...)
	cmd.Env = append(os.Environ(), "SLURM_CONF="+c.Conf)
	return cmd
}

// Token returns a JWT for user, signed with the cluster's key, valid for lifespan (expired
// when lifespan is negative), as `scontrol token` makes them.
func (c *Cluster) Token(user string, lifespan time.Duration) string {
	return SignToken(c.key, user, time.Now().Add(lifespan))
}

// SignToken makes an HS256 JWT naming a Slurm user ("sun") that expires at exp.
func SignToken(key []byte, user string, exp time.Time) string {
	enc := base64.RawURLEncoding
	header, _ := json.Marshal(map[string]string{"alg": "HS256", "typ": "JWT"})
	payload, _ := json.Marshal(map[string]any{"iat": time.Now().Unix() - 1, "exp": exp.Unix(), "sun": user})
	msg := enc.EncodeToString(header) + "." + enc.EncodeToString(payload)
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(msg))
	return msg + "." + enc.EncodeToString(mac.Sum(nil))
}

// Jobs lists the cluster's jobs as squeue sees them: id, state and name.
func (c *Cluster) Jobs() (string, error) {
	out, err := c.Command("squeue", "-h", "-o", "%i %T %j").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("squeue: %v: %s", err, out)
	}
	return string(out), nil
}
