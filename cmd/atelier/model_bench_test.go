package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/api"
	"github.com/atelier-ml/atelier/server/servertest"
)

// benchServer starts a whole server (package servertest) in dir.
func benchServer(tb testing.TB, dir string) *api.Client {
	tb.Helper()
	return servertest.New(tb, servertest.WithDir(dir)).Client
}

// writeRandom writes n random bytes to p in 1 MiB writes and returns how long it took.
func writeRandom(tb testing.TB, p string, n int64) time.Duration {
	tb.Helper()
	buf := make([]byte, 1<<20)
	rand.Read(buf)
	f, err := os.Create(p)
	if err != nil {
		tb.Fatal(err)
	}
	start := time.Now()
	for off := int64(0); off < n; off += int64(len(buf)) {
		buf[0]++ // distinct chunks
		if _, err := f.Write(buf); err != nil {
			tb.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		tb.Fatal(err)
	}
	return time.Since(start)
}

// BenchmarkModelRegisterLocal registers a 1 GB local folder through the CLI's upload path (tar
// streams the server hashes as it stores them, then the registration) and compares its
// throughput with writing the same amount to the same disk. Each iteration uses a fresh server,
// so every byte is uploaded. bench/ measures the same through the real binary.
func BenchmarkModelRegisterLocal(b *testing.B) {
	for _, shape := range []struct {
		name            string
		files, fileSize int64
	}{{"16x64MiB", 16, 64 << 20}, {"1000x1MiB", 1000, 1 << 20}} {
		b.Run(shape.name, func(b *testing.B) {
			src := filepath.Join(b.TempDir(), "model_dir")
			os.MkdirAll(src, 0o755)
			var write time.Duration
			for i := range shape.files {
				write += writeRandom(b, filepath.Join(src, fmt.Sprintf("part-%04d.bin", i)), shape.fileSize)
			}
			b.SetBytes(shape.fileSize * shape.files)
			b.Setenv("XDG_CACHE_HOME", b.TempDir())
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				dir := b.TempDir()
				c := benchServer(b, dir)
				ctx := context.Background()
				b.StartTimer()
				manifest, err := uploadModelFiles(ctx, c, "default", src)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := c.RegisterModel(ctx, "default", atelier.ModelRegister{Name: "big", Files: manifest}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(shape.fileSize*shape.files)/write.Seconds()/1e6, "disk-write-MB/s")
		})
	}
}
