package datastoretest

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
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

// launch runs cmd until stop is called, once something answers HTTP at url.
func launch(cmd *exec.Cmd, url string) (stop func(), err error) {
	cmd.Stdout, cmd.Stderr = nil, nil
	if testing.Verbose() {
		cmd.Stderr = os.Stderr
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", cmd.Path, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	stop = func() {
		cmd.Process.Kill()
		<-done
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		select {
		case <-done:
			return nil, fmt.Errorf("%s exited before it answered: %v", cmd.Path, cmd.ProcessState)
		default:
		}
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			return stop, nil
		}
		time.Sleep(25 * time.Millisecond)
	}
	stop()
	return nil, fmt.Errorf("%s did not answer at %s in time", cmd.Path, url)
}

// start runs cmd until the test ends.
func start(tb testing.TB, cmd *exec.Cmd, url string) {
	tb.Helper()
	stop, err := launch(cmd, url)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(stop)
}

// VersityGWBinary returns the path of versitygw, or "" when it is not found: ATELIER_VERSITYGW
// (the binary or its folder), PATH, then $(go env GOPATH)/bin.
func VersityGWBinary() string { return findBinary("versitygw", "ATELIER_VERSITYGW", goBin()) }

// StartVersityGW starts versitygw (an S3 gateway over a folder) for the test, or skips the test
// when the binary is not found: set ATELIER_VERSITYGW (the binary or its folder), put it in
// PATH, or `go install github.com/versity/versitygw/cmd/versitygw@latest`.
func StartVersityGW(tb testing.TB) *S3Server {
	tb.Helper()
	if VersityGWBinary() == "" {
		tb.Skip("versitygw not found (set ATELIER_VERSITYGW, or go install github.com/versity/versitygw/cmd/versitygw@latest): S3 tests skipped")
	}
	s, stop, err := LaunchVersityGW(tb.TempDir(), freeAddr(tb))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(stop)
	return s
}

// LaunchVersityGW starts versitygw over dir on addr until stop is called, for callers that are
// not a test (testscript commands).
func LaunchVersityGW(dir, addr string) (*S3Server, func(), error) {
	bin := VersityGWBinary()
	if bin == "" {
		return nil, nil, fmt.Errorf("versitygw not found")
	}
	s := &S3Server{AccessKey: "atelier-test", SecretKey: "atelier-test-secret", Dir: dir, Endpoint: "http://" + addr}
	cmd := exec.Command(bin, "--port", addr, "posix", s.Dir)
	cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY="+s.AccessKey, "ROOT_SECRET_KEY="+s.SecretKey)
	stop, err := launch(cmd, s.Endpoint)
	if err != nil {
		return nil, nil, err
	}
	return s, stop, nil
}

// StartAzurite starts Azurite's blob service for the test and returns its service URL
// (http://127.0.0.1:PORT/devstoreaccount1), or skips the test when azurite-blob is not found:
// set ATELIER_AZURITE (the azurite-blob program or its folder), put it in PATH, or
// `npm install azurite` into /tmp/azurite.
func StartAzurite(tb testing.TB) string {
	tb.Helper()
	if AzuriteBinary() == "" {
		tb.Skip("azurite-blob not found (set ATELIER_AZURITE, or npm install azurite in /tmp/azurite): Azure Blob tests skipped")
	}
	service, stop, err := LaunchAzurite(tb.TempDir(), freeAddr(tb))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(stop)
	return service
}

// AzuriteBinary returns the path of azurite-blob, or "" when it is not found: ATELIER_AZURITE
// (the program or its folder), PATH, then /tmp/azurite/node_modules/.bin.
func AzuriteBinary() string {
	return findBinary("azurite-blob", "ATELIER_AZURITE", "/tmp/azurite/node_modules/.bin")
}

// LaunchAzurite starts Azurite's blob service on addr, in memory (its debug and extent files
// go to dir), until stop is called, for callers that are not a test (testscript commands). It
// returns the service URL.
func LaunchAzurite(dir, addr string) (service string, stop func(), err error) {
	bin := AzuriteBinary()
	if bin == "" {
		return "", nil, fmt.Errorf("azurite-blob not found")
	}
	host, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command(bin, "--blobHost", host, "--blobPort", port, "--inMemoryPersistence", "--skipApiVersionCheck", "--silent")
	cmd.Dir = dir
	base := "http://" + net.JoinHostPort(host, port)
	if stop, err = launch(cmd, base); err != nil {
		return "", nil, err
	}
	return base + "/" + AzuriteAccount, stop, nil
}

// AzuriteContainer is a client of a container of the Azurite service, with its well-known key.
func AzuriteContainer(service, name string) (*container.Client, error) {
	cred, err := container.NewSharedKeyCredential(AzuriteAccount, AzuriteKey)
	if err != nil {
		return nil, err
	}
	return container.NewClientWithSharedKeyCredential(service+"/"+name, cred, nil)
}

// CreateAzuriteContainer creates a container on the Azurite service.
func CreateAzuriteContainer(ctx context.Context, service, name string) (*container.Client, error) {
	cc, err := AzuriteContainer(service, name)
	if err != nil {
		return nil, err
	}
	if _, err := cc.Create(ctx, nil); err != nil {
		return nil, fmt.Errorf("creating container %s: %w", name, err)
	}
	return cc, nil
}

// CreateBucket creates a bucket on the server.
func (s *S3Server) CreateBucket(ctx context.Context, bucket string) error {
	cli := s3.NewFromConfig(aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider(s.AccessKey, s.SecretKey, "")},
		func(o *s3.Options) { o.BaseEndpoint = aws.String(s.Endpoint); o.UsePathStyle = true })
	if _, err := cli.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		return fmt.Errorf("creating bucket %s: %w", bucket, err)
	}
	return nil
}

// GCSServer is a running GCS emulator (fake-gcs-server).
type GCSServer struct {
	// Endpoint is the emulator's base URL (the gcs datastore's endpoint).
	Endpoint string
	// CredentialsJSON is a service account key whose token_uri is a token endpoint started
	// for the test: the emulator checks no token, but the client's OAuth exchange runs as
	// against Google.
	CredentialsJSON string
}

// StartFakeGCS starts fake-gcs-server for the test, or skips the test when the binary is not
// found: set ATELIER_FAKE_GCS (the binary or its folder), put it in PATH, or
// `go install github.com/fsouza/fake-gcs-server@latest`.
func StartFakeGCS(tb testing.TB) *GCSServer {
	tb.Helper()
	bin := findBinary("fake-gcs-server", "ATELIER_FAKE_GCS", goBin())
	if bin == "" {
		tb.Skip("fake-gcs-server not found (set ATELIER_FAKE_GCS, or go install github.com/fsouza/fake-gcs-server@latest): GCS tests skipped")
	}
	host, port, _ := net.SplitHostPort(freeAddr(tb))
	s := &GCSServer{Endpoint: "http://" + net.JoinHostPort(host, port), CredentialsJSON: ServiceAccountKey(tb, startTokenServer(tb))}
	cmd := exec.Command(bin, "-scheme", "http", "-host", host, "-port", port, "-backend", "memory",
		"-external-url", s.Endpoint, "-public-host", net.JoinHostPort(host, port), "-log-level", "error")
	start(tb, cmd, s.Endpoint+"/storage/v1/b")
	return s
}

// CreateBucket creates a bucket on the emulator.
func (s *GCSServer) CreateBucket(ctx context.Context, bucket string) error {
	req, err := http.NewRequestWithContext(ctx, "POST", s.Endpoint+"/storage/v1/b?project=test",
		strings.NewReader(`{"name":"`+bucket+`"}`))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("creating bucket %s: %s: %s", bucket, resp.Status, body)
	}
	return nil
}

// startTokenServer serves OAuth2 token requests with a fixed bearer token until the test ends.
func startTokenServer(tb testing.TB) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"access_token":"test-token","token_type":"Bearer","expires_in":3600}`)
	}))
	tb.Cleanup(srv.Close)
	return srv.URL + "/token"
}

// ServiceAccountKey returns a service account key file's JSON with a new RSA key, whose tokens
// are asked of tokenURI.
func ServiceAccountKey(tb testing.TB, tokenURI string) string {
	tb.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		tb.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		tb.Fatal(err)
	}
	b, _ := json.Marshal(map[string]string{
		"type": "service_account", "project_id": "test", "private_key_id": "1",
		"private_key":  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email": "atelier-test@test.iam.gserviceaccount.com", "client_id": "1", "token_uri": tokenURI,
	})
	return string(b)
}
