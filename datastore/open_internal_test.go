package datastore

import (
	"bytes"
	"strings"
	"testing"

	"gocloud.dev/blob"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/datastore/datastoretest"
)

// A PutObject whose content's sha256 is known is signed with it, not hashed again: the right
// digest stores the object, a wrong one is refused by the storage (which checks the body
// against it), so the signer did use the digest it was given.
func TestSignWithKnownSHA256(t *testing.T) {
	srv := datastoretest.StartVersityGW(t)
	if err := srv.CreateBucket(t.Context(), "lake"); err != nil {
		t.Fatal(err)
	}
	bb, err := OpenS3(t.Context(), NewOpener("").HTTP, &atelier.Datastore{Name: "lake", Kind: atelier.DatastoreS3,
		Endpoint: srv.Endpoint, Bucket: "lake", PathStyle: true}, atelier.DatastoreCredentials{AccessKey: srv.AccessKey, SecretKey: srv.SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	defer bb.Close()
	content := []byte("known content")
	opts := &blob.WriterOptions{ContentType: "text/plain"}
	right := datastoretest.Sum(content)
	if err := bb.Upload(withContentSHA256(t.Context(), right), "right.txt", bytes.NewReader(content), opts); err != nil {
		t.Fatalf("a PutObject signed with its content's sha256: %v", err)
	}
	if got, err := bb.ReadAll(t.Context(), "right.txt"); err != nil || !bytes.Equal(got, content) {
		t.Errorf("read back %q, %v", got, err)
	}
	wrong := strings.Repeat("0", 64)
	if err := bb.Upload(withContentSHA256(t.Context(), wrong), "wrong.txt", bytes.NewReader(content), opts); err == nil {
		t.Error("a PutObject signed with another sha256 than its body's was stored: the signer hashed the body itself")
	}
	if ok, _ := bb.Exists(t.Context(), "wrong.txt"); ok {
		t.Error("wrong.txt exists")
	}
}
