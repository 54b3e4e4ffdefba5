package server

import (
	"context"
	"fmt"
	"os"

	"github.com/atelier-ml/atelier"
	sshcompute "github.com/atelier-ml/atelier/compute/ssh"
)

// openSSH gives the service the driver of ssh targets: it runs the job runner (this binary,
// uploaded once per version) on the workspaces' machines over SSH.
func (s *Server) openSSH(cfg Config) error {
	svc := s.Service
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("finding the server's binary for the ssh targets: %w", err)
	}
	sd := sshcompute.New(self, func(ctx context.Context, ws, name string) (*atelier.ComputeTarget, atelier.ComputeCredentials, error) {
		t, err := svc.ComputeTargetFor(ctx, ws, name)
		if err != nil {
			return nil, atelier.ComputeCredentials{}, err
		}
		creds, err := svc.ComputeTargetCredentials(ctx, t)
		return t, creds, err
	}, cfg.RunnerArgs...)
	sd.Log = s.log
	if svc.Drivers == nil {
		svc.Drivers = map[string]atelier.ComputeDriver{}
	}
	svc.Drivers[atelier.ComputeSSH] = sd
	s.onClose(sd.Close)
	return nil
}
