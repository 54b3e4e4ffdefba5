package service

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/atelier-ml/atelier"
	kubernetescompute "github.com/atelier-ml/atelier/compute/kubernetes"
)

// What a service deleted while no server ran it leaves behind (its record and lease are gone,
// so no controller stops it): its kubernetes objects, its podman containers, its folder, and
// the image the local target unpacked for it. The web services' controller compares what the
// targets hold (what this installation made: see madeHere) with the store when it starts and
// every leftoversEvery, and removes what belongs to no service; a service that exists is asked
// of the store again just before anything of it is removed, so one deployed meanwhile is
// spared.
const leftoversEvery = 10 * time.Minute

// collectLeftovers runs at each reconcile of the web services (svcs are the store's, every
// workspace's) and does its work at the first and then every leftoversEvery.
func (s *WebServices) collectLeftovers(ctx context.Context, svcs []*atelier.WebService) {
	now := s.now()
	first := s.deploys.leftoversAt.IsZero()
	if !first && now.Sub(s.deploys.leftoversAt) < leftoversEvery {
		return
	}
	s.deploys.leftoversAt = now
	live := map[[2]string]bool{}
	for _, svc := range svcs {
		live[[2]string{svc.Workspace, svc.Name}] = true
	}
	gone := func(workspace, name string) bool {
		if live[[2]string{workspace, name}] {
			return false
		}
		_, err := s.store.FindWebService(ctx, workspace, name)
		return atelier.ErrorCode(err) == atelier.ENOTFOUND
	}
	if first {
		// Nothing runs here yet: what no service of the store uses is left over.
		s.sweepRootfs(ctx, svcs)
		s.sweepFolders(gone)
	}
	// The targets are asked beside the loop: a cluster that does not answer must not hold
	// up the runs, builds and services the controller drives.
	if !s.deploys.sweeping.CompareAndSwap(false, true) {
		return
	}
	s.deploys.sweeps.Add(1)
	go func() {
		defer s.deploys.sweeps.Done()
		defer s.deploys.sweeping.Store(false)
		s.sweepContainers(gone)
		s.sweepKube(ctx, gone)
	}()
}

// sweepRootfs removes the images unpacked for the local target that no service of the store
// serves.
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

// sweepFolders removes the folders (log, model data) of services that are gone.
func (s *WebServices) sweepFolders(gone func(workspace, name string) bool) {
	if s.DataDir == "" {
		return
	}
	workspaces, _ := os.ReadDir(filepath.Join(s.DataDir, "services"))
	for _, ws := range workspaces {
		if !ws.IsDir() || ws.Name() == "rootfs" {
			continue
		}
		names, _ := os.ReadDir(filepath.Join(s.DataDir, "services", ws.Name()))
		for _, n := range names {
			if n.IsDir() && gone(ws.Name(), n.Name()) {
				os.RemoveAll(s.serviceDir(ws.Name(), n.Name()))
				s.log.Info("removed the folder of a deleted web service", "workspace", ws.Name(), "service", n.Name())
			}
		}
	}
}

// sweepContainers removes this server's podman containers of services that are gone.
func (s *WebServices) sweepContainers(gone func(workspace, name string) bool) {
	if s.Podman == "" {
		return
	}
	out, err := exec.Command(s.Podman, "ps", "-a", "--filter", "label="+s.podmanDataLabel(),
		"--format", `{{index .Labels "ai.atelier.service"}}`).Output()
	if err != nil {
		return
	}
	done := map[string]bool{}
	for _, l := range strings.Fields(string(out)) {
		workspace, name, ok := strings.Cut(l, "/")
		if ok && !done[l] && gone(workspace, name) {
			done[l] = true
			s.removeServiceContainers(workspace, name)
			s.log.Info("removed the podman containers of a deleted web service", "workspace", workspace, "service", name)
		}
	}
}

// sweepKube deletes the kubernetes objects of services that are gone, from the kubernetes
// compute targets of every workspace.
func (s *WebServices) sweepKube(ctx context.Context, gone func(workspace, name string) bool) {
	if s.kubeDriver() == nil {
		return
	}
	workspaces, err := s.compute.store.ListWorkspaces(ctx)
	if err != nil {
		return
	}
	for _, ws := range workspaces {
		targets, err := s.compute.store.ListComputeTargets(ctx, ws.Name)
		if err != nil {
			continue
		}
		for _, t := range targets {
			if t.Kind != atelier.ComputeKubernetes || t.Kubernetes == nil {
				continue
			}
			creds, err := s.compute.ComputeTargetCredentials(ctx, t)
			if err != nil {
				continue
			}
			sv, err := s.kubeDriver().Serving(ctx, t, creds)
			if err != nil {
				s.log.Warn("looking for what deleted web services left on a kubernetes target", "workspace", ws.Name, "compute", t.Name, "err", err)
				continue
			}
			for _, k := range sv.Services() {
				if !gone(k[0], k[1]) {
					continue
				}
				if !s.madeHere(ctx, sv, k[0], k[1]) {
					s.log.Info("left the kubernetes objects of a web service this server's store does not know: another installation made them", "workspace", k[0], "service", k[1], "compute", t.Name)
					continue
				}
				if err := sv.DeleteService(ctx, k[0], k[1]); err != nil {
					s.log.Warn("deleting the kubernetes objects of a deleted web service", "workspace", k[0], "service", k[1], "compute", t.Name, "err", err)
					continue
				}
				s.log.Info("deleted the kubernetes objects of a web service deleted while no server ran it", "workspace", k[0], "service", k[1], "compute", t.Name)
			}
		}
	}
}

// madeHere says whether a service's kubernetes objects were made by a server of this store:
// its pull Secret holds a token the store knows (revoked or not). Another installation
// sharing the namespace may have services of the same workspace and name.
func (s *WebServices) madeHere(ctx context.Context, sv *kubernetescompute.Serving, workspace, name string) bool {
	passwords, err := sv.PullPasswords(ctx, workspace, name)
	if err != nil {
		return false
	}
	for _, p := range passwords {
		if _, err := s.store.FindTokenByHash(ctx, HashToken(p)); err == nil {
			return true
		}
	}
	return false
}
