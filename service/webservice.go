package service

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/atelier-ml/atelier"
)

// Activity kinds of web services.
const (
	ActivityServiceDeploy = "service.deploy"
	ActivityServiceDelete = "service.delete"
)

// EventServiceStatus is published when a web service's state changes.
const EventServiceStatus = "service.status"

// kubeTargetsOffered stands in serviceTargets for the kubernetes compute targets of a
// workspace, each a deployment target by its name.
const kubeTargetsOffered = "the name of a kubernetes compute target"

// serviceTargets are the deployment targets this server runs services on.
func (s *WebServices) serviceTargets() []string {
	if s.images.Builder == nil {
		return nil
	}
	var targets []string
	if s.Bwrap != "" {
		targets = append(targets, "local")
	}
	if s.Podman != "" {
		targets = append(targets, "podman")
	}
	if s.kubeDriver() != nil {
		targets = append(targets, kubeTargetsOffered)
	}
	return targets
}

func serviceAAD(workspace, name string) []byte {
	return []byte("atelier service keys\x00" + workspace + "\x00" + name)
}

func newServiceKey() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func (s *WebServices) sealServiceKeys(workspace, name string, k atelier.ServiceKeys) ([]byte, error) {
	if s.Secrets == nil {
		return nil, atelier.Errorf(atelier.EUNAVAILABLE, "the server has no master key, so it cannot keep service keys: deploy with auth disabled or start the server with a master key")
	}
	plain, _ := json.Marshal(k)
	return s.Secrets.Seal(plain, serviceAAD(workspace, name))
}

// openServiceKeys reads a service's keys (no authorization: for the gateway and GetServiceKeys).
func (s *WebServices) openServiceKeys(ctx context.Context, workspace, name string) (atelier.ServiceKeys, error) {
	var k atelier.ServiceKeys
	sealed, err := s.store.WebServiceKeys(ctx, workspace, name)
	if err != nil || len(sealed) == 0 {
		return k, err
	}
	if s.Secrets == nil {
		return k, atelier.Errorf(atelier.EUNAVAILABLE, "the server has no master key, so it cannot read service keys")
	}
	plain, err := s.Secrets.Open(sealed, serviceAAD(workspace, name))
	if err != nil {
		s.log.Error("opening service keys", "workspace", workspace, "service", name, "err", err)
		return k, atelier.Errorf(atelier.EUNAVAILABLE, "the keys of service %q cannot be decrypted (was the server's master key changed?): regenerate them", name)
	}
	return k, json.Unmarshal(plain, &k)
}

// resolveServiceImages checks a deployment's images and names each one's version.
func (s *WebServices) resolveServiceImages(ctx context.Context, workspace string, d *atelier.WebServiceDeploy) ([]atelier.ServiceImage, error) {
	images := d.Images
	if d.Image != "" {
		if len(images) > 0 {
			return nil, atelier.Errorf(atelier.EINVALID, "give image or images (a traffic split), not both")
		}
		images = []atelier.ServiceImage{{Image: d.Image, Percent: 100}}
	}
	out := make([]atelier.ServiceImage, 0, len(images))
	for _, si := range images {
		ref, err := atelier.ParseImageRef(si.Image)
		if err != nil {
			return nil, err
		}
		img, err := s.store.FindImage(ctx, workspace, ref)
		if atelier.ErrorCode(err) == atelier.ENOTFOUND {
			return nil, atelier.Errorf(atelier.EINVALID, "image %s not found in workspace %q (see 'atelier image list')", si.Image, workspace)
		} else if err != nil {
			return nil, err
		}
		if img.Status != atelier.ImageSucceeded {
			return nil, atelier.Errorf(atelier.EINVALID, "image %s:%d cannot be served: its build is %s", img.Name, img.Version, img.Status)
		}
		out = append(out, atelier.ServiceImage{Image: fmt.Sprintf("%s:%d", img.Name, img.Version), Percent: si.Percent})
	}
	if err := atelier.ValidateTraffic(out); err != nil {
		return nil, err
	}
	return out, nil
}

func (s *WebServices) checkServiceTarget(ctx context.Context, workspace, target string) error {
	has := s.serviceTargets()
	if slices.Contains(has, target) && target != kubeTargetsOffered {
		return nil
	}
	if len(has) > 0 && !builtInServiceTarget(target) && slices.Contains(has, kubeTargetsOffered) {
		_, err := s.kubeServiceTarget(ctx, workspace, target)
		return err
	}
	if len(has) == 0 {
		return atelier.Errorf(atelier.EUNAVAILABLE, "this server deploys no web services: it needs an image builder, and bubblewrap (apt install bubblewrap) for the local target or podman for the podman target")
	}
	return atelier.Errorf(atelier.EINVALID, "deployment target %q is not available on this server (it has: %s)", target, strings.Join(has, ", "))
}

// DeployWebService stores a new web service; the controller deploys it.
func (s *WebServices) DeployWebService(ctx context.Context, workspace string, d atelier.WebServiceDeploy) (*atelier.WebService, error) {
	if err := s.authorizeWrite(ctx, workspace, ""); err != nil {
		return nil, err
	}
	if err := atelier.ValidateServiceName(d.Name); err != nil {
		return nil, err
	}
	if d.Target == "" {
		d.Target = "local"
	}
	if err := s.checkServiceTarget(ctx, workspace, d.Target); err != nil {
		return nil, err
	}
	if len(d.Description) > atelier.MaxTagValue {
		return nil, atelier.Errorf(atelier.EINVALID, "the description is longer than %d bytes", atelier.MaxTagValue)
	}
	if err := atelier.ValidateKeyValues("tag", d.Tags, atelier.MaxTagValue); err != nil {
		return nil, err
	}
	cfg := atelier.WebServiceConfig{AuthEnabled: true}
	if d.Config != nil {
		cfg = *d.Config
	}
	cfg.Fill()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	images, err := s.resolveServiceImages(ctx, workspace, &d)
	if err != nil {
		return nil, err
	}
	svc := &atelier.WebService{Name: d.Name, Description: d.Description, Tags: d.Tags, Target: d.Target, Images: images,
		Config: cfg, State: atelier.ServiceTransitioning}
	sealed, err := s.sealServiceKeys(workspace, d.Name, atelier.ServiceKeys{Primary: newServiceKey(), Secondary: newServiceKey()})
	if err != nil && cfg.AuthEnabled {
		return nil, err
	}
	if err := s.store.CreateWebService(ctx, workspace, svc, sealed); err != nil {
		return nil, err
	}
	s.serviceChanged(ctx, svc, "deploying "+describeImages(images))
	s.sched.poke()
	return s.withReplicas(svc), nil
}

func describeImages(images []atelier.ServiceImage) string {
	if len(images) == 1 {
		return images[0].Image
	}
	parts := make([]string, len(images))
	for i, im := range images {
		parts[i] = im.String()
	}
	return strings.Join(parts, ", ")
}

// UpdateWebService changes a service: its image(s) (a rolling update: the new replicas are
// ready before the old ones stop), traffic split, configuration, description or tags.
func (s *WebServices) UpdateWebService(ctx context.Context, workspace string, d atelier.WebServiceDeploy) (*atelier.WebService, error) {
	if err := s.authorizeWrite(ctx, workspace, ""); err != nil {
		return nil, err
	}
	svc, err := s.store.FindWebService(ctx, workspace, d.Name)
	if err != nil {
		return nil, err
	}
	if d.Target != "" && d.Target != svc.Target {
		return nil, atelier.Errorf(atelier.EINVALID, "a service cannot move to another target (%s to %s): deploy a new service there", svc.Target, d.Target)
	}
	if d.Image != "" || len(d.Images) > 0 {
		if svc.Images, err = s.resolveServiceImages(ctx, workspace, &d); err != nil {
			return nil, err
		}
	}
	if d.Config != nil {
		cfg := *d.Config
		cfg.Fill()
		if err := cfg.Validate(); err != nil {
			return nil, err
		}
		if cfg.AuthEnabled && !svc.Config.AuthEnabled {
			if keys, _ := s.store.WebServiceKeys(ctx, workspace, d.Name); len(keys) == 0 {
				return nil, atelier.Errorf(atelier.EUNAVAILABLE, "the server has no master key, so it cannot keep service keys")
			}
		}
		svc.Config = cfg
	}
	if d.Description != "" {
		svc.Description = d.Description
	}
	if d.Tags != nil {
		if err := atelier.ValidateKeyValues("tag", d.Tags, atelier.MaxTagValue); err != nil {
			return nil, err
		}
		svc.Tags = d.Tags
	}
	svc.State, svc.Error = atelier.ServiceTransitioning, ""
	if err := s.store.UpdateWebService(ctx, workspace, svc); err != nil {
		return nil, err
	}
	s.serviceChanged(ctx, svc, "updating to "+describeImages(svc.Images))
	s.sched.poke()
	return s.withReplicas(svc), nil
}

// FindWebService returns a service with its replicas' live state.
func (s *WebServices) FindWebService(ctx context.Context, workspace, name string) (*atelier.WebService, error) {
	if err := s.authorize(ctx, workspace); err != nil {
		return nil, err
	}
	svc, err := s.store.FindWebService(ctx, workspace, name)
	if err != nil {
		return nil, err
	}
	return s.withReplicas(svc), nil
}

// ListWebServices lists a workspace's services by name.
func (s *WebServices) ListWebServices(ctx context.Context, workspace string) ([]*atelier.WebService, error) {
	if err := s.authorize(ctx, workspace); err != nil {
		return nil, err
	}
	list, err := s.store.ListWebServices(ctx, workspace)
	for _, svc := range list {
		s.withReplicas(svc)
	}
	return list, err
}

// DeleteWebService stops a service's replicas and removes it.
func (s *WebServices) DeleteWebService(ctx context.Context, workspace, name string) error {
	if err := s.authorizeWrite(ctx, workspace, ""); err != nil {
		return err
	}
	svc, err := s.store.FindWebService(ctx, workspace, name)
	if err != nil {
		return err
	}
	if err := s.store.DeleteWebService(ctx, workspace, name); err != nil {
		return err
	}
	s.stopDeployment(ctx, atelier.ServiceLeaseID(workspace, name))
	os.RemoveAll(s.serviceDir(workspace, name))
	svc.State = "Deleted"
	s.serviceChanged(ctx, svc, "deleted")
	return nil
}

// WebServiceKeys returns a service's keys; regenerate ("primary" or "secondary") replaces one
// first. Only Contributors read keys: a key lets anyone score.
func (s *WebServices) WebServiceKeys(ctx context.Context, workspace, name, regenerate string) (atelier.ServiceKeys, error) {
	var k atelier.ServiceKeys
	if err := s.authorizeWrite(ctx, workspace, ""); err != nil {
		return k, err
	}
	svc, err := s.store.FindWebService(ctx, workspace, name)
	if err != nil {
		return k, err
	}
	if !svc.Config.AuthEnabled {
		return k, atelier.Errorf(atelier.EINVALID, "web service %q does not use keys (auth is %s)", name, authMode(svc.Config))
	}
	if k, err = s.openServiceKeys(ctx, workspace, name); err != nil {
		return k, err
	}
	switch regenerate {
	case "":
		return k, nil
	case "primary", "Primary":
		k.Primary = newServiceKey()
	case "secondary", "Secondary":
		k.Secondary = newServiceKey()
	default:
		return k, atelier.Errorf(atelier.EINVALID, "regenerate which key: primary or secondary, not %q", regenerate)
	}
	sealed, err := s.sealServiceKeys(workspace, name, k)
	if err != nil {
		return k, err
	}
	if err := s.store.SetWebServiceKeys(ctx, workspace, name, sealed); err != nil {
		return k, err
	}
	if d := s.deployment(atelier.ServiceLeaseID(workspace, name)); d != nil {
		d.setKeys(k)
	}
	return k, nil
}

func authMode(c atelier.WebServiceConfig) string {
	switch {
	case c.AuthEnabled:
		return "key"
	case c.TokenAuthEnabled:
		return "token"
	}
	return "off"
}

// WebServiceLog writes a service's log (its replicas' output, its scale decisions and its
// requests) from offset, and returns the offset after what it wrote.
func (s *WebServices) WebServiceLog(ctx context.Context, workspace, name string, offset int64, w io.Writer) (int64, error) {
	if err := s.authorize(ctx, workspace); err != nil {
		return offset, err
	}
	if _, err := s.store.FindWebService(ctx, workspace, name); err != nil {
		return offset, err
	}
	if d := s.deployment(atelier.ServiceLeaseID(workspace, name)); d != nil {
		d.log.flush()
	}
	return readServiceLog(s.serviceDir(workspace, name), offset, w)
}

// serviceChanged publishes a service's state and records its activity.
func (s *WebServices) serviceChanged(ctx context.Context, svc *atelier.WebService, msg string) {
	s.publish(svc.Workspace, EventServiceStatus, "", svc)
	now := s.now().UTC()
	a := &atelier.Activity{ID: "service-" + svc.Name, Workspace: svc.Workspace, Kind: ActivityServiceDeploy, Target: svc.Name,
		Message: msg, StartedAt: svc.UpdatedAt, UpdatedAt: now, Error: svc.Error}
	switch svc.State {
	case atelier.ServiceTransitioning:
		a.Status = atelier.ActivityRunning
	case atelier.ServiceFailed:
		a.Status, a.Percent, a.EndedAt = atelier.ActivityFailed, 100, &now
	default:
		a.Status, a.Percent, a.EndedAt = atelier.ActivitySucceeded, 100, &now
	}
	if svc.State == "Deleted" {
		a.Kind = ActivityServiceDelete
	}
	if err := s.store.PutActivity(context.WithoutCancel(ctx), a); err != nil {
		s.log.Warn("recording a web service's activity", "service", svc.Name, "err", err)
	}
	s.publish(svc.Workspace, atelier.EventActivity, "", a)
}

// serviceDir holds a service's log and its model data before it is shipped.
func (s *WebServices) serviceDir(workspace, name string) string {
	return filepath.Join(s.DataDir, "services", workspace, name)
}

// withReplicas fills a service's live replica counts from the deployment this server runs.
func (s *WebServices) withReplicas(svc *atelier.WebService) *atelier.WebService {
	if svc.Tags == nil {
		svc.Tags = map[string]string{}
	}
	if d := s.deployment(atelier.ServiceLeaseID(svc.Workspace, svc.Name)); d != nil {
		svc.Replicas = d.counts()
		svc.Events = d.recentEvents()
	}
	if s.ServerURL != "" {
		base := strings.TrimSuffix(s.ServerURL, "/") + "/services/" + url.PathEscape(svc.Workspace) + "/" + svc.Name
		svc.ScoringURI, svc.SwaggerURI = base+"/score", base+"/swagger.json"
	}
	return svc
}
