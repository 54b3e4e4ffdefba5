package service

import (
	"context"

	"github.com/atelier-ml/atelier"
)

// CollectLeftovers runs what the controller's reconcile of web services does with what
// services left behind: once the unpacked images, and the leases of services that are gone.
func (s *WebServices) CollectLeftovers(ctx context.Context) error {
	svcs, err := s.store.ListWebServices(ctx, "")
	if err != nil {
		return err
	}
	leases, err := s.store.ListLeases(ctx, atelier.LeaseKindService)
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, svc := range svcs {
		seen[atelier.ServiceLeaseID(svc.Workspace, svc.Name)] = true
	}
	s.sweepRootfs(ctx, svcs)
	s.collectOrphans(ctx, leases, seen)
	return nil
}
