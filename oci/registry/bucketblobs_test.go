package registry_test

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	gcblob "gocloud.dev/blob"
	"gocloud.dev/blob/fileblob"
	"gocloud.dev/blob/memblob"
	"gocloud.dev/blob/s3blob"

	"github.com/atelier-ml/atelier/datastore/datastoretest"
	"github.com/atelier-ml/atelier/oci/registry"
	"github.com/atelier-ml/atelier/oci/registry/registrytest"
)

// OpenFileBucket opens a folder bucket as the server opens the artifact store's oci/.
func openFileBucket(t *testing.T, dir string) *gcblob.Bucket {
	b, err := fileblob.OpenBucket(dir, &fileblob.Options{CreateDir: true, NoTempDir: true, Metadata: fileblob.MetadataDontWrite})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func TestBucketBlobsFolder(t *testing.T) {
	registrytest.TestBlobStore(t, func(t *testing.T, clock *registrytest.Clock) registry.BlobStore {
		dir := t.TempDir()
		return registry.NewBucketBlobs(openFileBucket(t, dir), dir, clock.Now)
	})
	t.Run("NothingLeftByFailedPuts", func(t *testing.T) {
		dir := t.TempDir()
		s := registry.NewBucketBlobs(openFileBucket(t, dir), dir, nil)
		if _, err := s.Put(t.Context(), &failAfter{n: 3 << 20}, ""); err == nil {
			t.Fatal("a failing reader was stored")
		}
		if _, err := s.Put(t.Context(), &failAfter{n: 100}, registrytest.Digest([]byte("x"))); err == nil {
			t.Fatal("a failing reader was stored")
		}
		var files []string
		filepath.WalkDir(dir, func(p string, e os.DirEntry, err error) error {
			if err == nil && !e.IsDir() {
				files = append(files, p)
			}
			return nil
		})
		if len(files) != 0 {
			t.Fatalf("failed puts left %v", files)
		}
	})
}

type failAfter struct{ n int }

func (f *failAfter) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, fmt.Errorf("connection reset")
	}
	n := min(len(p), f.n)
	clear(p[:n])
	f.n -= n
	return n, nil
}

func TestBucketBlobsMemory(t *testing.T) {
	registrytest.TestBlobStore(t, func(t *testing.T, clock *registrytest.Clock) registry.BlobStore {
		b := memblob.OpenBucket(nil)
		t.Cleanup(func() { b.Close() })
		return registry.NewBucketBlobs(b, "", clock.Now)
	})
}

var s3Prefixes atomic.Int64

// The registry's blobs on a real S3-compatible server (versitygw, as the artifact store's own
// tests use): staged content is copied server-side, aborted writes leave nothing.
func TestBucketBlobsS3(t *testing.T) {
	registrytest.TestBlobStore(t, func(t *testing.T, clock *registrytest.Clock) registry.BlobStore {
		return registry.NewBucketBlobs(openS3Bucket(t), "", clock.Now)
	})
}

var s3Server struct {
	sync.Mutex
	cli *s3.Client
}

// openS3Bucket returns an empty folder of a bucket on versitygw, started once for the test
// binary (or skips the test when versitygw is not installed).
func openS3Bucket(t *testing.T) *gcblob.Bucket {
	s3Server.Lock()
	defer s3Server.Unlock()
	if s3Server.cli == nil {
		if datastoretest.VersityGWBinary() == "" {
			t.Skip("versitygw not found (set ATELIER_VERSITYGW): S3 tests skipped")
		}
		dir, err := os.MkdirTemp("", "atelier-registry-s3-")
		if err != nil {
			t.Fatal(err)
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		srv, _, err := datastoretest.LaunchVersityGW(dir, addr) // it ends with the test binary
		if err != nil {
			t.Fatal(err)
		}
		cli := s3.NewFromConfig(aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider(srv.AccessKey, srv.SecretKey, ""),
			RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired, ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired},
			func(o *s3.Options) { o.BaseEndpoint = aws.String(srv.Endpoint); o.UsePathStyle = true })
		if _, err := cli.CreateBucket(t.Context(), &s3.CreateBucketInput{Bucket: aws.String("artifacts")}); err != nil {
			t.Fatal(err)
		}
		s3Server.cli = cli
	}
	b, err := s3blob.OpenBucket(t.Context(), s3Server.cli, "artifacts", nil)
	if err != nil {
		t.Fatal(err)
	}
	b = gcblob.PrefixedBucket(b, fmt.Sprintf("t%d/oci/", s3Prefixes.Add(1)))
	t.Cleanup(func() { b.Close() })
	return b
}

// CleanStaging removes what puts cut short by a crash left, sparing recent files.
func TestBucketBlobsCleanStaging(t *testing.T) {
	ctx := t.Context()
	for _, c := range []struct {
		name string
		open func(t *testing.T) (*registry.BucketBlobs, func(string))
	}{
		{"Folder", func(t *testing.T) (*registry.BucketBlobs, func(string)) {
			dir := t.TempDir()
			s := registry.NewBucketBlobs(openFileBucket(t, dir), dir, nil)
			return s, func(name string) {
				if err := os.WriteFile(filepath.Join(dir, "tmp", name), []byte("x"), 0o600); err != nil {
					t.Fatal(err)
				}
			}
		}},
		{"Memory", func(t *testing.T) (*registry.BucketBlobs, func(string)) {
			b := memblob.OpenBucket(nil)
			t.Cleanup(func() { b.Close() })
			return registry.NewBucketBlobs(b, "", nil), func(name string) {
				if err := b.WriteAll(ctx, "staging/"+name, []byte("x"), nil); err != nil {
					t.Fatal(err)
				}
			}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, leave := c.open(t)
			leave("left")
			if n, err := s.CleanStaging(ctx, time.Now().Add(-time.Hour)); err != nil || n != 0 {
				t.Fatalf("CleanStaging of recent files = %d, %v; want 0", n, err)
			}
			if n, err := s.CleanStaging(ctx, time.Now().Add(time.Hour)); err != nil || n != 1 {
				t.Fatalf("CleanStaging = %d, %v; want 1", n, err)
			}
		})
	}
}
