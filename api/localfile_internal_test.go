package api

import (
	"bytes"
	"crypto/sha256"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
)

// The client's transport sends a LocalFile by sendfile, all but what the transport's buffer
// took with the headers.
func TestLocalFileSentByKernel(t *testing.T) {
	var got [sha256.Size]byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got = sha256.Sum256(b)
	}))
	defer srv.Close()
	content := bytes.Repeat([]byte("0123456789abcdef"), 1<<20) // 16 MiB
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, content, 0o644); err != nil {
		t.Fatal(err)
	}
	lf, err := OpenLocalFile(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	req, _ := http.NewRequest("PUT", srv.URL, lf)
	req.ContentLength = lf.Size()
	resp, err := (&http.Client{Transport: newTransport()}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got != sha256.Sum256(content) {
		t.Errorf("the server got other bytes")
	}
	if lf.byKernel < lf.size-8192 {
		t.Errorf("sendfile sent %d of %d bytes", lf.byKernel, lf.size)
	}
}
