package service

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"

	"github.com/atelier-ml/atelier"
)

// The podman deployment target runs each replica of a web service as a container of its image
// (loaded into podman's storage from the workspace registry), its scoring runtime listening on
// a Unix socket in a directory bound into the container, as the local target's does.

// podmanImageRepo names the images loaded for services, by their digest.
const podmanImageRepo = "localhost/atelier/served"

// podmanImage loads a built image into podman's storage once and returns its name there.
func (s *WebServices) podmanImage(ctx context.Context, workspace string, ref atelier.ImageRef, img *atelier.Image) (string, *atelier.ImageRuntime, error) {
	name := podmanImageRepo + ":" + strings.TrimPrefix(img.Digest, "sha256:")
	s.deploys.unpack.Lock()
	defer s.deploys.unpack.Unlock()
	if exec.CommandContext(ctx, s.Podman, "image", "exists", name).Run() == nil {
		return name, nil, nil
	}
	load := exec.CommandContext(ctx, s.Podman, "load")
	pr, pw := io.Pipe()
	load.Stdin = pr
	var out bytes.Buffer
	load.Stdout, load.Stderr = &out, &out
	if err := load.Start(); err != nil {
		return "", nil, fmt.Errorf("podman load: %w", err)
	}
	eerr := s.images.Builder.Export(ctx, workspace, ref, "docker", pw)
	pw.CloseWithError(eerr)
	lerr := load.Wait()
	if eerr != nil {
		return "", nil, fmt.Errorf("exporting the image to podman: %w", eerr)
	}
	if lerr != nil {
		return "", nil, fmt.Errorf("podman load: %v: %s", lerr, strings.TrimSpace(out.String()))
	}
	loaded := ""
	for _, line := range strings.Split(out.String(), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "Loaded image:"); ok {
			loaded = strings.TrimSpace(v)
		}
	}
	if loaded == "" {
		return "", nil, fmt.Errorf("podman load named no image: %s", strings.TrimSpace(out.String()))
	}
	if b, err := exec.CommandContext(ctx, s.Podman, "tag", loaded, name).CombinedOutput(); err != nil {
		return "", nil, fmt.Errorf("podman tag: %v: %s", err, strings.TrimSpace(string(b)))
	}
	return name, nil, nil
}

// podmanLabels mark a service's containers, and this server's data directory (two servers on
// one machine share podman's storage).
func (s *WebServices) podmanLabels(workspace, service string) []string {
	return []string{s.podmanDataLabel(), "ai.atelier.service=" + workspace + "/" + service}
}

// podmanDataLabel marks the containers of this server's data directory.
func (s *WebServices) podmanDataLabel() string {
	sum := sha256.Sum256([]byte(s.DataDir))
	return "ai.atelier.data=" + hex.EncodeToString(sum[:8])
}

// podmanReplica is the command of replica n: a container attached to the command's output,
// removed when it exits (stop removes it if the command was killed first).
func (s *WebServices) podmanReplica(svc *atelier.WebService, image string, _ *atelier.ImageRuntime, n int, sockDir, modelData string, env []string) (*exec.Cmd, func()) {
	name := fmt.Sprintf("atelier-%s-%s-%d-%s", svc.Workspace, svc.Name, n, newServiceKey()[:6])
	name = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' {
			return r
		}
		return '-'
	}, name)
	args := []string{"run", "--rm", "--name", name, "--network=host", "--init=false",
		"-v", sockDir + ":/run/atelier", "-v", modelData + ":" + modelDataIn}
	for _, l := range s.podmanLabels(svc.Workspace, svc.Name) {
		args = append(args, "--label", l)
	}
	if c := svc.Config.CPUCores; c > 0 {
		args = append(args, "--cpus", strconv.FormatFloat(c, 'f', -1, 64))
	}
	if m := svc.Config.MemoryGB; m > 0 {
		args = append(args, "--memory", strconv.FormatInt(int64(m*(1<<30)), 10))
	}
	for _, kv := range env {
		args = append(args, "-e", kv)
	}
	args = append(args, image)
	stop := func() { exec.Command(s.Podman, "rm", "-f", "-t", "0", name).Run() }
	return exec.Command(s.Podman, args...), stop
}

// removeServiceContainers removes the containers a service left behind (its server was killed).
func (s *WebServices) removeServiceContainers(workspace, service string) {
	if s.Podman == "" {
		return
	}
	args := []string{"ps", "-a", "-q"}
	for _, l := range s.podmanLabels(workspace, service) {
		args = append(args, "--filter", "label="+l)
	}
	out, err := exec.Command(s.Podman, args...).Output()
	if err != nil {
		return
	}
	if ids := strings.Fields(string(out)); len(ids) > 0 {
		exec.Command(s.Podman, append([]string{"rm", "-f", "-t", "0"}, ids...)...).Run()
	}
}
