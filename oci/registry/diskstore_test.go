package registry_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/oci/registry"
	"github.com/atelier-ml/atelier/oci/registry/registrytest"
)

func TestDiskBlobs(t *testing.T) {
	registrytest.TestBlobStore(t, func(t *testing.T, clock *registrytest.Clock) registry.BlobStore {
		s, err := registry.OpenDiskBlobs(t.TempDir(), clock.Now)
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestDiskMetadata(t *testing.T) {
	registrytest.TestMetadata(t, func(t *testing.T) registry.Metadata {
		m, err := registry.OpenDiskMetadata(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return m
	})
}

// TestDiskMetadataReopen checks what a restarted registry finds.
func TestDiskMetadataReopen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	m, err := registry.OpenDiskMetadata(dir)
	if err != nil {
		t.Fatal(err)
	}
	config := []byte("{}")
	body := []byte(`{"schemaVersion":2}`)
	if err := m.LinkBlob(ctx, "ws/app", registrytest.Digest(config), 2, registrytest.NewClock().Now()); err != nil {
		t.Fatal(err)
	}
	man := &registry.Manifest{Digest: registrytest.Digest(body), MediaType: registry.MediaTypeImageManifest, Body: body,
		Blobs: []registry.Ref{{Digest: registrytest.Digest(config), Size: 2}}}
	if err := m.PutManifest(ctx, "ws/app", man, []string{"v1"}); err != nil {
		t.Fatal(err)
	}
	if err := m.CreateUpload(ctx, &registry.Upload{ID: "u", Repo: "ws/app"}); err != nil {
		t.Fatal(err)
	}

	m2, err := registry.OpenDiskMetadata(dir)
	if err != nil {
		t.Fatal(err)
	}
	if d, err := m2.Tag(ctx, "ws/app", "v1"); err != nil || d != man.Digest {
		t.Fatalf("Tag after reopening = %s, %v", d, err)
	}
	if got, err := m2.Manifest(ctx, "ws/app", man.Digest); err != nil || string(got.Body) != string(body) {
		t.Fatalf("Manifest after reopening = %v, %v", got, err)
	}
	if _, err := m2.Upload(ctx, "u"); err != nil {
		t.Fatalf("Upload after reopening: %v", err)
	}
}

// TestDiskMetadataFailedWrite checks a change that cannot be written is not kept in memory.
func TestDiskMetadataFailedWrite(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	m, err := registry.OpenDiskMetadata(dir)
	if err != nil {
		t.Fatal(err)
	}
	// A directory where the index goes makes its rename fail, whoever runs the test.
	if err := os.MkdirAll(filepath.Join(dir, "index.json", "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	d := registrytest.Digest([]byte("x"))
	if err := m.LinkBlob(ctx, "ws/app", d, 1, registrytest.NewClock().Now()); err == nil {
		t.Fatal("LinkBlob succeeded without writing its index")
	}
	_, err = m.BlobLink(ctx, "ws/app", d)
	if atelier.ErrorCode(err) != atelier.ENOTFOUND {
		t.Fatalf("after a failed write BlobLink = %v, want ENOTFOUND (the change rolled back)", err)
	}
}
