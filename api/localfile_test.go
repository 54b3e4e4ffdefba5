package api_test

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/api"
	"github.com/atelier-ml/atelier/datastore/datastoretest"
)

// A LocalFile goes up whole through the client's own transport (sendfile, in chunks) and
// through a plain one (its Read), and is refused, with nothing stored, when the file grows,
// shrinks or is rewritten while it is sent.
func TestLocalFileUpload(t *testing.T) {
	s := MustStack(t)
	ctx := Ctx(t)
	plain := api.NewClient(s.Server.URL, s.Token)
	plain.HTTP = &http.Client{} // no sendfile: the body is read
	const size = 20<<20 + 7     // over two sendfile chunks and an odd tail
	content := datastoretest.Content(9, size)
	dir := t.TempDir()

	for _, c := range []struct {
		name   string
		client *api.Client
	}{{"sendfile", s.Client}, {"read", plain}} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(dir, c.name+".bin")
			if err := os.WriteFile(path, content, 0o644); err != nil {
				t.Fatal(err)
			}
			var reported int64
			lf, err := api.OpenLocalFile(path, func(n int64) { reported += n })
			if err != nil {
				t.Fatal(err)
			}
			f, err := c.client.WriteDatastoreFile(ctx, "default", "default", "up/"+c.name+".bin", lf, "", "")
			lf.Close()
			if err != nil || f.Size != size || lf.Changed() != nil {
				t.Fatalf("upload = %+v, %v (changed: %v)", f, err, lf.Changed())
			}
			if reported != size {
				t.Errorf("progress reported %d bytes, want %d", reported, size)
			}
			if got := MustReadDatastoreFile(t, c.client, "up/"+c.name+".bin"); !bytes.Equal(got, content) {
				t.Errorf("read back %d bytes that differ from the %d sent", len(got), size)
			}

			// Changes made while the file is sent, from the progress callback (so after some
			// bytes left): each is refused and leaves no file behind.
			changes := map[string]func(path string) error{
				"grown": func(path string) error {
					f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
					if err != nil {
						return err
					}
					defer f.Close()
					_, err = f.Write([]byte("more"))
					return err
				},
				"shrunk": func(path string) error { return os.Truncate(path, size/2) },
				"rewritten": func(path string) error {
					// Same size; only the modification time tells.
					return os.Chtimes(path, time.Now(), time.Now().Add(time.Hour))
				},
				"empty": func(path string) error { return os.Truncate(path, 0) },
			}
			for what, change := range changes {
				path := filepath.Join(dir, c.name+"-"+what+".bin")
				if err := os.WriteFile(path, content, 0o644); err != nil {
					t.Fatal(err)
				}
				done := false
				lf, err := api.OpenLocalFile(path, func(int64) {
					if !done {
						done = true
						if err := change(path); err != nil {
							t.Error(err)
						}
					}
				})
				if err != nil {
					t.Fatal(err)
				}
				remote := "up/" + c.name + "-" + what + ".bin"
				_, err = c.client.WriteDatastoreFile(ctx, "default", "default", remote, lf, "", "")
				lf.Close()
				if err == nil || lf.Changed() == nil || !strings.Contains(lf.Changed().Error(), "changed while it was uploaded") {
					t.Errorf("%s file: upload = %v (changed: %v), want it refused", what, err, lf.Changed())
				}
				if _, _, err := c.client.OpenDatastoreFile(ctx, "default", "default", remote); atelier.ErrorCode(err) != atelier.ENOTFOUND {
					t.Errorf("%s file: after the refused upload, open = %v, want not found", what, err)
				}
			}
		})
	}

	// An empty file goes as an empty body.
	path := filepath.Join(dir, "empty")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	lf, err := api.OpenLocalFile(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	if f, err := s.Client.WriteDatastoreFile(ctx, "default", "default", "up/empty", lf, "", ""); err != nil || f.Size != 0 {
		t.Errorf("empty upload = %+v, %v", f, err)
	}
	if _, err := api.OpenLocalFile(dir, nil); err == nil {
		t.Errorf("OpenLocalFile of a folder succeeded")
	}
}

// MustReadDatastoreFile downloads a file of the default datastore whole.
func MustReadDatastoreFile(tb testing.TB, c *api.Client, path string) []byte {
	tb.Helper()
	_, rc, err := c.OpenDatastoreFile(Ctx(tb), "default", "default", path)
	if err != nil {
		tb.Fatalf("OpenDatastoreFile(%s): %v", path, err)
	}
	defer rc.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(rc); err != nil {
		tb.Fatalf("reading %s: %v", path, err)
	}
	return buf.Bytes()
}
