package service

import (
	"context"
	"time"
)

// CollectLeftovers runs what the web services' controller does, when it starts, with what
// deleted services left.
func (s *WebServices) CollectLeftovers(ctx context.Context) error {
	svcs, err := s.store.ListWebServices(ctx, "")
	if err != nil {
		return err
	}
	s.deploys.leftoversAt = time.Time{}
	s.collectLeftovers(ctx, svcs)
	s.deploys.sweeps.Wait()
	return nil
}
