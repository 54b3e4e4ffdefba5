package service

import (
	"context"

	"github.com/atelier-ml/atelier"
)

// RenameRun sets a run's display name: who may change the run (or its token) may rename it.
func (s *Runs) RenameRun(ctx context.Context, workspace, id, name string) (*atelier.Run, error) {
	if err := s.authorizeWrite(ctx, workspace, id); err != nil {
		return nil, err
	}
	rn, ok := s.store.(atelier.RunRenamer)
	if !ok {
		return nil, atelier.Errorf(atelier.EINVALID, "this server's store cannot rename runs")
	}
	run, err := rn.RenameRun(ctx, workspace, id, name)
	if err != nil {
		return nil, err
	}
	s.runChanged(ctx, run)
	return run, nil
}
