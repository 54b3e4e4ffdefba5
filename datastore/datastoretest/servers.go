package datastoretest

import (
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// AzuriteAccount and AzuriteKey are Azurite's well-known development account, published by
// Microsoft; they are not secrets.
const (
	AzuriteAccount = "devstoreaccount1"
	AzuriteKey     = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

// S3Server is a running S3-compatible server.
type S3Server struct {
	Endpoint  string
	AccessKey string
	SecretKey string
	// Dir is the folder the server stores buckets in (one sub-folder per bucket).
	Dir string
}

// findBinary looks for a program: in env (a file, or a folder holding it), then in PATH, then
// in the extra folders.
func findBinary(name, env string, extra ...string) string {
	if v := os.Getenv(env); v != "" {
		if fi, err := os.Stat(v); err == nil && fi.IsDir() {
			v = filepath.Join(v, name)
		}
		if _, err := os.Stat(v); err == nil {
			return v
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range extra {
		if dir == "" {
			continue
		}
		if p := filepath.Join(dir, name); fileExists(p) {
			return p
		}
	}
	return ""
}

func fileExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir()
}

// goBin returns $(go env GOPATH)/bin without running go when GOPATH or HOME tells.
func goBin() string {
	if gp := os.Getenv("GOPATH"); gp != "" {
		return filepath.Join(strings.Split(gp, string(os.PathListSeparator))[0], "bin")
	}
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil && len(strings.TrimSpace(string(out))) > 0 {
		return filepath.Join(strings.TrimSpace(string(out)), "bin")
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, "go", "bin")
}

func freeAddr(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// waitHTTP waits until something answers HTTP at url.
func waitHTTP(tb testing.TB, url string, cmd *exec.Cmd, done <-chan struct{}) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		select {
		case <-done:
			tb.Fatalf("%s exited before it answered: %v", cmd.Path, cmd.ProcessState)
		default:
		}
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			return
		}
		time.Sleep(25 * time.Millisecond)
	}
	tb.Fatalf("%s did not answer at %s in time", cmd.Path, url)
}

// start runs cmd until the test ends.
func start(tb testing.TB, cmd *exec.Cmd, url string) {
	tb.Helper()
	cmd.Stdout, cmd.Stderr = nil, nil
	if testing.Verbose() {
		cmd.Stderr = os.Stderr
	}
	if err := cmd.Start(); err != nil {
		tb.Fatalf("starting %s: %v", cmd.Path, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	tb.Cleanup(func() {
		cmd.Process.Kill()
		<-done
	})
	waitHTTP(tb, url, cmd, done)
}

// StartVersityGW starts versitygw (an S3 gateway over a folder) for the test, or skips the test
// when the binary is not found: set ATELIER_VERSITYGW (the binary or its folder), put it in
// PATH, or `go install github.com/versity/versitygw/cmd/versitygw@latest`.
func StartVersityGW(tb testing.TB) *S3Server {
	tb.Helper()
	bin := findBinary("versitygw", "ATELIER_VERSITYGW", goBin())
	if bin == "" {
		tb.Skip("versitygw not found (set ATELIER_VERSITYGW, or go install github.com/versity/versitygw/cmd/versitygw@latest): S3 tests skipped")
	}
	s := &S3Server{AccessKey: "atelier-test", SecretKey: "atelier-test-secret", Dir: tb.TempDir()}
	addr := freeAddr(tb)
	s.Endpoint = "http://" + addr
	cmd := exec.Command(bin, "--port", addr, "posix", s.Dir)
	cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY="+s.AccessKey, "ROOT_SECRET_KEY="+s.SecretKey)
	start(tb, cmd, s.Endpoint)
	return s
}

// StartAzurite starts Azurite's blob service for the test and returns its service URL
// (http://127.0.0.1:PORT/devstoreaccount1), or skips the test when azurite-blob is not found:
// set ATELIER_AZURITE (the azurite-blob program or its folder), put it in PATH, or
// `npm install azurite` into /tmp/azurite.
func StartAzurite(tb testing.TB) string {
	tb.Helper()
	bin := findBinary("azurite-blob", "ATELIER_AZURITE", "/tmp/azurite/node_modules/.bin")
	if bin == "" {
		tb.Skip("azurite-blob not found (set ATELIER_AZURITE, or npm install azurite in /tmp/azurite): Azure Blob tests skipped")
	}
	host, port, _ := net.SplitHostPort(freeAddr(tb))
	cmd := exec.Command(bin, "--blobHost", host, "--blobPort", port, "--inMemoryPersistence", "--skipApiVersionCheck", "--silent")
	cmd.Dir = tb.TempDir() // Azurite writes its debug and extent files to the working folder
	base := "http://" + net.JoinHostPort(host, port)
	start(tb, cmd, base)
	return base + "/" + AzuriteAccount
}
