package server

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/atelier-ml/atelier"
	kubernetescompute "github.com/atelier-ml/atelier/compute/kubernetes"
	podmancompute "github.com/atelier-ml/atelier/compute/podman"
	slurmcompute "github.com/atelier-ml/atelier/compute/slurm"
	sshcompute "github.com/atelier-ml/atelier/compute/ssh"
)

// openRemoteCompute gives the service the drivers of the workspaces' remote targets, which
// run the job runner (this binary) elsewhere:
//   - ssh: uploaded once per version to the machines, run over SSH;
//   - slurm: each run a batch job submitted through slurmrestd, whose script runs the runner
//     from the target's slurm.runner (this binary's path by default) in its slurm.work_dir
//     (<data>/slurm by default): the defaults suit a server on the cluster's shared filesystem;
//   - podman: each run a container of the target's image (or of the server's --image-base),
//     the runner bind-mounted read-only (copied in for a service on another machine);
//   - kubernetes: each run a batch/v1 Job in the target's namespace whose pod runs the runner
//     from the target's kubernetes.image (or ATELIER_KUBERNETES_IMAGE's), reaching the server
//     at its advertised URL; the driver watches the Jobs and pods it made.
func (s *Server) openRemoteCompute(cfg Config) error {
	svc := s.Service
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("finding the server's binary for the remote compute targets: %w", err)
	}
	lookup := func(ctx context.Context, ws, name string) (*atelier.ComputeTarget, atelier.ComputeCredentials, error) {
		t, err := svc.ComputeTargetFor(ctx, ws, name)
		if err != nil {
			return nil, atelier.ComputeCredentials{}, err
		}
		creds, err := svc.ComputeTargetCredentials(ctx, t)
		return t, creds, err
	}
	if svc.Drivers == nil {
		svc.Drivers = map[string]atelier.ComputeDriver{}
	}
	sd := sshcompute.New(self, lookup, cfg.RunnerArgs...)
	sd.Log = s.log
	svc.Drivers[atelier.ComputeSSH] = sd
	s.onClose(sd.Close)

	sl := slurmcompute.New(self, filepath.Join(s.DataDir, "slurm"), lookup, cfg.RunnerArgs...)
	sl.Log = s.log
	svc.Drivers[atelier.ComputeSlurm] = sl

	pd := podmancompute.New(self, cfg.RunnerArgs...)
	pd.DefaultBase = cfg.ImageBase
	pd.Dir = filepath.Join(s.DataDir, "podman")
	pd.Log = s.log
	svc.Drivers[atelier.ComputePodman] = pd

	kd := kubernetescompute.New(os.Getenv("ATELIER_KUBERNETES_IMAGE"), lookup, cfg.RunnerArgs...)
	kd.Log = s.log
	if p := os.Getenv("ATELIER_KUBERNETES_MASTER_PORT"); p != "" {
		port, err := strconv.Atoi(p)
		if err != nil || port < 1 || port > 65534 {
			return fmt.Errorf("ATELIER_KUBERNETES_MASTER_PORT=%q: a port from 1 to 65534 (the next one is node 0's control port)", p)
		}
		kd.MasterPort = port
	}
	// A target's kubernetes.image may name a workspace image (NAME:VERSION): its pods pull it
	// from the workspace registry at the advertised address, with the run's token.
	kd.ResolveImage = func(ctx context.Context, workspace, image string) (*kubernetescompute.PullImage, error) {
		ref, ok, err := svc.ResolveWorkspaceImage(ctx, workspace, image)
		if err != nil || !ok {
			return nil, err
		}
		host, _, _ := strings.Cut(ref, "/")
		return &kubernetescompute.PullImage{Reference: ref, Registry: host}, nil
	}
	svc.Drivers[atelier.ComputeKubernetes] = kd
	s.onClose(kd.Close)
	return nil
}
