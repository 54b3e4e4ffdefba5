package datastore_test

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"gocloud.dev/blob/memblob"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/datastore"
	"github.com/atelier-ml/atelier/datastore/datastoretest"
	"github.com/atelier-ml/atelier/testdisk"
)

// mustOpen opens d through an Opener and closes it with the test.
func mustOpen(t *testing.T, o *datastore.Opener, d *atelier.Datastore, creds atelier.DatastoreCredentials) atelier.DatastoreBucket {
	t.Helper()
	b, err := o.OpenDatastore(t.Context(), d, creds)
	if err != nil {
		t.Fatalf("OpenDatastore(%+v): %v", d, err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

var prefixes atomic.Int64

// uniquePrefix gives each subtest its own empty folder of a shared bucket, which also exercises
// the datastore prefix.
func uniquePrefix() string { return fmt.Sprintf("t%d/", prefixes.Add(1)) }

func TestFiles(t *testing.T) {
	o := datastore.NewOpener(t.TempDir())
	datastoretest.TestBucket(t, "local", func(t *testing.T) atelier.DatastoreBucket {
		return mustOpen(t, o, &atelier.Datastore{Name: "local", Kind: atelier.DatastoreFiles, Path: t.TempDir()}, atelier.DatastoreCredentials{})
	})
}

func TestFilesBuiltIn(t *testing.T) {
	root := t.TempDir()
	o := datastore.NewOpener(root)
	b := mustOpen(t, o, &atelier.Datastore{Name: "default", Workspace: "ws", Kind: atelier.DatastoreFiles}, atelier.DatastoreCredentials{})
	datastoretest.MustWrite(t, b, "a/b.txt", []byte("plain"))
	// A plain file, no sidecar: other programs can use the folder.
	got, err := os.ReadFile(filepath.Join(root, "ws", "a", "b.txt"))
	if err != nil || string(got) != "plain" {
		t.Fatalf("the file on disk: %q, %v", got, err)
	}
	entries, _ := os.ReadDir(filepath.Join(root, "ws", "a"))
	if len(entries) != 1 {
		t.Errorf("the folder holds %d entries, want only b.txt", len(entries))
	}
	// A registered folder must exist.
	_, err = o.OpenDatastore(t.Context(), &atelier.Datastore{Name: "gone", Kind: atelier.DatastoreFiles, Path: filepath.Join(root, "nope")}, atelier.DatastoreCredentials{})
	if atelier.ErrorCode(err) != atelier.ENOTFOUND || !strings.Contains(atelier.ErrorMessage(err), `"gone"`) {
		t.Errorf("opening a missing folder: %v", err)
	}
}

func TestMem(t *testing.T) {
	datastoretest.TestBucket(t, "mem", func(t *testing.T) atelier.DatastoreBucket {
		return datastore.NewBucket("mem", memblob.OpenBucket(nil))
	})
}

// mustS3Bucket creates a bucket on an S3 server.
func mustS3Bucket(t *testing.T, srv *datastoretest.S3Server, bucket string) {
	t.Helper()
	if err := srv.CreateBucket(t.Context(), bucket); err != nil {
		t.Fatal(err)
	}
}

func TestS3(t *testing.T) {
	srv := datastoretest.StartVersityGW(t)
	mustS3Bucket(t, srv, "lake")
	o := datastore.NewOpener("")
	creds := atelier.DatastoreCredentials{AccessKey: srv.AccessKey, SecretKey: srv.SecretKey}
	ds := func(mod func(d *atelier.Datastore)) *atelier.Datastore {
		d := &atelier.Datastore{Name: "lake", Kind: atelier.DatastoreS3, Endpoint: srv.Endpoint, Bucket: "lake", PathStyle: true, Prefix: uniquePrefix()}
		if mod != nil {
			mod(d)
		}
		return d
	}
	datastoretest.TestBucket(t, "lake", func(t *testing.T) atelier.DatastoreBucket { return mustOpen(t, o, ds(nil), creds) })

	// Built-in datastores in the server's bucket: one folder per workspace, the server's
	// credentials whatever the record holds.
	t.Run("BuiltIn", func(t *testing.T) {
		loc := &datastore.Location{Datastore: ds(nil), Credentials: creds}
		builtIn := datastore.NewOpener("")
		builtIn.BuiltIn = loc.Sub("datastores")
		n := 0
		datastoretest.TestBucket(t, "default", func(t *testing.T) atelier.DatastoreBucket {
			n++
			return mustOpen(t, builtIn, &atelier.Datastore{Name: "default", Workspace: fmt.Sprintf("ws%d", n), Kind: atelier.DatastoreFiles}, atelier.DatastoreCredentials{})
		})
		a := mustOpen(t, builtIn, &atelier.Datastore{Name: "default", Workspace: "a", Kind: atelier.DatastoreFiles}, atelier.DatastoreCredentials{})
		b := mustOpen(t, builtIn, &atelier.Datastore{Name: "default", Workspace: "b", Kind: atelier.DatastoreFiles}, atelier.DatastoreCredentials{})
		datastoretest.MustWrite(t, a, "mine.txt", []byte("a's"))
		if _, err := b.Stat(t.Context(), "mine.txt"); atelier.ErrorCode(err) != atelier.ENOTFOUND {
			t.Errorf("workspace b sees workspace a's file: %v", err)
		}
		raw := mustOpen(t, o, loc.Datastore, creds)
		if got := datastoretest.MustRead(t, raw, "datastores/a/mine.txt"); string(got) != "a's" {
			t.Errorf("the bucket holds %q under datastores/a/mine.txt", got)
		}
		wrong := datastore.NewOpener("")
		wrong.BuiltIn = (&datastore.Location{Datastore: ds(nil), Credentials: atelier.DatastoreCredentials{AccessKey: srv.AccessKey, SecretKey: "wrong"}}).Sub("datastores")
		w := mustOpen(t, wrong, &atelier.Datastore{Name: "default", Workspace: "a", Kind: atelier.DatastoreFiles}, atelier.DatastoreCredentials{})
		_, err := w.List(t.Context(), atelier.DatastoreFileQuery{})
		if atelier.ErrorCode(err) != atelier.EFORBIDDEN || !strings.Contains(atelier.ErrorMessage(err), "server's credentials") {
			t.Errorf("built-in datastore with the server's wrong credentials: %v", err)
		}
		if _, err := builtIn.OpenDatastore(t.Context(), &atelier.Datastore{Name: "default", Workspace: "../x", Kind: atelier.DatastoreFiles}, atelier.DatastoreCredentials{}); atelier.ErrorCode(err) != atelier.EINVALID {
			t.Errorf("a workspace name escaping the folder: %v", err)
		}
	})

	t.Run("Misconfigured", func(t *testing.T) {
		closed := "http://" + closedAddr(t)
		for _, tc := range []struct {
			name  string
			d     *atelier.Datastore
			creds atelier.DatastoreCredentials
			code  string
			msg   string
		}{
			{"wrong secret", ds(nil), atelier.DatastoreCredentials{AccessKey: srv.AccessKey, SecretKey: "wrong"}, atelier.EFORBIDDEN, "refused the datastore's credentials"},
			{"unknown key", ds(nil), atelier.DatastoreCredentials{AccessKey: "nobody", SecretKey: "x"}, atelier.EFORBIDDEN, "refused the datastore's credentials"},
			{"missing bucket", ds(func(d *atelier.Datastore) { d.Bucket = "no-such-bucket" }), creds, atelier.ENOTFOUND, "bucket or container does not exist"},
			{"unreachable", ds(func(d *atelier.Datastore) { d.Endpoint = closed }), creds, atelier.EUNAVAILABLE, "cannot be reached"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				b := mustOpen(t, o, tc.d, tc.creds)
				_, err := b.Write(t.Context(), "x.txt", strings.NewReader("x"), "", "")
				checkErr(t, "Write", err, tc.code, tc.msg)
				_, err = b.List(t.Context(), atelier.DatastoreFileQuery{})
				checkErr(t, "List", err, tc.code, tc.msg)
				_, _, err = b.Open(t.Context(), "x.txt")
				if tc.code == atelier.ENOTFOUND {
					// A missing key and a missing bucket may look the same to a read.
					if atelier.ErrorCode(err) != atelier.ENOTFOUND {
						t.Errorf("Open: %v", err)
					}
				} else {
					checkErr(t, "Open", err, tc.code, tc.msg)
				}
			})
		}
	})
}

func checkErr(t *testing.T, op string, err error, code, msg string) {
	t.Helper()
	if atelier.ErrorCode(err) != code || !strings.Contains(atelier.ErrorMessage(err), msg) || !strings.Contains(atelier.ErrorMessage(err), `"lake"`) {
		t.Errorf("%s: %v (code %s), want code %s with %q naming datastore \"lake\"", op, err, atelier.ErrorCode(err), code, msg)
	}
	if strings.Contains(fmt.Sprint(err), "wrong") || strings.Contains(fmt.Sprint(err), datastoretest.AzuriteKey) {
		t.Errorf("%s: the error shows a secret: %v", op, err)
	}
}

// closedAddr is an address nothing listens on.
func closedAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestAzureBlob(t *testing.T) {
	service := datastoretest.StartAzurite(t)
	o := datastore.NewOpener("")
	if _, err := datastoretest.CreateAzuriteContainer(t.Context(), service, "lake"); err != nil {
		t.Fatal(err)
	}
	key := atelier.DatastoreCredentials{AccountKey: datastoretest.AzuriteKey}
	ds := func(mod func(d *atelier.Datastore)) *atelier.Datastore {
		d := &atelier.Datastore{Name: "lake", Kind: atelier.DatastoreAzureBlob, Endpoint: service, Account: datastoretest.AzuriteAccount,
			Container: "lake", Prefix: uniquePrefix()}
		if mod != nil {
			mod(d)
		}
		return d
	}
	t.Run("SharedKey", func(t *testing.T) {
		datastoretest.TestBucket(t, "lake", func(t *testing.T) atelier.DatastoreBucket { return mustOpen(t, o, ds(nil), key) })
	})
	t.Run("ConnectionString", func(t *testing.T) {
		cs := atelier.DatastoreCredentials{ConnectionString: "DefaultEndpointsProtocol=http;AccountName=" + datastoretest.AzuriteAccount +
			";AccountKey=" + datastoretest.AzuriteKey + ";BlobEndpoint=" + service + ";"}
		b := mustOpen(t, o, ds(func(d *atelier.Datastore) { d.Endpoint = "" }), cs)
		datastoretest.MustWrite(t, b, "cs.txt", []byte("via a connection string"))
		if got := datastoretest.MustRead(t, b, "cs.txt"); string(got) != "via a connection string" {
			t.Errorf("read %q", got)
		}
	})
	t.Run("Misconfigured", func(t *testing.T) {
		wrongKey := atelier.DatastoreCredentials{AccountKey: "d3Jvbmcga2V5IHdyb25nIGtleSB3cm9uZyBrZXk="}
		for _, tc := range []struct {
			name  string
			d     *atelier.Datastore
			creds atelier.DatastoreCredentials
			code  string
			msg   string
		}{
			{"wrong key", ds(nil), wrongKey, atelier.EFORBIDDEN, "refused the datastore's credentials"},
			{"missing container", ds(func(d *atelier.Datastore) { d.Container = "nope" }), key, atelier.ENOTFOUND, "bucket or container does not exist"},
			{"unreachable", ds(func(d *atelier.Datastore) {
				d.Endpoint = "http://" + closedAddr(t) + "/" + datastoretest.AzuriteAccount
			}), key, atelier.EUNAVAILABLE, "cannot be reached"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				b := mustOpen(t, o, tc.d, tc.creds)
				_, err := b.Write(t.Context(), "x.txt", strings.NewReader("x"), "", "")
				checkErr(t, "Write", err, tc.code, tc.msg)
				_, err = b.List(t.Context(), atelier.DatastoreFileQuery{})
				checkErr(t, "List", err, tc.code, tc.msg)
			})
		}
		_, err := o.OpenDatastore(t.Context(), ds(nil), atelier.DatastoreCredentials{AccountKey: "not base64!"})
		if atelier.ErrorCode(err) != atelier.EINVALID {
			t.Errorf("a malformed account key: %v, want EINVALID", err)
		}
	})
}

// GCS against fake-gcs-server: the gcs kind with an endpoint, through the real client library
// and its OAuth token exchange.
func TestGCS(t *testing.T) {
	srv := datastoretest.StartFakeGCS(t)
	if err := srv.CreateBucket(t.Context(), "lake"); err != nil {
		t.Fatal(err)
	}
	o := datastore.NewOpener("")
	creds := atelier.DatastoreCredentials{CredentialsJSON: srv.CredentialsJSON}
	ds := func(mod func(d *atelier.Datastore)) *atelier.Datastore {
		d := &atelier.Datastore{Name: "lake", Kind: atelier.DatastoreGCS, Endpoint: srv.Endpoint, Bucket: "lake", Prefix: uniquePrefix()}
		if mod != nil {
			mod(d)
		}
		return d
	}
	datastoretest.TestBucket(t, "lake", func(t *testing.T) atelier.DatastoreBucket { return mustOpen(t, o, ds(nil), creds) })
	t.Run("Misconfigured", func(t *testing.T) {
		// The emulator checks no token: wrong credentials are a key whose token exchange fails.
		refuse := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			io.WriteString(w, `{"error":"invalid_grant","error_description":"Invalid JWT Signature."}`)
		}))
		defer refuse.Close()
		wrong := atelier.DatastoreCredentials{CredentialsJSON: datastoretest.ServiceAccountKey(t, refuse.URL+"/token")}
		for _, tc := range []struct {
			name  string
			d     *atelier.Datastore
			creds atelier.DatastoreCredentials
			code  string
			msg   string
		}{
			{"wrong credentials", ds(nil), wrong, atelier.EFORBIDDEN, "refused the datastore's credentials"},
			{"missing bucket", ds(func(d *atelier.Datastore) { d.Bucket = "no-such-bucket" }), creds, atelier.ENOTFOUND, "bucket or container does not exist"},
			{"unreachable", ds(func(d *atelier.Datastore) { d.Endpoint = "http://" + closedAddr(t) }), creds, atelier.EUNAVAILABLE, "cannot be reached"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				b := mustOpen(t, o, tc.d, tc.creds)
				_, err := b.Write(t.Context(), "x.txt", strings.NewReader("x"), "", "")
				checkErr(t, "Write", err, tc.code, tc.msg)
				_, err = b.List(t.Context(), atelier.DatastoreFileQuery{})
				checkErr(t, "List", err, tc.code, tc.msg)
			})
		}
	})
}

// A files datastore on a full disk (a 1 MiB tmpfs, when the test may mount one): a clear error
// naming the datastore and the path, and no partial file under its name.
func TestFilesDiskFull(t *testing.T) {
	dir := testdisk.MustSmall(t, "1m")
	o := datastore.NewOpener("")
	b := mustOpen(t, o, &atelier.Datastore{Name: "small", Kind: atelier.DatastoreFiles, Path: dir}, atelier.DatastoreCredentials{})
	_, err := b.Write(t.Context(), "big/file.bin", bytes.NewReader(datastoretest.Content(3, 2<<20)), "", "")
	if atelier.ErrorCode(err) != atelier.ENOSPACE || !strings.Contains(atelier.ErrorMessage(err), `datastore "small": big/file.bin: the server's storage is full`) ||
		!strings.Contains(atelier.ErrorMessage(err), "nothing was stored") {
		t.Fatalf("Write to a full disk: %v (code %s)", err, atelier.ErrorCode(err))
	}
	page, err := b.List(t.Context(), atelier.DatastoreFileQuery{Recursive: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Files) != 0 {
		t.Errorf("after the failed write the datastore lists %q", page.Files[0].Path)
	}
	var left []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			left = append(left, p)
		}
		return nil
	})
	if len(left) != 0 {
		t.Errorf("files left on the full disk: %q", left)
	}
}

// A files datastore computes digests itself, and a cached one never outlives the content: a
// file rewritten by another program with its old size and modification time is hashed again.
func TestFilesDigest(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the change time that tells a rewritten file is read on Linux only")
	}
	dir := t.TempDir()
	o := datastore.NewOpener("")
	b := mustOpen(t, o, &atelier.Datastore{Name: "local", Kind: atelier.DatastoreFiles, Path: dir}, atelier.DatastoreCredentials{})
	digest := func(path string) string {
		t.Helper()
		f, err := b.Digest(t.Context(), path)
		if err != nil {
			t.Fatalf("Digest(%s): %v", path, err)
		}
		return f.SHA256
	}
	v1, v2 := []byte("version 1"), []byte("version 2")
	datastoretest.MustWrite(t, b, "a.txt", v1)
	if got := digest("a.txt"); got != datastoretest.Sum(v1) {
		t.Errorf("Digest of a written file = %q, want %s", got, datastoretest.Sum(v1))
	}
	// Written by another program: computed.
	if err := os.WriteFile(filepath.Join(dir, "b.txt"), v1, 0o644); err != nil {
		t.Fatal(err)
	}
	if got := digest("b.txt"); got != datastoretest.Sum(v1) {
		t.Errorf("Digest of a file written outside = %q, want %s", got, datastoretest.Sum(v1))
	}
	for name, rewrite := range map[string]func(p string) error{
		"in place": func(p string) error {
			f, err := os.OpenFile(p, os.O_WRONLY, 0)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = f.WriteAt(v2, 0)
			return err
		},
		"replaced": func(p string) error {
			if err := os.WriteFile(p+".new", v2, 0o644); err != nil {
				return err
			}
			return os.Rename(p+".new", p)
		},
	} {
		t.Run(name, func(t *testing.T) {
			key := strings.ReplaceAll(name, " ", "_") + ".txt"
			p := filepath.Join(dir, key)
			datastoretest.MustWrite(t, b, key, v1)
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if got := digest(key); got != datastoretest.Sum(v1) {
				t.Fatalf("Digest = %q", got)
			}
			if err := rewrite(p); err != nil {
				t.Fatal(err)
			}
			// The old modification time, as cp -p or rsync -t would leave it.
			if err := os.Chtimes(p, fi.ModTime(), fi.ModTime()); err != nil {
				t.Fatal(err)
			}
			if got := digest(key); got != datastoretest.Sum(v2) {
				t.Errorf("Digest after a rewrite with the same size and modification time = %q, want %s", got, datastoretest.Sum(v2))
			}
		})
	}
}
