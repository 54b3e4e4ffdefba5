package service

import (
	"context"
	"os"
	"path/filepath"
	"strings"

	"github.com/atelier-ml/atelier"
)

// What services leave behind when a server stops before their end: the deployment of a service
// deleted while no server ran it (its lease is left, held by a dead or expired owner), and the
// images the local target unpacked for services that are gone. The controller collects both:
// the leases at every reconcile, the unpacked images once, at its first.

// collectOrphans takes the lease of each service that is gone but whose lease another server
// left, removes what the service's target may still run (podman's containers, kubernetes'
// objects) and its folder, and releases the lease.
func (s *WebServices) collectOrphans(ctx context.Context, leases []*atelier.Lease, seen map[string]bool) {
	now := s.now()
	for _, l := range leases {
		if seen[l.ID] || s.deployment(l.ID) != nil || !s.takeable(l, now) {
			continue
		}
		workspace, name, ok := strings.Cut(l.ID, "/") // see atelier.ServiceLeaseID
		if !ok || workspace != l.Workspace {
			continue
		}
		if _, err := s.takeLease(ctx, l, now); err != nil {
			continue // another server took it
		}
		s.removeServiceContainers(workspace, name)
		os.RemoveAll(s.serviceDir(workspace, name))
		if err := s.store.ReleaseLease(ctx, atelier.LeaseKindService, l.ID, s.owner()); err != nil {
			s.log.Error("releasing the lease of a deleted web service", "workspace", workspace, "service", name, "err", err)
			continue
		}
		s.log.Info("cleaned up after a web service deleted while no server ran it", "workspace", workspace, "service", name)
	}
}

// sweepRootfs removes the images unpacked for the local target that no service of the store
// serves (their services were deleted, or updated, while the server was down). It runs before
// this server starts any pool, so nothing it removes is in use here.
func (s *WebServices) sweepRootfs(ctx context.Context, svcs []*atelier.WebService) {
	if s.images.Builder == nil || s.DataDir == "" {
		return
	}
	entries, err := os.ReadDir(filepath.Join(s.DataDir, "services", "rootfs"))
	if err != nil {
		return // none unpacked yet
	}
	keep := map[string]bool{}
	for _, svc := range svcs {
		for _, si := range svc.Images {
			if img, err := s.store.FindImage(ctx, svc.Workspace, si.Ref()); err == nil {
				keep[s.rootfsDir(img.Digest)] = true
			} else if atelier.ErrorCode(err) != atelier.ENOTFOUND {
				return // unsure what is served: keep everything
			}
		}
	}
	s.deploys.unpack.Lock()
	defer s.deploys.unpack.Unlock()
	for _, e := range entries {
		dir := filepath.Join(s.DataDir, "services", "rootfs", e.Name())
		if keep[dir] || s.deploys.rootfs[dir] > 0 {
			continue
		}
		if err := s.images.Builder.RemoveUnpacked(dir); err != nil {
			s.log.Error("removing an unpacked image no service serves", "dir", dir, "err", err)
			continue
		}
		s.log.Info("removed an unpacked image no service serves", "dir", dir)
	}
}
