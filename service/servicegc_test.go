package service_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/server/servertest"
)

// What services deleted while no server ran them left is collected when the controller
// starts: the images unpacked for them and their folders (those of services in the store
// stay). Their kubernetes objects: TestWebServiceKubernetes.
func TestWebServiceLeftovers(t *testing.T) {
	t.Parallel()
	st := servertest.New(t, servertest.WithoutScheduler())
	ctx := context.Background()
	db := st.DB
	served, gone := strings.Repeat("ab", 32), strings.Repeat("cd", 32)
	if err := db.CreateImage(ctx, "default", &atelier.Image{Name: "svc", Models: []atelier.ImageModel{}, EntryScript: "score.py", SnapshotID: "none"}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.EndImageBuild(ctx, "default", atelier.ImageRef{Name: "svc", Version: 1}, &atelier.ImageBuildResult{Digest: "sha256:" + served, Size: 1}, ""); err != nil {
		t.Fatal(err)
	}
	cfg := atelier.WebServiceConfig{}
	cfg.Fill()
	if err := db.CreateWebService(ctx, "default", &atelier.WebService{Name: "kept", Target: "local",
		Images: []atelier.ServiceImage{{Image: "svc:1", Percent: 100}}, Config: cfg, State: atelier.ServiceHealthy}, nil); err != nil {
		t.Fatal(err)
	}
	rootfs := filepath.Join(st.Dir, "services", "rootfs")
	for _, d := range []string{served, gone} {
		if err := os.MkdirAll(filepath.Join(rootfs, d, "usr"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"gone", "kept"} {
		if err := os.MkdirAll(filepath.Join(st.Dir, "services", "default", name, "modeldata"), 0o755); err != nil {
			t.Fatal(err)
		}
	}

	if err := st.Service.CollectLeftovers(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(rootfs, served)); err != nil {
		t.Errorf("the image a service serves was removed: %v", err)
	}
	if _, err := os.Stat(filepath.Join(rootfs, gone)); !os.IsNotExist(err) {
		t.Errorf("the image no service serves is still unpacked: %v", err)
	}
	for name, want := range map[string]bool{"gone": false, "kept": true} {
		_, err := os.Stat(filepath.Join(st.Dir, "services", "default", name))
		if got := err == nil; got != want {
			t.Errorf("folder of %s exists = %v, want %v", name, got, want)
		}
	}
}
