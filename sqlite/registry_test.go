package sqlite_test

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/atelier-ml/atelier/oci/registry"
	"github.com/atelier-ml/atelier/oci/registry/registrytest"
)

// The image registry's metadata in the database passes the registry's store suite.
func TestRegistryMetadata(t *testing.T) {
	registrytest.TestMetadata(t, func(t *testing.T) registry.Metadata {
		return MustOpen(t, filepath.Join(t.TempDir(), "atelier.db")).Registry()
	})
}

// ListTagged lists the tags under a prefix with their manifests' sizes (body and blobs) and
// when they were pushed.
func TestRegistryListTagged(t *testing.T) {
	ctx := context.Background()
	db := MustOpen(t, filepath.Join(t.TempDir(), "atelier.db"))
	at := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	db.Now = func() time.Time { return at }
	m := db.Registry()
	layer := []byte("layer")
	body := []byte(`{"schemaVersion":2}`)
	for _, repo := range []string{"ws/app", "ws/application", "other/app"} {
		if err := m.LinkBlob(ctx, repo, registrytest.Digest(layer), 5, at); err != nil {
			t.Fatal(err)
		}
		man := &registry.Manifest{Digest: registrytest.Digest(body), MediaType: registry.MediaTypeImageManifest, Body: body,
			Blobs: []registry.Ref{{Digest: registrytest.Digest(layer), Size: 5}}}
		if err := m.PutManifest(ctx, repo, man, []string{"v1", "latest"}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := m.ListTagged(ctx, "ws/")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tm := range got {
		names = append(names, tm.Repo+":"+tm.Tag)
		if tm.Size != int64(len(body))+5 || !tm.TaggedAt.Equal(at) || tm.Digest != registrytest.Digest(body) {
			t.Errorf("%s:%s = %+v", tm.Repo, tm.Tag, tm)
		}
	}
	if want := []string{"ws/app:latest", "ws/app:v1", "ws/application:latest", "ws/application:v1"}; !slices.Equal(names, want) {
		t.Fatalf("ListTagged(ws/) = %v, want %v", names, want)
	}
}
