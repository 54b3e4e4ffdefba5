package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/compute/computetest"
	sshcompute "github.com/atelier-ml/atelier/compute/ssh"
)

// sshUser is the account the test's sshd lets in, created when missing.
const sshUser = "atelier-ssh"

// sshMachine is a real sshd on a free loopback port, letting sshUser in with a key.
type sshMachine struct {
	port    int
	hostKey string // "ssh-ed25519 AAAA..."
	key     string // the client's private key (OpenSSH PEM)
	home    string // sshUser's home
	log     *lockedLog
	pid     int // sshd's listener
}

// newSSHKey returns an ed25519 key as an OpenSSH private key file and its public key line.
func newSSHKey(t testing.TB) (private, public string) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := gossh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	sp, err := gossh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(block)), strings.TrimSpace(string(gossh.MarshalAuthorizedKey(sp)))
}

// startSSHD starts sshd (openssh-server; .ci/run installs it) as root with a generated host
// key, letting sshUser in with a generated key. Without sshd or root it skips, saying why,
// unless CI is set: there it fails. extra are more sshd_config lines.
func startSSHD(t testing.TB, extra ...string) *sshMachine {
	t.Helper()
	unavailable := func(why string) {
		t.Helper()
		if os.Getenv("CI") != "" {
			t.Fatalf("the ssh driver tests need %s (CI is set, so this fails instead of skipping)", why)
		}
		t.Skipf("the ssh driver tests need %s", why)
	}
	sshd, err := exec.LookPath("sshd")
	if err != nil {
		if _, err := os.Stat("/usr/sbin/sshd"); err != nil {
			unavailable("sshd (apt-get install openssh-server)")
		}
		sshd = "/usr/sbin/sshd"
	}
	if os.Geteuid() != 0 {
		unavailable("root (to run sshd and log in as user " + sshUser + ")")
	}
	if _, err := user.Lookup(sshUser); err != nil {
		out, err := exec.Command("useradd", "-m", "-s", "/bin/sh", sshUser).CombinedOutput()
		if _, lerr := user.Lookup(sshUser); lerr != nil {
			t.Fatalf("useradd %s: %v\n%s", sshUser, err, out)
		}
	}
	// With UsePAM no, a new account's locked password ('!') refuses even key logins.
	if out, err := exec.Command("usermod", "-p", "*", sshUser).CombinedOutput(); err != nil {
		t.Fatalf("usermod: %v\n%s", err, out)
	}
	u, err := user.Lookup(sshUser)
	if err != nil {
		t.Fatal(err)
	}
	// sshd reads the authorized keys as the user: a directory others may enter.
	dir, err := os.MkdirTemp("", "atelier-sshd-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	hostPriv, hostPub := newSSHKey(t)
	clientPriv, clientPub := newSSHKey(t)
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	hostKeyFile := write("host_ed25519", hostPriv)
	keys := write("authorized_keys", clientPub+"\n")
	os.Chmod(keys, 0o644)
	os.MkdirAll("/run/sshd", 0o755)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	// StrictModes no: the authorized keys live in the test's directory, not the account's home.
	config := write("sshd_config", strings.Join([]string{"Port " + strconv.Itoa(port), "ListenAddress 127.0.0.1", "HostKey " + hostKeyFile,
		"PidFile none", "PasswordAuthentication no", "KbdInteractiveAuthentication no", "PubkeyAuthentication yes",
		"AuthorizedKeysFile " + keys, "StrictModes no", "UsePAM no", "AllowUsers " + sshUser, "LogLevel VERBOSE"}, "\n")+"\n"+strings.Join(extra, "\n")+"\n")
	m := &sshMachine{port: port, hostKey: hostPub, key: clientPriv, home: u.HomeDir, log: &lockedLog{}}
	cmd := exec.Command(sshd, "-D", "-e", "-f", config)
	cmd.Stdout, cmd.Stderr = m.log, m.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	m.pid = cmd.Process.Pid
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("sshd's log:\n%s", m.log.String())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sshd does not listen on port %d: %v\n%s", port, err, m.log.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	return m
}

// target is an ssh compute target of the machine.
func (m *sshMachine) target(hostKey string) *atelier.ComputeTarget {
	return &atelier.ComputeTarget{Name: "box", Kind: atelier.ComputeSSH, Workspace: atelier.DefaultWorkspace,
		SSH: &atelier.SSHCompute{Host: "127.0.0.1", Port: m.port, User: sshUser, HostKey: hostKey}}
}

// logins counts the SSH logins sshd accepted.
func (m *sshMachine) logins() int {
	return strings.Count(m.log.String(), "Accepted publickey for "+sshUser)
}

// sshDriver is the ssh driver as the server wires it, uploading the real binary to a directory
// of its own in sshUser's home (removed at the end, its runners killed).
func sshDriver(t *testing.T, m *sshMachine, target *atelier.ComputeTarget) *sshcompute.Driver {
	t.Helper()
	bin, err := buildBinary()
	if err != nil {
		t.Fatal(err)
	}
	var b [6]byte
	rand.Read(b[:])
	root := ".cache/atelier-test-" + hex.EncodeToString(b[:])
	creds := atelier.ComputeCredentials{SSHPrivateKey: m.key}
	d := sshcompute.New(bin, func(ctx context.Context, ws, name string) (*atelier.ComputeTarget, atelier.ComputeCredentials, error) {
		if ws != target.Workspace || name != target.Name {
			return nil, creds, atelier.Errorf(atelier.ENOTFOUND, "no compute target %q", name)
		}
		return target, creds, nil
	}, "--server-wait", "3s", "--cancel-grace", "300ms")
	d.Root = root
	t.Cleanup(func() {
		d.Close()
		killRunnersUnder(filepath.Join(m.home, root))
		os.RemoveAll(filepath.Join(m.home, root))
	})
	return d
}

// sshHarness is the conformance suite's harness for the ssh driver over a real server.
func sshHarness(s *jobStack, d *sshcompute.Driver, target *atelier.ComputeTarget, key string) computetest.Harness {
	return s.harness(d, func(l *atelier.JobLaunch) {
		l.Target, l.Credentials = target, atelier.ComputeCredentials{SSHPrivateKey: key}
	})
}

// TestSSHDriverConformance runs the compute driver suite against the ssh driver: a real sshd,
// the real binary uploaded to the machine and its runner talking to a real server. Watching
// the jobs reuses one connection.
func TestSSHDriverConformance(t *testing.T) {
	needPython(t)
	m := startSSHD(t)
	s := startJobStack(t)
	target := m.target(m.hostKey)
	d := sshDriver(t, m, target)
	computetest.TestDriver(t, sshHarness(s, d, target, m.key))
	// Dozens of looks at the jobs (Status polls every 20 ms) went over a connection or two.
	if n := m.logins(); n == 0 || n > 3 {
		t.Errorf("the driver logged in %d times over the suite, want one kept connection (at most 3)", n)
	}
}

// TestSSHDriverCheck: a usable target passes; a wrong host key, a refused key, an encrypted key
// without its passphrase and a closed port each give a clear EINVALID naming the target and
// what to fix.
func TestSSHDriverCheck(t *testing.T) {
	m := startSSHD(t)
	d := sshcompute.New("/nonexistent", nil)
	ctx := jobCtx(t)
	if err := d.Check(ctx, m.target(m.hostKey), atelier.ComputeCredentials{SSHPrivateKey: m.key}); err != nil {
		t.Fatalf("Check of a usable target: %v", err)
	}
	if err := d.Check(ctx, m.target(""), atelier.ComputeCredentials{SSHPrivateKey: m.key}); err != nil {
		t.Fatalf("Check of a usable target without a host key: %v", err)
	}
	_, otherPub := newSSHKey(t)
	otherPriv, _ := newSSHKey(t)
	_, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	block, _ := gossh.MarshalPrivateKeyWithPassphrase(edPriv, "", []byte("secret"))
	encrypted := string(pem.EncodeToMemory(block))
	// A machine whose sessions find no python3: a PATH of only sh, uname and setsid.
	bare := t.TempDir()
	os.Chmod(bare, 0o755)
	os.Chmod(filepath.Dir(bare), 0o755)
	for _, name := range []string{"sh", "uname", "setsid"} {
		p, err := exec.LookPath(name)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(p, filepath.Join(bare, name)); err != nil {
			t.Fatal(err)
		}
	}
	noPython := startSSHD(t, "SetEnv PATH="+bare)
	noPythonTarget := noPython.target(noPython.hostKey)
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	closedPort := closed.Addr().(*net.TCPAddr).Port
	closed.Close()
	for _, tc := range []struct {
		name   string
		target *atelier.ComputeTarget
		key    string
		code   string
		want   []string
	}{
		{"WrongHostKey", m.target(otherPub), m.key, atelier.EINVALID, []string{"box", "host key", "ssh.host_key", m.hostKey}},
		{"RefusedKey", m.target(m.hostKey), otherPriv, atelier.EINVALID, []string{"box", "refused the key", sshUser, "authorized_keys"}},
		{"EncryptedWithoutPassphrase", m.target(m.hostKey), encrypted, atelier.EINVALID, []string{"box", "ssh_passphrase"}},
		{"NoPython3", noPythonTarget, noPython.key, atelier.EINVALID, []string{"box", "python3 --version", sshUser, "install Python 3"}},
		{"ClosedPort", &atelier.ComputeTarget{Name: "box", Kind: atelier.ComputeSSH, SSH: &atelier.SSHCompute{Host: "127.0.0.1", Port: closedPort, User: sshUser}},
			m.key, atelier.EUNAVAILABLE, []string{"box", "cannot reach", "refused"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := d.Check(ctx, tc.target, atelier.ComputeCredentials{SSHPrivateKey: tc.key})
			if atelier.ErrorCode(err) != tc.code {
				t.Fatalf("Check: %v, want %s", err, tc.code)
			}
			for _, w := range tc.want {
				if !strings.Contains(atelier.ErrorMessage(err), w) {
					t.Errorf("Check's error %q does not say %q", atelier.ErrorMessage(err), w)
				}
			}
		})
	}
}

// TestSSHDriverRecovery: a target without a host key is accepted and the runner log says so;
// a driver that did not launch the job (a restarted server) sees it running; a handle whose
// pid was reused is Gone and Cancel leaves the process be; a runner killed without a word is
// Gone with a reason; Release removes the job's directory.
func TestSSHDriverRecovery(t *testing.T) {
	needPython(t)
	ctx := context.Background()
	m := startSSHD(t)
	s := startJobStack(t)
	target := m.target("")
	d := sshDriver(t, m, target)
	run, token := s.claim(t, jobCtx(t), atelier.RunConfig{Script: "train.py"},
		map[string]string{"train.py": "import time\nwhile True:\n    time.sleep(0.05)\n"})
	handle, err := d.Launch(ctx, &atelier.JobLaunch{Run: run, Server: s.url, Token: token, Target: target,
		Credentials: atelier.ComputeCredentials{SSHPrivateKey: m.key}})
	if err != nil {
		t.Fatal(err)
	}
	var h map[string]any
	if err := json.Unmarshal([]byte(handle), &h); err != nil {
		t.Fatal(err)
	}
	if h["host_key"] != m.hostKey {
		t.Errorf("the handle keeps host key %v, want the machine's %s", h["host_key"], m.hostKey)
	}
	r, err := d.Logs(ctx, handle, 0)
	if err != nil {
		t.Fatal(err)
	}
	log, _ := io.ReadAll(r)
	r.Close()
	if !bytes.Contains(log, []byte("host key of 127.0.0.1:"+strconv.Itoa(m.port)+" was not checked")) || !bytes.Contains(log, []byte(m.hostKey)) {
		t.Errorf("the runner log does not say the host key was not checked:\n%s", log)
	}
	// The environment file (the runner's token) is gone once the runner started.
	dir := h["dir"].(string)
	if _, err := os.Stat(filepath.Join(dir, "env")); !os.IsNotExist(err) {
		t.Errorf("the runner's environment file is still there: %v", err)
	}
	other := sshcompute.New(d.Binary, d.Lookup)
	other.Root = d.Root
	defer other.Close()
	if st, err := other.Status(ctx, handle); err != nil || st.Phase != atelier.JobRunning {
		t.Fatalf("a running runner, to another driver: %+v, %v", st, err)
	}
	pid := int(h["pid"].(float64))
	// The runner runs as the target's account: it was started over SSH.
	var st syscall.Stat_t
	if err := syscall.Stat("/proc/"+strconv.Itoa(pid), &st); err != nil {
		t.Fatal(err)
	}
	if u, _ := user.Lookup(sshUser); u == nil || strconv.Itoa(int(st.Uid)) != u.Uid {
		t.Errorf("the runner (pid %d) runs as uid %d, not as %s", pid, st.Uid, sshUser)
	}
	reused := map[string]any{}
	for k, v := range h {
		reused[k] = v
	}
	reused["start"] = h["start"].(float64) + 1
	rb, _ := json.Marshal(reused)
	if st, err := other.Status(ctx, string(rb)); err != nil || st.Phase != atelier.JobGone {
		t.Errorf("a handle whose pid was reused: %+v, %v; want Gone", st, err)
	}
	if err := other.Cancel(ctx, string(rb)); err != nil {
		t.Errorf("Cancel of a reused pid: %v", err)
	}
	if err := other.Release(ctx, handle); atelier.ErrorCode(err) != atelier.ECONFLICT {
		t.Errorf("Release of a running job: %v, want ECONFLICT", err)
	}
	if st, _ := other.Status(ctx, handle); st.Phase != atelier.JobRunning {
		t.Fatalf("canceling a reused pid's handle stopped the runner: %+v", st)
	}
	// Killed without a word: Gone, and it says so.
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		st, err := other.Status(ctx, handle)
		if err != nil {
			t.Fatal(err)
		}
		if st.Phase == atelier.JobGone && strings.Contains(st.Detail, strconv.Itoa(pid)) {
			break
		}
		if st.Phase != atelier.JobRunning || time.Now().After(deadline) {
			t.Fatalf("a killed runner: %+v, want Gone with a reason", st)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// A handle naming a directory outside the driver's is refused.
	outside := map[string]any{}
	for k, v := range h {
		outside[k] = v
	}
	outside["dir"] = filepath.Join(m.home, "elsewhere")
	ob, _ := json.Marshal(outside)
	if err := other.Release(ctx, string(ob)); atelier.ErrorCode(err) != atelier.EINVALID {
		t.Errorf("Release of a directory outside the driver's: %v, want EINVALID", err)
	}
	if err := other.Release(ctx, handle); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("the job's directory is still there after Release: %v", err)
	}
	if _, err := other.Logs(ctx, handle, 0); atelier.ErrorCode(err) != atelier.ENOTFOUND {
		t.Errorf("Logs of a released job: %v, want ENOTFOUND", err)
	}
	// A machine that cannot be reached is an error the controller retries, not Gone.
	down := *target
	sshCopy := *target.SSH
	down.SSH = &sshCopy
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	down.SSH.Port = closed.Addr().(*net.TCPAddr).Port
	closed.Close()
	unreachable := sshcompute.New(d.Binary, func(context.Context, string, string) (*atelier.ComputeTarget, atelier.ComputeCredentials, error) {
		return &down, atelier.ComputeCredentials{SSHPrivateKey: m.key}, nil
	})
	downHandle := map[string]any{}
	for k, v := range h {
		downHandle[k] = v
	}
	downHandle["port"] = down.SSH.Port
	db, _ := json.Marshal(downHandle)
	if st, err := unreachable.Status(ctx, string(db)); err == nil {
		t.Errorf("Status on a machine that does not answer: %+v, want an error", st)
	}
}

// TestSSHDriverSecrets: secrets reach the script on the machine unchanged (quotes, newlines,
// shell syntax), through the environment file, never a command line.
func TestSSHDriverSecrets(t *testing.T) {
	needPython(t)
	ctx := context.Background()
	m := startSSHD(t)
	s := startJobStack(t)
	target := m.target(m.hostKey)
	d := sshDriver(t, m, target)
	value := "it's \"$HOME\" $(id)\nsecond line \\ `id`"
	if _, err := s.admin.SetSecret(ctx, atelier.DefaultWorkspace, "API_KEY", value); err != nil {
		t.Fatal(err)
	}
	script := "import os, sys\nsys.exit(0 if os.environ.get('API_KEY') == " + strconv.Quote(value) + " else 5)\n"
	run, token := s.claim(t, jobCtx(t), atelier.RunConfig{Script: "train.py", Secrets: []string{"API_KEY"}}, map[string]string{"train.py": script})
	handle, err := d.Launch(ctx, &atelier.JobLaunch{Run: run, Server: s.url, Token: token, Target: target,
		Credentials: atelier.ComputeCredentials{SSHPrivateKey: m.key}, Secrets: map[string]string{"API_KEY": value}})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		st, err := d.Status(ctx, handle)
		if err != nil {
			t.Fatal(err)
		}
		if st.Phase != atelier.JobRunning {
			if st.Phase != atelier.JobExited || st.ExitCode != 0 {
				got, _ := s.admin.FindRun(ctx, atelier.DefaultWorkspace, run.ID)
				t.Fatalf("the job ended %+v (run %s, %q): the secret did not reach the script unchanged", st, got.Status, got.Error)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the job still runs")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if strings.Contains(m.log.String(), "second line") {
		t.Error("the secret's value is in sshd's log")
	}
}

// BenchmarkSSHSubmitToStart measures the time from submitting a script to its first line
// running on an ssh target whose machine has the runner, the snapshot and the environment
// cached (one run before the measured ones), through atelier (a REST submit: the scheduler
// claims it, the driver starts the runner detached over a kept SSH connection, the runner
// fetches the run and starts the script), beside `ssh` running the same script with the same
// Python (a new connection each time, as a user would). It reports the medians (ms) over b.N
// runs of each; docs/benchmarks.md records them:
//
//	go test -run '^$' -bench SSHSubmitToStart -benchtime 10x ./cmd/atelier/
func BenchmarkSSHSubmitToStart(b *testing.B) {
	if _, err := exec.LookPath("ssh"); err != nil {
		b.Skip("no ssh client (apt-get install openssh-client)")
	}
	m := startSSHD(b)
	b.Cleanup(func() { killRunnersUnder(m.home) })
	ctx := context.Background()
	dataDir, err := os.MkdirTemp("", "atelier-bench-ssh-")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(dataDir)
	srv := startServer(b, dataDir, freeAddr(b))
	if _, err := srv.client.CreateComputeTarget(ctx, atelier.DefaultWorkspace, atelier.ComputeTargetSpec{Name: "box", Kind: atelier.ComputeSSH,
		MaxConcurrentRuns: 4, SSH: &atelier.SSHCompute{Host: "127.0.0.1", Port: m.port, User: sshUser, HostKey: m.hostKey},
		Credentials: atelier.ComputeCredentials{SSHPrivateKey: m.key}}); err != nil {
		b.Fatal(err)
	}
	submit := submitToStart(b, srv.client, "box")
	first := submit() // uploads the runner, caches the snapshot and the environment
	keyFile := filepath.Join(dataDir, "key")
	if err := os.WriteFile(keyFile, []byte(m.key), 0o600); err != nil {
		b.Fatal(err)
	}
	var viaAtelier, viaSSH []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		viaAtelier = append(viaAtelier, submit())
		t0 := time.Now()
		out, err := exec.Command("ssh", "-i", keyFile, "-p", strconv.Itoa(m.port), "-o", "StrictHostKeyChecking=no",
			"-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", sshUser+"@127.0.0.1",
			"python3 -c \"import time; print('start', repr(time.time()), flush=True)\"").CombinedOutput()
		if err != nil {
			b.Fatalf("ssh: %v: %s", err, out)
		}
		viaSSH = append(viaSSH, startedAt(string(out)).Sub(t0))
	}
	b.StopTimer()
	b.ReportMetric(medianMS(viaAtelier), "atelier-ms")
	b.ReportMetric(medianMS(viaSSH), "ssh-ms")
	b.Logf("submit → script start, %d runs each (the first, uncached run: %v): atelier %v; ssh %v", b.N, first, viaAtelier, viaSSH)
}
