package blob_test

import (
	"bytes"
	"context"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"

	gcblob "gocloud.dev/blob"
	"gocloud.dev/blob/fileblob"
	"gocloud.dev/blob/memblob"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/blob"
	"github.com/atelier-ml/atelier/blob/blobtest"
	"github.com/atelier-ml/atelier/testdisk"
)

func TestFileStore(t *testing.T) {
	blobtest.TestStore(t, func(t *testing.T) *blob.Store { return MustOpen(t, "file://"+filepath.ToSlash(t.TempDir())) })
}

func TestMemStore(t *testing.T) {
	blobtest.TestStore(t, func(t *testing.T) *blob.Store { return MustOpen(t, "mem://") }, blobtest.InMemory())
}

// A store over a local bucket it did not open itself stages by Copy rather than rename.
func TestNewFileStore(t *testing.T) {
	blobtest.TestStore(t, func(t *testing.T) *blob.Store {
		// Without sidecar files: fileblob rewrites a key's .attrs file non-atomically, so
		// concurrent puts of one object could read a half-written one.
		b, err := fileblob.OpenBucket(t.TempDir(), &fileblob.Options{Metadata: fileblob.MetadataDontWrite})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		return blob.New(b)
	})
}

// The file layout is part of the contract: objects fanned out by digest, no sidecar, staging or
// temporary files left behind, even after a failed put.
func TestFileLayout(t *testing.T) {
	dir := t.TempDir()
	s := MustOpen(t, "file://"+filepath.ToSlash(dir))
	ctx := context.Background()
	a := blobtest.MustPut(t, s, []byte("a"), "")
	b := blobtest.MustPut(t, s, []byte("b"), blobtest.Digest([]byte("b")))
	if _, err := s.PutObject(ctx, strings.NewReader("c"), blobtest.Digest([]byte("not c"))); atelier.ErrorCode(err) != atelier.EINVALID {
		t.Fatalf("wrong digest: %v", err)
	}
	var files []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			files = append(files, filepath.ToSlash(rel))
		}
		return err
	})
	want := []string{"sha256/" + a.Digest[:2] + "/" + a.Digest, "sha256/" + b.Digest[:2] + "/" + b.Digest}
	if strings.Compare(want[0], want[1]) > 0 {
		want[0], want[1] = want[1], want[0]
	}
	if strings.Join(files, "\n") != strings.Join(want, "\n") {
		t.Fatalf("files in the store:\n%s\nwant:\n%s", strings.Join(files, "\n"), strings.Join(want, "\n"))
	}
}

// A failed put through a generic bucket leaves no staging object either.
func TestNoStagingLeft(t *testing.T) {
	bucket := memblob.OpenBucket(nil)
	defer bucket.Close()
	s := blob.New(bucket)
	ctx, cancel := context.WithCancel(context.Background())
	blobtest.MustPut(t, s, []byte("kept"), "")
	cancel()
	if _, err := s.PutObject(ctx, bytes.NewReader([]byte("canceled")), ""); err == nil {
		t.Fatal("put with a canceled context succeeded")
	}
	var keys []string
	it := bucket.List(&gcblob.ListOptions{})
	for {
		obj, err := it.Next(context.Background())
		if err != nil {
			break
		}
		keys = append(keys, obj.Key)
	}
	if want := "sha256/" + blobtest.Digest([]byte("kept"))[:2] + "/" + blobtest.Digest([]byte("kept")); strings.Join(keys, ",") != want {
		t.Fatalf("keys = %v, want [%s]", keys, want)
	}
}

func TestOpenURL(t *testing.T) {
	for _, u := range []string{"s3://bucket", "file://relative/dir", "file://host/dir", "file:///tmp/x?metadata=skip", "%zz"} {
		if _, err := blob.Open(context.Background(), u); atelier.ErrorCode(err) != atelier.EINVALID {
			t.Errorf("Open(%q) = %v, want EINVALID", u, err)
		}
	}
}

// MustOpen opens a store from url and closes it when the test ends.
func MustOpen(tb testing.TB, url string) *blob.Store {
	tb.Helper()
	s, err := blob.Open(context.Background(), url)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

func TestMemNothingLeft(t *testing.T) { blobtest.TestNothingLeft(t, memblob.OpenBucket(nil)) }

func TestFileNothingLeft(t *testing.T) {
	b, err := fileblob.OpenBucket(t.TempDir(), &fileblob.Options{Metadata: fileblob.MetadataDontWrite})
	if err != nil {
		t.Fatal(err)
	}
	blobtest.TestNothingLeft(t, b)
}

// On a full disk (a 1 MiB tmpfs, when the test may mount one) a put fails and leaves nothing:
// no object under its digest, no staging or temporary file.
func TestFileStoreDiskFull(t *testing.T) {
	dir := testdisk.MustSmall(t, "1m")
	s := MustOpen(t, "file://"+filepath.ToSlash(dir))
	want := blobtest.DigestOf(t, blobtest.NewReader(2<<20))
	for _, digest := range []string{"", want} {
		_, err := s.PutObject(context.Background(), blobtest.NewReader(2<<20), digest)
		if err == nil {
			t.Fatalf("PutObject(digest %q) of 2 MiB on a 1 MiB disk succeeded", digest)
		}
		if atelier.ErrorCode(err) != atelier.ENOSPACE || atelier.ErrorMessage(err) != atelier.StorageFullMessage {
			t.Errorf("PutObject(digest %q) on a full disk: %v (code %q), want ENOSPACE", digest, err, atelier.ErrorCode(err))
		}
		var files []string
		filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				files = append(files, p)
			}
			return nil
		})
		if len(files) != 0 {
			t.Errorf("after PutObject(digest %q) failed the disk holds %q", digest, files)
		}
	}
}
