package service

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/atelier-ml/atelier"
	kubernetescompute "github.com/atelier-ml/atelier/compute/kubernetes"
	"github.com/atelier-ml/atelier/serving"
)

// The kubernetes deployment target: a web service whose target names a compute target of kind
// kubernetes runs each revision (image and configuration) as a Deployment in the target's
// namespace, its pods pulling the image from the workspace registry, with one ClusterIP Service
// over the service's pods (package compute/kubernetes, Serving). The gateway stays the
// service's front: its pool of each revision maps replicas onto Ready pods (dialed at their
// IP, port 5001), so its autoscaler sizes the Deployments. A janitor per running service
// deletes the Deployments no pool uses any more (a rolling update's old revision once its
// requests are answered, a failed revision, a leftover of an interrupted update), and
// everything of a deleted service. A server that stops leaves the objects: the server that
// takes the service's lease next adopts them.

// builtInServiceTarget says whether a deployment target is one of the server's own (local,
// podman) rather than a compute target's name.
func builtInServiceTarget(target string) bool { return target == "local" || target == "podman" }

// kubeDriver is the server's kubernetes compute driver, nil without one.
func (s *WebServices) kubeDriver() *kubernetescompute.Driver {
	d, _ := s.compute.Drivers[atelier.ComputeKubernetes].(*kubernetescompute.Driver)
	return d
}

// kubeServiceTarget checks that target names a kubernetes compute target of the workspace.
func (s *WebServices) kubeServiceTarget(ctx context.Context, workspace, target string) (*atelier.ComputeTarget, error) {
	t, err := s.compute.ComputeTargetFor(ctx, workspace, target)
	if atelier.ErrorCode(err) == atelier.ENOTFOUND {
		var builtIn []string
		for _, t := range s.serviceTargets() {
			if builtInServiceTarget(t) {
				builtIn = append(builtIn, t)
			}
		}
		has := strings.Join(builtIn, ", ")
		return nil, atelier.Errorf(atelier.EINVALID, "deployment target %q is neither one of this server's (%s) nor a compute target of workspace %q (attach a Kubernetes cluster with 'atelier compute attach NAME --kind kubernetes')",
			target, has, workspace)
	} else if err != nil {
		return nil, err
	}
	if t.Kind != atelier.ComputeKubernetes || t.Kubernetes == nil {
		return nil, atelier.Errorf(atelier.EINVALID, "compute target %q is of kind %s: web services deploy to compute targets of kind kubernetes (or to local, podman)", target, t.Kind)
	}
	if s.kubeDriver() == nil {
		return nil, atelier.Errorf(atelier.EUNAVAILABLE, "this server has no kubernetes driver to deploy to compute target %q", target)
	}
	return t, nil
}

// kubeServing is the kubernetes side of a service's target.
func (s *WebServices) kubeServing(ctx context.Context, svc *atelier.WebService) (*kubernetescompute.Serving, error) {
	t, err := s.kubeServiceTarget(ctx, svc.Workspace, svc.Target)
	if err != nil {
		return nil, err
	}
	creds, err := s.compute.ComputeTargetCredentials(ctx, t)
	if err != nil {
		return nil, err
	}
	return s.kubeDriver().Serving(ctx, t, creds)
}

// servicePullTTL is how long a service's image pull credential lasts; the janitor renews it
// after servicePullRenew.
const (
	servicePullTTL   = 30 * 24 * time.Hour
	servicePullRenew = 7 * 24 * time.Hour
)

// servicePull makes a credential that pulls the workspace's images (a token of kind run, for
// no run, reading the workspace: what a run's token may do) for a service's pods.
//
// A server starting revokes the run tokens of no leased run (see Init): another server of the
// database that restarts revokes the credentials of the services this one runs, so the janitor
// checks that its credential is still valid and replaces a revoked one.
func (s *WebServices) servicePull(ctx context.Context, svc *atelier.WebService, reference string) (*kubernetescompute.PullImage, *atelier.Token, error) {
	expires := s.now().Add(servicePullTTL).UTC()
	tok, err := s.accounts.createToken(context.WithoutCancel(ctx), &atelier.Token{Name: "service " + svc.Name + " image pull", Kind: atelier.PrincipalRun,
		Owner: svc.CreatedBy, Workspace: svc.Workspace, RunID: "service:" + svc.Name, ExpiresAt: &expires})
	if err != nil {
		return nil, nil, fmt.Errorf("making the image pull credential: %w", err)
	}
	host, _, _ := strings.Cut(reference, "/")
	return &kubernetescompute.PullImage{Reference: reference, Registry: host, Username: "service", Password: tok.Secret}, tok, nil
}

// poolConfig is a pool's configuration from a service's.
func poolConfig(c atelier.WebServiceConfig) serving.Config {
	return serving.Config{Replicas: c.Replicas, Autoscale: c.AutoscaleEnabled, Min: c.MinReplicas, Max: c.MaxReplicas,
		TargetUtilization: c.TargetUtilization, Refresh: time.Duration(c.RefreshSeconds) * time.Second,
		ScaleDownDelay: time.Duration(c.ScaleDownDelaySeconds) * time.Second, MaxConcurrent: c.MaxConcurrentRequestsPerReplica,
		MaxWait: time.Duration(c.MaxRequestWaitMs) * time.Millisecond, Timeout: time.Duration(c.ScoringTimeoutMs) * time.Millisecond}
}

// startKubePool deploys an image of a service to its kubernetes target (or adopts the
// Deployment a previous server made) and starts the pool of its replicas, returning once the
// replicas the service starts with are Ready pods. When they cannot start, the Deployment is
// deleted: nothing stays half-deployed.
func (s *WebServices) startKubePool(ctx context.Context, d *deployment, svc *atelier.WebService, si atelier.ServiceImage) (*serving.Pool, error) {
	sv, err := s.kubeServing(ctx, svc)
	if err != nil {
		return nil, err
	}
	ref, ok, err := s.images.ResolveWorkspaceImage(ctx, svc.Workspace, si.Image)
	if err != nil {
		return nil, err
	} else if !ok {
		return nil, atelier.Errorf(atelier.EINVALID, "image %s is not a built image of workspace %q", si.Image, svc.Workspace)
	}
	c := svc.Config
	env := []string{"ATELIER_SERVICE_NAME=" + svc.Name, "ATELIER_WORKSPACE=" + svc.Workspace, "ATELIER_ACCESS_LOG=0"}
	j := s.kubeJanitor(d, sv)
	pull, tok, err := s.servicePull(ctx, svc, ref)
	if err != nil {
		return nil, err
	}
	j.tokens(tok)
	rev := kubernetescompute.Revision{Workspace: svc.Workspace, Service: svc.Name, Image: si.Image,
		Name: kubernetescompute.DeploymentName(svc.Workspace, svc.Name, si.Image, c), Reference: ref, Pull: pull,
		Env: env, CPU: c.CPUCores, MemoryGB: c.MemoryGB, ModelData: c.CollectModelData, Log: func(msg string) { d.log.printf("%s: %s", si.Image, msg) }}
	kr := &kubeRev{}
	j.register(rev.Name, kr)
	pods, err := sv.Deploy(ctx, rev)
	if err != nil {
		j.unregister(rev.Name)
		return nil, err
	}
	pods.StartTimeout = DefaultReplicaStartTimeout
	if token := pods.ModelDataToken(); token != "" {
		pods.BeforeDelete = s.kubeModelData(d, sv, token).beforeDelete // kubemodeldata.go
	}
	pool := serving.NewPool(poolConfig(c), pods.Start, s.now, func(e serving.Event) {
		d.metrics.event(e.Kind, e.Message)
		d.log.printf("%s: %s", si.Image, e.Message)
		d.event(atelier.ServiceEvent{Time: s.now().UTC(), Kind: e.Kind, Message: si.Image + ": " + e.Message})
	})
	j.mu.Lock()
	kr.pods, kr.pool = pods, pool
	j.mu.Unlock()
	want := c.Replicas
	if c.AutoscaleEnabled {
		want = c.MinReplicas
	}
	if err := pool.WaitReady(ctx, want); err != nil {
		pool.Close(context.Background())
		if ctx.Err() == nil {
			if derr := sv.DeleteDeployment(context.WithoutCancel(ctx), rev.Name); derr != nil {
				d.log.printf("%s: %v", si.Image, derr)
			} else {
				d.log.printf("%s: Deployment %s deleted: its replicas did not start", si.Image, rev.Name)
			}
			j.unregister(rev.Name)
		}
		return nil, err
	}
	if err := pods.Trim(ctx); err != nil {
		d.log.printf("%s: %v", si.Image, err)
	}
	j.poke()
	return pool, nil
}

// kubeRev is a revision the janitor knows: its pods and pool (nil while starting), and the
// state the service had applied when it started.
type kubeRev struct {
	pods    *kubernetescompute.Pods
	pool    *serving.Pool
	applied *atelier.WebService
}

// kubeJanitor keeps a running service's kubernetes objects to those its pools use.
type kubeJanitor struct {
	s    *WebServices
	d    *deployment
	sv   *kubernetescompute.Serving
	wake chan struct{}

	mu       sync.Mutex
	revs     map[string]*kubeRev // by Deployment name
	tokenIDs []string
	tokenAt  time.Time
	hash     string // of the credential the pull Secret holds
	checked  time.Time
}

var kubeJanitors = struct {
	sync.Mutex
	m map[*deployment]*kubeJanitor
}{m: map[*deployment]*kubeJanitor{}}

// kubeJanitor returns the janitor of a deployment, starting it the first time.
func (s *WebServices) kubeJanitor(d *deployment, sv *kubernetescompute.Serving) *kubeJanitor {
	kubeJanitors.Lock()
	defer kubeJanitors.Unlock()
	if j := kubeJanitors.m[d]; j != nil {
		return j
	}
	j := &kubeJanitor{s: s, d: d, sv: sv, wake: make(chan struct{}, 1), revs: map[string]*kubeRev{}}
	kubeJanitors.m[d] = j
	go j.loop()
	return j
}

func (j *kubeJanitor) poke() {
	select {
	case j.wake <- struct{}{}:
	default:
	}
}

func (j *kubeJanitor) register(name string, kr *kubeRev) {
	j.d.mu.RLock()
	kr.applied = j.d.applied
	j.d.mu.RUnlock()
	j.mu.Lock()
	j.revs[name] = kr
	j.mu.Unlock()
}

func (j *kubeJanitor) unregister(name string) {
	j.mu.Lock()
	delete(j.revs, name)
	j.mu.Unlock()
}

func (j *kubeJanitor) tokens(t *atelier.Token) {
	j.mu.Lock()
	j.tokenIDs = append(j.tokenIDs, t.ID)
	j.tokenAt, j.hash = j.s.now(), t.Hash
	j.mu.Unlock()
}

// pullRevoked says whether the pull Secret's credential was revoked.
func (j *kubeJanitor) pullRevoked(ctx context.Context) bool {
	j.mu.Lock()
	hash := j.hash
	due := time.Since(j.checked) >= 5*time.Second
	if due {
		j.checked = time.Now()
	}
	j.mu.Unlock()
	if hash == "" || !due {
		return false
	}
	t, err := j.s.store.FindTokenByHash(ctx, hash)
	return err == nil && t.RevokedAt != nil
}

func (j *kubeJanitor) loop() {
	defer func() {
		kubeJanitors.Lock()
		delete(kubeJanitors.m, j.d)
		kubeJanitors.Unlock()
	}()
	for {
		changed := j.sv.Changed()
		if j.pass() {
			return
		}
		select {
		case <-changed:
		case <-j.wake:
		case <-j.d.done:
		case <-time.After(5 * time.Second):
		}
	}
}

// pass deletes the Deployments no pool uses; once the service stopped here, it deletes
// everything of a deleted service (and ends: true).
func (j *kubeJanitor) pass() bool {
	d := j.d
	d.mu.RLock()
	stopped, applied := d.stopped, d.applied
	live := map[*serving.Pool]bool{}
	for _, r := range d.revs {
		live[r.pool] = true
	}
	d.mu.RUnlock()
	ctx := context.Background()
	if stopped {
		j.stopped(ctx)
		return true
	}
	for _, name := range j.sv.Deployments(d.workspace, d.name) {
		j.mu.Lock()
		kr := j.revs[name]
		keep := false
		switch {
		case kr == nil:
			keep = applied == nil // a previous server's, until this one applied the service once
		case kr.pool != nil && live[kr.pool]:
			keep = true
		case kr.applied == applied:
			keep = true // starting
		case kr.pods != nil && kr.pods.Claimed() > 0:
			keep = true // retired: its pool answers its last requests
		}
		if !keep {
			delete(j.revs, name)
		}
		j.mu.Unlock()
		if !keep {
			if err := j.sv.DeleteDeployment(ctx, name); err != nil {
				d.log.printf("%v", err)
			} else {
				d.log.printf("Deployment %s deleted: no revision of the service uses it", name)
			}
		}
	}
	j.mu.Lock()
	renew := !j.tokenAt.IsZero() && j.s.now().Sub(j.tokenAt) > servicePullRenew && applied != nil
	j.mu.Unlock()
	if !renew && applied != nil && j.pullRevoked(ctx) {
		d.log.printf("the image pull credential was revoked (another server started): replacing it")
		renew = true
	}
	if renew {
		j.renew(ctx, applied)
	}
	return false
}

// renew replaces the service's image pull credential before it expires.
func (j *kubeJanitor) renew(ctx context.Context, svc *atelier.WebService) {
	if len(svc.Images) == 0 {
		return
	}
	ref, ok, err := j.s.images.ResolveWorkspaceImage(ctx, svc.Workspace, svc.Images[0].Image)
	if err != nil || !ok {
		return
	}
	pull, tok, err := j.s.servicePull(ctx, svc, ref)
	if err != nil {
		j.d.log.printf("renewing the image pull credential: %v", err)
		return
	}
	if err := j.sv.SetPull(ctx, svc.Workspace, svc.Name, pull); err != nil {
		j.d.log.printf("renewing the image pull credential: %v", err)
		return
	}
	j.mu.Lock()
	old := j.tokenIDs
	j.tokenIDs, j.tokenAt, j.hash = []string{tok.ID}, j.s.now(), tok.Hash
	j.mu.Unlock()
	j.revoke(old)
}

func (j *kubeJanitor) revoke(ids []string) {
	for _, id := range ids {
		j.s.accounts.revokeToken(context.Background(), id)
	}
}

// stopped: the service stopped on this server. Deleted, its objects go once its pools
// closed; otherwise (the server stops) they stay for the next server to adopt.
func (j *kubeJanitor) stopped(ctx context.Context) {
	d := j.d
	_, err := j.s.store.FindWebService(ctx, d.workspace, d.name)
	if atelier.ErrorCode(err) != atelier.ENOTFOUND {
		return
	}
	deadline := time.After(30 * time.Second)
	for {
		changed := j.sv.Changed()
		busy := 0
		j.mu.Lock()
		for _, kr := range j.revs {
			if kr.pods != nil {
				busy += kr.pods.Claimed()
			}
		}
		j.mu.Unlock()
		if busy == 0 {
			break
		}
		select {
		case <-changed:
		case <-time.After(100 * time.Millisecond): // a closing pool releases its pods: no change in the cluster
		case <-deadline:
			busy = 0
		}
		if busy == 0 {
			break
		}
	}
	<-d.shipped // the pods' last model data pulled (kubemodeldata.go)
	if err := j.sv.DeleteService(ctx, d.workspace, d.name); err != nil {
		j.s.log.Warn("deleting a web service's kubernetes objects", "workspace", d.workspace, "service", d.name, "err", err)
	} else {
		j.s.log.Info("web service's kubernetes objects deleted", "workspace", d.workspace, "service", d.name)
	}
	j.mu.Lock()
	ids := j.tokenIDs
	j.tokenIDs = nil
	j.mu.Unlock()
	j.revoke(ids)
}
