package blob_test

import (
	"context"
	"crypto/sha256"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/atelier-ml/atelier/blob/blobtest"
)

// BenchmarkPut256MiB compares a put into a file store with the floors it cannot beat: hashing
// alone and a plain io.Copy to a file. Run with -benchtime=Nx for a few iterations.
func BenchmarkPut256MiB(b *testing.B) {
	const size = 256 << 20
	ctx := context.Background()
	digest := blobtest.DigestOf(b, blobtest.NewReader(size))

	b.Run("sha256", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			io.Copy(sha256.New(), blobtest.NewReader(size))
		}
	})
	b.Run("io.Copy-file", func(b *testing.B) {
		name := filepath.Join(b.TempDir(), "f")
		b.SetBytes(size)
		for b.Loop() {
			f, err := os.Create(name)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := io.Copy(f, blobtest.NewReader(size)); err != nil {
				b.Fatal(err)
			}
			if err := f.Close(); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			os.Remove(name)
			b.StartTimer()
		}
	})
	for _, tt := range []struct{ name, digest string }{{"file-nodigest", ""}, {"file-digest", digest}} {
		b.Run(tt.name, func(b *testing.B) {
			s := MustOpen(b, "file://"+filepath.ToSlash(b.TempDir()))
			b.SetBytes(size)
			for b.Loop() {
				if _, err := s.PutObject(ctx, blobtest.NewReader(size), tt.digest); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				if err := s.DeleteObject(ctx, digest); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
		})
	}
}
