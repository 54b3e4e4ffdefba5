package sqlite_test

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/atelier-ml/atelier"
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

// Deleting a workspace removes its registry repositories (manifests, tags, links, upload
// sessions), its imported bases and its default base, in the same transaction as the rest: a
// workspace made again under the name serves none of the old images, and another workspace
// whose name starts with the same letters keeps its own.
func TestDeleteWorkspaceRemovesRegistry(t *testing.T) {
	ctx := context.Background()
	db := MustOpen(t, filepath.Join(t.TempDir(), "atelier.db"))
	m := db.Registry()
	at := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	layer := []byte("layer")
	body := []byte(`{"schemaVersion":2}`)
	man := &registry.Manifest{Digest: registrytest.Digest(body), MediaType: registry.MediaTypeImageManifest, Body: body,
		Blobs: []registry.Ref{{Digest: registrytest.Digest(layer), Size: 5}}}
	for _, ws := range []string{"gone", "gone-2", "gone0"} {
		if err := db.CreateWorkspace(ctx, &atelier.Workspace{Name: ws}); err != nil {
			t.Fatal(err)
		}
		repo := ws + "/app"
		if err := m.LinkBlob(ctx, repo, registrytest.Digest(layer), 5, at); err != nil {
			t.Fatal(err)
		}
		if err := m.PutManifest(ctx, repo, man, []string{"1"}); err != nil {
			t.Fatal(err)
		}
		if err := m.CreateUpload(ctx, &registry.Upload{ID: "up-" + ws, Repo: repo, Started: at, Updated: at}); err != nil {
			t.Fatal(err)
		}
		if err := db.RecordImport(ctx, &atelier.BaseImage{Workspace: ws, Name: "app", Tag: "1", Digest: string(man.Digest),
			Size: 30, Platform: "linux/amd64", Format: "oci-archive", Default: true, ImportedAt: at}); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.DeleteWorkspace(ctx, "gone", true); err != nil {
		t.Fatal(err)
	}
	if err := db.CreateWorkspace(ctx, &atelier.Workspace{Name: "gone"}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Tag(ctx, "gone/app", "1"); atelier.ErrorCode(err) != atelier.ENOTFOUND {
		t.Errorf("Tag(gone/app:1) after the workspace was deleted and made again: %v, want not found", err)
	}
	if _, err := m.Manifest(ctx, "gone/app", man.Digest); atelier.ErrorCode(err) != atelier.ENOTFOUND {
		t.Errorf("Manifest(gone/app) after the workspace was deleted and made again: %v, want not found", err)
	}
	if _, err := m.BlobLink(ctx, "gone/app", registrytest.Digest(layer)); atelier.ErrorCode(err) != atelier.ENOTFOUND {
		t.Errorf("BlobLink(gone/app) after the workspace was deleted and made again: %v, want not found", err)
	}
	if _, err := m.Upload(ctx, "up-gone"); atelier.ErrorCode(err) != atelier.ENOTFOUND {
		t.Errorf("Upload(up-gone) after the workspace was deleted: %v, want not found", err)
	}
	if repos, err := m.Repositories(ctx, "", -1); err != nil || !slices.Equal(repos, []string{"gone-2/app", "gone0/app"}) {
		t.Errorf("Repositories = %v, %v; want the other workspaces' only", repos, err)
	}
	if list, err := db.ListImports(ctx, "gone"); err != nil || len(list) != 0 {
		t.Errorf("ListImports(gone) = %v, %v; want none", list, err)
	}
	if base, err := db.DefaultBase(ctx, "gone"); err != nil || base != "" {
		t.Errorf("DefaultBase(gone) = %q, %v; want none", base, err)
	}
	for _, ws := range []string{"gone-2", "gone0"} {
		if _, err := m.Tag(ctx, ws+"/app", "1"); err != nil {
			t.Errorf("Tag(%s/app:1): %v", ws, err)
		}
		if list, err := db.ListImports(ctx, ws); err != nil || len(list) != 1 || !list[0].Default || list[0].Location != ws+"/app:1" {
			t.Errorf("ListImports(%s) = %+v, %v", ws, list, err)
		}
	}
	// Nothing references the blob now but the other workspaces' manifests: released when they go.
	if released, err := m.ReleaseBlob(ctx, registrytest.Digest(layer), at.Add(time.Hour)); err != nil || released {
		t.Errorf("ReleaseBlob while others reference it = %v, %v", released, err)
	}
}
