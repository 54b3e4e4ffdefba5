package main

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/api"
	"github.com/google/go-cmp/cmp"
)

// countingTransport counts the requests a client sends, by method and path.
type countingTransport struct {
	mu   sync.Mutex
	seen map[string]int
}

func (t *countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	t.mu.Lock()
	t.seen[req.Method+" "+req.URL.Path]++
	t.mu.Unlock()
	return http.DefaultTransport.RoundTrip(req)
}

func (t *countingTransport) take() map[string]int {
	t.mu.Lock()
	defer t.mu.Unlock()
	seen := t.seen
	t.seen = map[string]int{}
	return seen
}

func sha(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func mustWrite(t *testing.T, p, content string, mtime time.Time) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, mtime, mtime); err != nil {
		t.Fatal(err)
	}
}

// TestUploadModelFiles registers a local folder: one pass over tar streams, then, with the hash
// cache, nothing sent again for unchanged files the server holds.
func TestUploadModelFiles(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	ctx := t.Context()
	src := filepath.Join(t.TempDir(), "model_dir")
	// Old enough for the hash cache (files modified within 2 s of an upload are not cached).
	old := time.Now().Add(-time.Hour)
	big := strings.Repeat("weights ", 300000)
	content := map[string]string{"weights.bin": big, "conf/a.json": "{}", "conf/b.json": "{}", "empty": ""}
	for p, c := range content {
		mustWrite(t, filepath.Join(src, p), c, old)
	}
	want := []atelier.ModelFile{
		{Path: "model_dir/conf/a.json", Digest: sha("{}"), Size: 2},
		{Path: "model_dir/conf/b.json", Digest: sha("{}"), Size: 2},
		{Path: "model_dir/empty", Digest: sha(""), Size: 0},
		{Path: "model_dir/weights.bin", Digest: sha(big), Size: int64(len(big))},
	}
	const uploads, missing = "POST /api/v1/workspaces/default/models/uploads", "POST /api/v1/workspaces/default/objects/missing"
	// register uploads src to c and checks the manifest and the requests: whether files were
	// uploaded (over one or two streams, as the queue goes) and how often the server was asked
	// which objects it lacks.
	register := func(t *testing.T, c *api.Client, wantUpload bool, wantMissing int) {
		t.Helper()
		counts := &countingTransport{seen: map[string]int{}}
		c.HTTP = &http.Client{Transport: counts}
		manifest, err := uploadModelFiles(ctx, c, "default", src)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, manifest); diff != "" {
			t.Errorf("manifest (-want +got):\n%s", diff)
		}
		seen := counts.take()
		if n := seen[uploads]; (n > 0) != wantUpload || n > uploadStreams {
			t.Errorf("%d uploads, want uploads %v (at most %d streams)", n, wantUpload, uploadStreams)
		}
		if seen[missing] != wantMissing {
			t.Errorf("asked %d times for missing objects, want %d", seen[missing], wantMissing)
		}
		if _, err := c.RegisterModel(ctx, "default", atelier.ModelRegister{Name: "m", Files: manifest}); err != nil {
			t.Fatal(err)
		}
	}
	server := benchServer(t, t.TempDir())
	t.Run("first upload", func(t *testing.T) {
		// Nothing is hashed or asked first: the files go straight to the server.
		register(t, server, true, 0)
	})
	t.Run("unchanged", func(t *testing.T) {
		// The cache knows every digest and the server holds them all: nothing is sent.
		register(t, server, false, 1)
	})
	t.Run("one file changed", func(t *testing.T) {
		big = strings.Repeat("retrained ", 300000)
		want[3] = atelier.ModelFile{Path: "model_dir/weights.bin", Digest: sha(big), Size: int64(len(big))}
		mustWrite(t, filepath.Join(src, "weights.bin"), big, old.Add(time.Minute))
		register(t, server, true, 1)
	})
	t.Run("another server", func(t *testing.T) {
		// The cache only says what may be known: a server without the objects gets them all.
		register(t, benchServer(t, t.TempDir()), true, 1)
	})
}

// TestLocalFileStreamChanged: a file that changes while it is read fails the upload rather than
// registering content that never existed as a whole.
func TestLocalFileStreamChanged(t *testing.T) {
	p := filepath.Join(t.TempDir(), "model.bin")
	mustWrite(t, p, "first version", time.Now().Add(-time.Hour))
	files, err := scanModelFiles(p)
	if err != nil {
		t.Fatal(err)
	}
	done := false
	s := &localFileStream{bar: newProgress(os.Stderr, "", 0), next: func() *localModelFile {
		if done {
			return nil
		}
		done = true
		return files[0]
	}}
	defer s.close()
	if f, err := s.Next(); err != nil || f.Path != "model.bin" || f.Size != 13 {
		t.Fatalf("Next = %+v, %v", f, err)
	}
	if err := os.WriteFile(p, []byte("second, longer version"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(io.Discard, s); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Next(); err == nil || !strings.Contains(err.Error(), "changed while it was uploaded") {
		t.Errorf("Next after the file changed: %v, want an error", err)
	}
}
