package service_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/server/servertest"
)

// What services left when their server stopped before their end is collected: the images
// unpacked for services that are gone (those of services in the store stay), and the lease
// and folder of a service deleted while no server ran it (a lease another live server holds,
// and the lease of a service that exists, stay).
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
	now := time.Now()
	for _, l := range []struct {
		name, owner string
		expires     time.Time
	}{{"gone", "a-dead-server", now.Add(-time.Minute)}, {"busy", "a-live-server", now.Add(time.Hour)}, {"kept", "a-dead-server", now.Add(-time.Minute)}} {
		id := atelier.ServiceLeaseID("default", l.name)
		if _, err := db.AcquireLease(ctx, &atelier.Lease{Kind: atelier.LeaseKindService, ID: id, Workspace: "default", Owner: l.owner, Expires: l.expires}, now, ""); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(st.Dir, "services", "default", l.name), 0o755); err != nil {
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
	leases, err := db.ListLeases(ctx, atelier.LeaseKindService)
	if err != nil {
		t.Fatal(err)
	}
	left := map[string]string{}
	for _, l := range leases {
		left[l.ID] = l.Owner
	}
	if _, ok := left["default/gone"]; ok {
		t.Errorf("the lease of the deleted service is still held: %v", left)
	}
	if left["default/busy"] != "a-live-server" || left["default/kept"] != "a-dead-server" {
		t.Errorf("leases = %v, want the live server's and the existing service's untouched", left)
	}
	for name, want := range map[string]bool{"gone": false, "busy": true, "kept": true} {
		_, err := os.Stat(filepath.Join(st.Dir, "services", "default", name))
		if got := err == nil; got != want {
			t.Errorf("folder of %s exists = %v, want %v", name, got, want)
		}
	}
}
