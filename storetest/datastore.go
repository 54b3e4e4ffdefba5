package storetest

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/atelier-ml/atelier"
)

// testDatastores runs the datastore registry's part of the conformance suite.
func testDatastores(t *testing.T, open func(t *testing.T) atelier.Store) {
	ctx := Context(t)
	s := open(t)
	MustCreateWorkspace(t, s, "ws")

	// The first datastore becomes the default; the sealed blob comes back as stored.
	files := &atelier.Datastore{Name: "default", Kind: atelier.DatastoreFiles}
	if err := s.CreateDatastore(ctx, "ws", files); err != nil {
		t.Fatal(err)
	}
	if !files.IsDefault || files.CreatedBy != "tester" || files.Workspace != "ws" {
		t.Errorf("first datastore = %+v, want the default, created by tester", files)
	}
	sealed := []byte{1, 2, 3, 0, 255}
	s3 := &atelier.Datastore{Name: "lake", Kind: atelier.DatastoreS3, Bucket: "b", Endpoint: "http://127.0.0.1:9000",
		Prefix: "p/", PathStyle: true, Credentials: []string{"access_key", "secret_key"}, Sealed: sealed}
	if err := s.CreateDatastore(ctx, "ws", s3); err != nil {
		t.Fatal(err)
	}
	if s3.IsDefault {
		t.Errorf("second datastore became the default")
	}
	got, err := s.FindDatastore(ctx, "ws", "lake")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Sealed, sealed) || got.Bucket != "b" || !got.PathStyle || got.Prefix != "p/" || got.Endpoint != s3.Endpoint ||
		len(got.Credentials) != 2 || !got.CreatedAt.Equal(s3.CreatedAt) {
		t.Errorf("FindDatastore = %+v, want %+v", got, s3)
	}
	if err := s.CreateDatastore(ctx, "ws", &atelier.Datastore{Name: "lake", Kind: atelier.DatastoreFiles}); atelier.ErrorCode(err) != atelier.ECONFLICT {
		t.Errorf("duplicate CreateDatastore: %v, want ECONFLICT", err)
	}
	for _, tc := range []struct{ ws, name, want string }{{"ws", "nope", "datastore"}, {"nows", "lake", "workspace"}} {
		if _, err := s.FindDatastore(ctx, tc.ws, tc.name); atelier.ErrorCode(err) != atelier.ENOTFOUND {
			t.Errorf("FindDatastore(%s, %s): %v, want ENOTFOUND", tc.ws, tc.name, err)
		}
	}

	// Exactly one default.
	if d, err := s.SetDefaultDatastore(ctx, "ws", "lake"); err != nil || !d.IsDefault {
		t.Fatalf("SetDefaultDatastore = %+v, %v", d, err)
	}
	list, err := s.ListDatastores(ctx, "ws")
	if err != nil || len(list) != 2 || list[0].Name != "default" || list[0].IsDefault || !list[1].IsDefault {
		t.Fatalf("ListDatastores = %+v, %v", list, err)
	}
	if _, err := s.SetDefaultDatastore(ctx, "ws", "nope"); atelier.ErrorCode(err) != atelier.ENOTFOUND {
		t.Errorf("SetDefaultDatastore(nope): %v", err)
	}

	// Credentials are replaced whole.
	d, err := s.UpdateDatastoreCredentials(ctx, "ws", "lake", []byte{9}, []string{"access_key"})
	if err != nil || !bytes.Equal(d.Sealed, []byte{9}) || len(d.Credentials) != 1 {
		t.Fatalf("UpdateDatastoreCredentials = %+v, %v", d, err)
	}
	if _, err := s.UpdateDatastoreCredentials(ctx, "ws", "nope", nil, nil); atelier.ErrorCode(err) != atelier.ENOTFOUND {
		t.Errorf("UpdateDatastoreCredentials(nope): %v", err)
	}

	// Digests kept for cloud objects: replaced by path, asked for many at once, and gone with
	// their datastore (below).
	digest := func(etag string) atelier.DatastoreDigest {
		return atelier.DatastoreDigest{ETag: etag, SHA256: strings.Repeat(etag[:1], 64)}
	}
	for _, p := range []string{"a/big.bin", "b.bin", "a/big.bin"} {
		if err := s.SaveDatastoreDigest(ctx, "ws", "lake", p, digest(p[:1]+"tag")); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.SaveDatastoreDigest(ctx, "ws", "lake", "a/big.bin", digest("new")); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveDatastoreDigest(ctx, "ws", "nope", "x", digest("x")); atelier.ErrorCode(err) != atelier.ENOTFOUND {
		t.Errorf("SaveDatastoreDigest(nope): %v, want ENOTFOUND", err)
	}
	many := []string{"missing"}
	for i := 0; i < 1200; i++ { // more than one statement's worth
		many = append(many, fmt.Sprintf("many/%d", i))
	}
	many = append(many, "a/big.bin", "b.bin")
	digests, err := s.DatastoreDigests(ctx, "ws", "lake", many)
	if err != nil || len(digests) != 2 || digests["a/big.bin"] != digest("new") || digests["b.bin"] != digest("btag") {
		t.Errorf("DatastoreDigests = %+v, %v", digests, err)
	}
	if digests, err := s.DatastoreDigests(ctx, "ws", "default", []string{"b.bin"}); err != nil || len(digests) != 0 {
		t.Errorf("another datastore's digests: %+v, %v", digests, err)
	}

	// The default needs force, and the fallback takes over.
	if err := s.DeleteDatastore(ctx, "ws", "lake", false, "default"); atelier.ErrorCode(err) != atelier.ECONFLICT {
		t.Errorf("DeleteDatastore(default, no force): %v, want ECONFLICT", err)
	}
	if err := s.DeleteDatastore(ctx, "ws", "lake", true, "default"); err != nil {
		t.Fatal(err)
	}
	if d, err := s.FindDatastore(ctx, "ws", "default"); err != nil || !d.IsDefault {
		t.Errorf("after deleting the default, default = %+v, %v", d, err)
	}
	if err := s.DeleteDatastore(ctx, "ws", "lake", true, "default"); atelier.ErrorCode(err) != atelier.ENOTFOUND {
		t.Errorf("DeleteDatastore twice: %v, want ENOTFOUND", err)
	}
	// A datastore registered again under the name does not inherit the old one's digests.
	if err := s.CreateDatastore(ctx, "ws", &atelier.Datastore{Name: "lake", Kind: atelier.DatastoreS3, Bucket: "b"}); err != nil {
		t.Fatal(err)
	}
	if digests, err := s.DatastoreDigests(ctx, "ws", "lake", []string{"a/big.bin", "b.bin"}); err != nil || len(digests) != 0 {
		t.Errorf("digests of a deleted datastore: %+v, %v", digests, err)
	}

	// Datastores go with their workspace.
	if err := s.DeleteWorkspace(ctx, "ws", true); err != nil {
		t.Fatal(err)
	}
	MustCreateWorkspace(t, s, "ws")
	if list, err := s.ListDatastores(ctx, "ws"); err != nil || len(list) != 0 {
		t.Errorf("a recreated workspace has datastores: %+v, %v", list, err)
	}
}

// testDatastoreLineage checks that runs created with data references are found by datastore.
func testDatastoreLineage(t *testing.T, open func(t *testing.T) atelier.Store) {
	ctx := Context(t)
	s := open(t)
	MustCreateWorkspace(t, s, "ws")
	MustCreateWorkspace(t, s, "other")
	var ids []string
	for i := 0; i < 3; i++ {
		r := MustCreateRun(t, s, "ws", atelier.RunCreate{Experiment: "e", Data: []atelier.DataReference{
			{Name: "train", Datastore: "lake", Path: "diabetes/", Mode: atelier.DataDownload},
			{Name: "scores", Datastore: "lake", Path: "out/", Mode: atelier.DataUpload}}})
		ids = append(ids, r.ID)
	}
	MustCreateRun(t, s, "ws", atelier.RunCreate{Experiment: "e", Data: []atelier.DataReference{{Name: "x", Datastore: "pond", Mode: atelier.DataDownload}}})
	MustCreateRun(t, s, "other", atelier.RunCreate{Experiment: "e", Data: []atelier.DataReference{{Name: "x", Datastore: "lake", Mode: atelier.DataDownload}}})

	got, total, err := s.DatastoreRuns(ctx, "ws", "lake", 2)
	if err != nil || total != 3 || len(got) != 2 {
		t.Fatalf("DatastoreRuns(lake, 2) = %v, %d, %v; want 2 of 3", got, total, err)
	}
	for _, id := range got {
		if id != ids[1] && id != ids[2] {
			t.Errorf("DatastoreRuns(lake, 2) = %v: want the newest runs %v", got, ids[1:])
		}
	}
	if got, total, err := s.DatastoreRuns(ctx, "ws", "nope", 5); err != nil || total != 0 || len(got) != 0 {
		t.Errorf("DatastoreRuns(nope) = %v, %d, %v", got, total, err)
	}
	if _, err := s.CreateRun(ctx, "ws", atelier.RunCreate{Experiment: "e", Data: []atelier.DataReference{
		{Name: "a", Datastore: "lake", Mode: atelier.DataDownload}, {Name: "a", Datastore: "lake", Mode: atelier.DataUpload}}}); err == nil {
		t.Error("CreateRun with a data name twice succeeded")
	}
	if _, total, _ := s.DatastoreRuns(ctx, "ws", "lake", 5); total != 3 {
		t.Errorf("a refused CreateRun left lineage: %d runs", total)
	}
}
