package service

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/serving"
)

// DefaultReplicaStartTimeout bounds a replica's start: unpacking aside, its score.py's init().
const DefaultReplicaStartTimeout = 10 * time.Minute

// modelDataIn is where a replica's ModelDataCollector writes (the service's modeldata folder).
const modelDataIn = "/run/modeldata"

// MaxScoringBody is the largest scoring request body the gateway passes on.
const MaxScoringBody = 100 << 20

// deployments are the web services this server runs (it holds their leases).
type deployments struct {
	mu      sync.Mutex
	running map[string]*deployment // lease id →
	unpack  sync.Mutex             // one image unpacked at a time; guards rootfs
	// rootfs counts the pools running each unpacked image (its directory →): the last one to
	// close removes it.
	rootfs  map[string]int
	imports serving.Imports // what the replicas' init() import, by image digest
	// leftoversAt is when the controller last looked for what deleted services left (see
	// collectLeftovers); only its goroutine uses it. sweeping is set while the targets are
	// asked (sweeps waits for that at stop).
	leftoversAt time.Time
	sweeping    atomic.Bool
	sweeps      sync.WaitGroup
}

// deployment is a web service running here: one pool of replicas per image it serves.
type deployment struct {
	s         *WebServices
	workspace string
	name      string
	log       *serviceLog
	metrics   *serviceMetrics
	cancel    context.CancelFunc
	done      chan struct{}
	shipped   chan struct{}            // closed when the model data shipper stopped
	want      chan *atelier.WebService // the newest wanted state (capacity 1)

	mu      sync.RWMutex
	applied *atelier.WebService
	revs    []*revision
	events  []atelier.ServiceEvent // the last maxServiceEvents
	keys    atelier.ServiceKeys
	state   atelier.WebServiceState
	stopped bool
}

// revision is one image of a service, with its share of the traffic.
type revision struct {
	image   atelier.ServiceImage
	cfg     atelier.WebServiceConfig
	pool    *serving.Pool
	percent int
}

func (s *WebServices) deployment(id string) *deployment {
	s.deploys.mu.Lock()
	defer s.deploys.mu.Unlock()
	return s.deploys.running[id]
}

// reconcileServices starts the services nobody runs (taking their leases), applies changes to
// those this server runs, and stops those deleted.
func (s *WebServices) reconcileServices(ctx context.Context) {
	if len(s.serviceTargets()) == 0 || ctx.Err() != nil {
		return
	}
	svcs, err := s.store.ListWebServices(ctx, "")
	if err != nil {
		s.log.Error("listing web services", "err", err)
		return
	}
	leases, err := s.store.ListLeases(ctx, atelier.LeaseKindService)
	if err != nil {
		s.log.Error("listing web service leases", "err", err)
		return
	}
	held := map[string]*atelier.Lease{}
	for _, l := range leases {
		held[l.ID] = l
	}
	s.collectLeftovers(ctx, svcs)
	now := s.now()
	seen := map[string]bool{}
	for _, svc := range svcs {
		id := atelier.ServiceLeaseID(svc.Workspace, svc.Name)
		seen[id] = true
		if d := s.deployment(id); d != nil {
			d.offer(svc)
			continue
		}
		l := held[id]
		if l == nil {
			l = &atelier.Lease{Kind: atelier.LeaseKindService, ID: id, Workspace: svc.Workspace}
		} else if !s.takeable(l, now) {
			continue // another server runs it
		}
		if _, err := s.takeLease(ctx, l, now); err != nil {
			continue
		}
		s.startDeployment(ctx, svc)
	}
	s.deploys.mu.Lock()
	var gone []string
	for id := range s.deploys.running {
		if !seen[id] {
			gone = append(gone, id)
		}
	}
	s.deploys.mu.Unlock()
	for _, id := range gone {
		s.stopDeployment(ctx, id)
	}
}

func (s *WebServices) startDeployment(ctx context.Context, svc *atelier.WebService) {
	id := atelier.ServiceLeaseID(svc.Workspace, svc.Name)
	dctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	d := &deployment{s: s, workspace: svc.Workspace, name: svc.Name, cancel: cancel, done: make(chan struct{}), metrics: newServiceMetrics(),
		want: make(chan *atelier.WebService, 1), state: atelier.ServiceTransitioning}
	var err error
	if d.log, err = openServiceLog(s.serviceDir(svc.Workspace, svc.Name)); err != nil {
		s.log.Error("opening a web service's log", "service", id, "err", err)
		cancel()
		return
	}
	if svc.Config.AuthEnabled {
		if d.keys, err = s.openServiceKeys(dctx, svc.Workspace, svc.Name); err != nil {
			d.log.printf("cannot read the service's keys: %v", err)
		}
	}
	s.deploys.mu.Lock()
	if s.deploys.running == nil {
		s.deploys.running = map[string]*deployment{}
	}
	s.deploys.running[id] = d
	s.deploys.mu.Unlock()
	if svc.Target == "podman" {
		s.removeServiceContainers(svc.Workspace, svc.Name) // left by a server that was killed
	}
	s.log.Info("web service starting", "workspace", svc.Workspace, "service", svc.Name, "images", describeImages(svc.Images))
	d.want <- svc
	d.shipped = make(chan struct{})
	go d.loop(dctx)
	ship := &modelDataShipper{s: s, workspace: svc.Workspace, service: svc.Name,
		dir: filepath.Join(s.serviceDir(svc.Workspace, svc.Name), "modeldata"), sent: map[string]int64{},
		gather: func(ctx context.Context, final bool) { s.gatherKubeModelData(ctx, d, final) }}
	go func() { defer close(d.shipped); ship.loop(dctx) }()
}

// stopDeployment stops a service this server runs and gives its lease up.
func (s *WebServices) stopDeployment(ctx context.Context, id string) {
	s.deploys.mu.Lock()
	d := s.deploys.running[id]
	delete(s.deploys.running, id)
	s.deploys.mu.Unlock()
	if d == nil {
		return
	}
	d.stop()
	s.store.ReleaseLease(context.WithoutCancel(ctx), atelier.LeaseKindService, id, s.owner())
	s.log.Info("web service stopped", "workspace", d.workspace, "service", d.name)
}

// stopDeployments stops every service this server runs (it stops); their leases stay, so this
// server (or another) starts them again.
func (s *WebServices) stopDeployments() {
	s.deploys.mu.Lock()
	list := make([]*deployment, 0, len(s.deploys.running))
	for _, d := range s.deploys.running {
		list = append(list, d)
	}
	s.deploys.running = nil
	s.deploys.mu.Unlock()
	s.deploys.sweeps.Wait()
	var wg sync.WaitGroup
	for _, d := range list {
		wg.Add(1)
		go func() { defer wg.Done(); d.stop() }()
	}
	wg.Wait()
}

// offer hands the deployment the service's stored state; it applies it if it changed.
func (d *deployment) offer(svc *atelier.WebService) {
	d.mu.RLock()
	same := d.applied != nil && d.applied.UpdatedAt.Equal(svc.UpdatedAt)
	d.mu.RUnlock()
	if same {
		d.refreshState()
		return
	}
	select {
	case <-d.want: // replace an older wanted state not yet taken
	default:
	}
	d.want <- svc
}

func (d *deployment) loop(ctx context.Context) {
	defer close(d.done)
	for {
		select {
		case <-ctx.Done():
			return
		case svc := <-d.want:
			d.mu.RLock()
			same := d.applied != nil && d.applied.UpdatedAt.Equal(svc.UpdatedAt)
			d.mu.RUnlock()
			if !same {
				d.apply(ctx, svc)
			}
		}
	}
}

func (d *deployment) stop() {
	d.mu.Lock()
	d.stopped = true
	revs := d.revs
	d.revs = nil
	d.mu.Unlock()
	d.cancel()
	<-d.done
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, r := range revs {
		r.pool.Close(ctx)
	}
	<-d.shipped // the model data of the last requests
	d.log.printf("service stopped on this server")
	d.log.close()
}

func (d *deployment) setKeys(k atelier.ServiceKeys) {
	d.mu.Lock()
	d.keys = k
	d.mu.Unlock()
}

// apply brings the running replicas to svc: pools for new images (or a changed
// configuration) start and become ready before traffic moves to them; pools no longer wanted
// are drained and stopped. When a new pool cannot start, the old ones keep serving.
func (d *deployment) apply(ctx context.Context, svc *atelier.WebService) {
	s := d.s
	d.log.printf("applying: images %s, target %s, %s", describeImages(svc.Images), svc.Target, describeScale(svc.Config))
	if svc.Config.AuthEnabled {
		if k, err := s.openServiceKeys(ctx, svc.Workspace, svc.Name); err == nil {
			d.setKeys(k)
		}
	}
	d.mu.RLock()
	old := d.revs
	d.mu.RUnlock()
	var next, started []*revision
	var failure error
	for _, si := range svc.Images {
		var r *revision
		for _, o := range old {
			if o.image.Image == si.Image && o.cfg == svc.Config {
				r = &revision{image: si, cfg: o.cfg, pool: o.pool, percent: si.Percent}
			}
		}
		if r == nil {
			pool, err := s.startPool(ctx, d, svc, si)
			if err != nil {
				failure = fmt.Errorf("image %s: %w", si.Image, err)
				break
			}
			r = &revision{image: si, cfg: svc.Config, pool: pool, percent: si.Percent}
			started = append(started, r)
		}
		next = append(next, r)
	}
	if ctx.Err() != nil {
		closePools(started)
		return
	}
	if failure != nil {
		closePools(started)
		msg := failure.Error()
		if len(old) > 0 {
			msg += "; the service still serves " + describeRevisions(old)
		}
		d.log.printf("deployment failed: %s", msg)
		s.log.Warn("web service deployment failed", "workspace", svc.Workspace, "service", svc.Name, "err", failure)
		d.mu.Lock()
		d.applied = svc
		d.state = atelier.ServiceFailed
		d.mu.Unlock()
		svc.State, svc.Error = atelier.ServiceFailed, msg
		s.store.SetWebServiceState(context.WithoutCancel(ctx), svc.Workspace, svc.Name, svc.State, msg)
		s.serviceChanged(ctx, svc, "failed")
		return
	}
	d.mu.Lock()
	d.revs = next
	d.applied = svc
	d.state = atelier.ServiceHealthy
	d.mu.Unlock()
	var retired []*revision
	for _, o := range old {
		kept := false
		for _, n := range next {
			kept = kept || n.pool == o.pool
		}
		if !kept {
			retired = append(retired, o)
		}
	}
	if len(retired) > 0 {
		d.log.printf("traffic moved to %s; stopping %s once its requests are answered", describeRevisions(next), describeRevisions(retired))
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Duration(svc.Config.ScoringTimeoutMs)*time.Millisecond+5*time.Second)
		for _, r := range retired {
			r.pool.Close(closeCtx)
		}
		cancel()
	}
	d.log.printf("service healthy: serving %s", describeRevisions(next))
	s.log.Info("web service deployed", "workspace", svc.Workspace, "service", svc.Name, "images", describeRevisions(next))
	svc.State, svc.Error = atelier.ServiceHealthy, ""
	s.store.SetWebServiceState(context.WithoutCancel(ctx), svc.Workspace, svc.Name, svc.State, "")
	s.serviceChanged(ctx, svc, "serving "+describeRevisions(next))
}

func closePools(revs []*revision) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, r := range revs {
		r.pool.Close(ctx)
	}
}

func describeRevisions(revs []*revision) string {
	images := make([]atelier.ServiceImage, len(revs))
	for i, r := range revs {
		images[i] = atelier.ServiceImage{Image: r.image.Image, Percent: r.percent}
	}
	return describeImages(images)
}

func describeScale(c atelier.WebServiceConfig) string {
	if c.AutoscaleEnabled {
		return fmt.Sprintf("autoscale %d-%d replicas at %d%% utilization", c.MinReplicas, c.MaxReplicas, c.TargetUtilization)
	}
	return fmt.Sprintf("%d replicas", c.Replicas)
}

// refreshState records Unhealthy when a running service's replicas fail, Healthy when they
// recover.
func (d *deployment) refreshState() {
	d.mu.RLock()
	state, applied, revs := d.state, d.applied, d.revs
	d.mu.RUnlock()
	if applied == nil || state == atelier.ServiceFailed || state == atelier.ServiceTransitioning {
		return
	}
	next, msg := atelier.ServiceHealthy, ""
	for _, r := range revs {
		st := r.pool.Stats()
		if st.Failing || st.Desired > 0 && st.Ready == 0 && st.LastError != "" {
			next, msg = atelier.ServiceUnhealthy, fmt.Sprintf("image %s: %s", r.image.Image, st.LastError)
		}
	}
	if next == state {
		return
	}
	d.mu.Lock()
	d.state = next
	d.mu.Unlock()
	ctx := context.Background()
	d.s.store.SetWebServiceState(ctx, d.workspace, d.name, next, msg)
	svc := *applied
	svc.State, svc.Error = next, msg
	d.s.serviceChanged(ctx, &svc, string(next))
}

// maxServiceEvents is how many events a service shows.
const maxServiceEvents = 20

// event keeps a replica or scale event for 'service show'; a scale decision also becomes the
// message of the service's activity.
func (d *deployment) event(e atelier.ServiceEvent) {
	d.mu.Lock()
	d.events = append(d.events, e)
	if len(d.events) > maxServiceEvents {
		d.events = d.events[len(d.events)-maxServiceEvents:]
	}
	applied, state := d.applied, d.state
	d.mu.Unlock()
	if e.Kind == "scale" && applied != nil {
		svc := *applied
		svc.State = state
		d.s.serviceChanged(context.Background(), &svc, e.Message)
	}
}

func (d *deployment) recentEvents() []atelier.ServiceEvent {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return slices.Clone(d.events)
}

func (d *deployment) counts() atelier.ReplicaCounts {
	d.mu.RLock()
	defer d.mu.RUnlock()
	var c atelier.ReplicaCounts
	for _, r := range d.revs {
		st := r.pool.Stats()
		c.Desired += st.Desired
		c.Ready += st.Ready
		c.Busy += st.Busy
		c.Queued += st.Queued
	}
	return c
}

// startPool unpacks the image (once per digest) and starts a pool of its replicas, returning
// once the replicas the service starts with are ready (or failed to start).
func (s *WebServices) startPool(ctx context.Context, d *deployment, svc *atelier.WebService, si atelier.ServiceImage) (*serving.Pool, error) {
	if !builtInServiceTarget(svc.Target) {
		return s.startKubePool(ctx, d, svc, si) // a kubernetes compute target (kubeservice.go)
	}
	ref := si.Ref()
	img, err := s.store.FindImage(ctx, svc.Workspace, ref)
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	launch, err := s.replicaLauncher(ctx, svc, si, img)
	if err != nil {
		return nil, err
	}
	d.log.printf("image %s (%s) ready to run on %s in %s", si.Image, img.Digest, svc.Target, time.Since(t0).Round(time.Millisecond))
	release := func() {}
	if svc.Target == "local" {
		release = func() { s.releaseRootfs(s.rootfsDir(img.Digest)) }
	}
	pool, err := s.runPool(ctx, d, svc, si, img, launch)
	if err != nil {
		release()
		return nil, err
	}
	pool.OnClose(release)
	return pool, nil
}

// runPool starts the pool of an image readied to run (see startPool).
func (s *WebServices) runPool(ctx context.Context, d *deployment, svc *atelier.WebService, si atelier.ServiceImage, img *atelier.Image, launch launcher) (*serving.Pool, error) {
	modelData := filepath.Join(s.serviceDir(svc.Workspace, svc.Name), "modeldata")
	if err := os.MkdirAll(modelData, 0o755); err != nil {
		return nil, err
	}
	c := svc.Config
	cfg := serving.Config{Replicas: c.Replicas, Autoscale: c.AutoscaleEnabled, Min: c.MinReplicas, Max: c.MaxReplicas,
		TargetUtilization: c.TargetUtilization, Refresh: time.Duration(c.RefreshSeconds) * time.Second,
		ScaleDownDelay: time.Duration(c.ScaleDownDelaySeconds) * time.Second, MaxConcurrent: c.MaxConcurrentRequestsPerReplica,
		MaxWait: time.Duration(c.MaxRequestWaitMs) * time.Millisecond, Timeout: time.Duration(c.ScoringTimeoutMs) * time.Millisecond}
	env := []string{"ATELIER_SCORE_SOCKET=" + serving.SocketIn, "ATELIER_SERVICE_NAME=" + svc.Name,
		"ATELIER_WORKSPACE=" + svc.Workspace, "ATELIER_ACCESS_LOG=0", "ATELIER_MODEL_DATA_DIR=" + modelDataIn}
	if !c.CollectModelData {
		env[len(env)-1] = "ATELIER_MODEL_DATA_DIR="
	}
	// On the local target the replicas are forks of a template that imported score.py once
	// (serving.Template): a replica's cold start is its init(), not a Python start importing
	// scikit-learn. Other targets start each replica's process (container) from scratch.
	var template *serving.Template
	if svc.Target == "local" && c.ReplicaStart != atelier.ReplicaProcess {
		template = serving.NewTemplate(func(sockDir string) *exec.Cmd {
			cmd, _ := launch(-1, sockDir, modelData, append(slices.Clone(env), "ATELIER_TEMPLATE_SOCKET="+serving.TemplateSocketIn))
			return cmd
		}, d.log.prefixed(si.Image+" template: "), &s.deploys.imports, img.Digest)
	}
	start := func(ctx context.Context, n int) (serving.Replica, error) {
		ctx, cancel := context.WithTimeout(ctx, DefaultReplicaStartTimeout)
		defer cancel()
		if template != nil {
			return template.Start(ctx, n, d.log.prefixed(fmt.Sprintf("%s replica %d: ", si.Image, n)))
		}
		sockDir, err := os.MkdirTemp("", "atelier-replica-")
		if err != nil {
			return nil, err
		}
		cmd, stop := launch(n, sockDir, modelData, env)
		r, err := serving.StartProcess(ctx, cmd, serving.HostSocket(sockDir), d.log.prefixed(fmt.Sprintf("%s replica %d: ", si.Image, n)))
		if err != nil {
			if stop != nil {
				stop()
			}
			os.RemoveAll(sockDir)
			return nil, err
		}
		if stop != nil {
			r = &cleanedReplica{Replica: r, cleanup: stop}
		}
		go func() { <-r.Done(); os.RemoveAll(sockDir) }()
		return r, nil
	}
	pool := serving.NewPool(cfg, s.CPUShare.Start(start), s.now, func(e serving.Event) {
		d.metrics.event(e.Kind, e.Message)
		d.log.printf("%s: %s", si.Image, e.Message)
		d.event(atelier.ServiceEvent{Time: s.now().UTC(), Kind: e.Kind, Message: si.Image + ": " + e.Message})
	})
	if template != nil {
		pool.OnClose(template.Close)
	}
	want := 1
	if !c.AutoscaleEnabled {
		want = c.Replicas
	} else if c.MinReplicas == 0 {
		want = 0
	} else {
		want = c.MinReplicas
	}
	if err := pool.WaitReady(ctx, want); err != nil {
		pool.Close(context.Background())
		return nil, err
	}
	return pool, nil
}

// launcher makes the command of replica n of an image on a target: its scoring runtime
// listening on serving.SocketIn inside sockDir, model data in modelData, with env; stop (nil
// for none) removes what the command leaves behind once it exited.
type launcher func(n int, sockDir, modelData string, env []string) (cmd *exec.Cmd, stop func())

// replicaLauncher readies an image to run on the service's target: unpacked for local, loaded
// into podman's storage for podman.
func (s *WebServices) replicaLauncher(ctx context.Context, svc *atelier.WebService, si atelier.ServiceImage, img *atelier.Image) (launcher, error) {
	ref := si.Ref()
	switch svc.Target {
	case "podman":
		name, rt, err := s.podmanImage(ctx, svc.Workspace, ref, img)
		if err != nil {
			return nil, err
		}
		return func(n int, sockDir, modelData string, env []string) (*exec.Cmd, func()) {
			return s.podmanReplica(svc, name, rt, n, sockDir, modelData, env)
		}, nil
	default:
		rootfs := s.rootfsDir(img.Digest)
		s.deploys.unpack.Lock()
		rt, err := s.images.Builder.Unpack(ctx, svc.Workspace, ref, rootfs)
		if err == nil {
			if s.deploys.rootfs == nil {
				s.deploys.rootfs = map[string]int{}
			}
			s.deploys.rootfs[rootfs]++
		}
		s.deploys.unpack.Unlock()
		if err != nil {
			return nil, fmt.Errorf("unpacking the image: %w", err)
		}
		return func(n int, sockDir, modelData string, env []string) (*exec.Cmd, func()) {
			return serving.BwrapCommand(s.Bwrap, rootfs, rt.Entrypoint, rt.Env, rt.WorkingDir, sockDir,
				map[string]string{modelData: modelDataIn}, env), nil
		}, nil
	}
}

// rootfsDir is where the local target unpacks an image (by layer: see build.UnpackImage).
func (s *WebServices) rootfsDir(digest string) string {
	return filepath.Join(s.DataDir, "services", "rootfs", strings.TrimPrefix(digest, "sha256:"))
}

// releaseRootfs ends a pool's use of an unpacked image; the last pool removes its directory
// and the cached layers no other image uses, so a server keeps only the images it runs.
func (s *WebServices) releaseRootfs(dir string) {
	s.deploys.unpack.Lock()
	defer s.deploys.unpack.Unlock()
	if s.deploys.rootfs[dir]--; s.deploys.rootfs[dir] > 0 {
		return
	}
	delete(s.deploys.rootfs, dir)
	if err := s.images.Builder.RemoveUnpacked(dir); err != nil {
		s.log.Error("removing an unpacked image no service runs", "dir", dir, "err", err)
	}
}

// cleanedReplica is a replica whose target leaves something to remove once it stopped.
type cleanedReplica struct {
	serving.Replica
	cleanup func()
	once    sync.Once
}

func (r *cleanedReplica) Stop() {
	r.Replica.Stop()
	r.once.Do(r.cleanup)
}

// ScoringRequest is what the gateway knows of a request to a service.
type ScoringRequest struct {
	Workspace, Name string
	// Path is the replica's path: /score, /swagger.json, /v2/..., /invocations.
	Path string
	// Authenticate finds the caller of a request with a workspace token (for services with
	// token auth).
	Authenticate func() (*atelier.Principal, error)
}

// ServeScoring is the gateway: it authenticates a scoring request with the service's keys (or
// a workspace token, or nothing, as the service says), hands it to a replica of one of the
// service's images (by their traffic shares) and writes the answer.
func (s *WebServices) ServeScoring(w http.ResponseWriter, r *http.Request, req ScoringRequest) {
	t0 := time.Now()
	reqID := r.Header.Get("X-Ms-Request-Id")
	if reqID == "" {
		reqID = newRequestID()
		r.Header["X-Ms-Request-Id"] = []string{reqID}
		if r.Header.Get("X-Request-Id") == "" {
			// As Microsoft's server does for a request without ids (x-request-id a new
			// UUID, x-ms-request-id the same): the replica need not make another.
			r.Header["X-Request-Id"] = []string{reqID}
		}
	}
	w.Header()["X-Ms-Request-Id"] = []string{reqID}
	d := s.deployment(atelier.ServiceLeaseID(req.Workspace, req.Name))
	if d == nil {
		svc, err := s.store.FindWebService(r.Context(), req.Workspace, req.Name)
		if err != nil {
			scoringError(w, http.StatusNotFound, fmt.Sprintf("web service %q not found in workspace %q", req.Name, req.Workspace))
			return
		}
		w.Header().Set("Retry-After", "1")
		scoringError(w, http.StatusServiceUnavailable, fmt.Sprintf("web service %q is not running on this server (its state: %s)", req.Name, svc.State))
		return
	}
	d.mu.RLock()
	applied, revs, keys := d.applied, d.revs, d.keys
	d.mu.RUnlock()
	if applied == nil {
		w.Header().Set("Retry-After", "1")
		scoringError(w, http.StatusServiceUnavailable, fmt.Sprintf("web service %q is being deployed", req.Name))
		return
	}
	if status, msg := s.authorizeScoring(r, req, applied.Config, keys); status != 0 {
		if status == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Bearer realm="atelier service"`)
		}
		scoringError(w, status, msg)
		d.record(reqID, status, time.Since(t0), -1, r.Method+" "+req.Path)
		return
	}
	if len(revs) == 0 {
		w.Header().Set("Retry-After", "1")
		scoringError(w, http.StatusServiceUnavailable, fmt.Sprintf("web service %q has no replica: %s", req.Name, applied.Error))
		return
	}
	if r.ContentLength > MaxScoringBody {
		scoringError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("the request body is %d bytes; a scoring request may have at most %d", r.ContentLength, MaxScoringBody))
		d.record(reqID, 413, time.Since(t0), -1, r.Method+" "+req.Path)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, MaxScoringBody)
	rev := pickRevision(revs)
	res := rev.pool.Serve(w, r, req.Path)
	for errors.Is(res.Err, serving.ErrClosed) {
		// The revision picked was retired meanwhile (a rolling update moved the traffic, then
		// closed its pool): the request reached no replica, so it goes to what is served now.
		d.mu.RLock()
		now := d.revs
		d.mu.RUnlock()
		if len(now) == 0 || slices.Contains(now, rev) {
			break // the service itself is stopping
		}
		rev = pickRevision(now)
		res = rev.pool.Serve(w, r, req.Path)
	}
	status := res.Status
	if res.Err != nil {
		var mbe *http.MaxBytesError
		switch {
		case errors.As(res.Err, &mbe):
			status = http.StatusRequestEntityTooLarge
			scoringError(w, status, fmt.Sprintf("the request body is larger than %d bytes", MaxScoringBody))
		case errors.Is(res.Err, serving.ErrBusy):
			status = http.StatusServiceUnavailable
			w.Header().Set("Retry-After", rev.pool.RetryAfter())
			scoringError(w, status, fmt.Sprintf("every replica of %q is busy and the request waited %d ms (max_request_wait_time): retry later", req.Name, applied.Config.MaxRequestWaitMs))
		case errors.Is(res.Err, serving.ErrClosed):
			status = http.StatusServiceUnavailable
			w.Header().Set("Retry-After", "1")
			scoringError(w, status, fmt.Sprintf("web service %q is being stopped", req.Name))
		case errors.Is(res.Err, serving.ErrTimeout):
			status = http.StatusGatewayTimeout
			scoringError(w, status, fmt.Sprintf("scoring took longer than %d ms (scoring_timeout_ms): the replica was recycled", applied.Config.ScoringTimeoutMs))
		case errors.Is(res.Err, serving.ErrReplicaLost):
			status = http.StatusBadGateway
			scoringError(w, status, "the replica serving this request exited before answering (see 'atelier service logs "+req.Name+"'); it is being replaced")
		case errors.Is(res.Err, context.Canceled):
			status = 499 // the client left
		default:
			status = http.StatusBadGateway
			scoringError(w, status, res.Err.Error())
		}
	}
	d.record(reqID, status, time.Since(t0), res.Replica, r.Method+" "+req.Path)
}

// record logs a scoring request and counts it.
func (d *deployment) record(reqID string, status int, took time.Duration, replica int, what string) {
	d.log.request(reqID, status, took, replica, what)
	d.metrics.request(status, took)
}

// authorizeScoring checks a scoring request's credentials; it returns 0 when they pass.
func (s *WebServices) authorizeScoring(r *http.Request, req ScoringRequest, cfg atelier.WebServiceConfig, keys atelier.ServiceKeys) (int, string) {
	switch {
	case cfg.AuthEnabled:
		given, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || given == "" {
			return http.StatusUnauthorized, "this service needs a key: send 'Authorization: Bearer KEY' (see 'atelier service keys " + req.Name + "')"
		}
		if keys.Primary == "" || subtle.ConstantTimeCompare([]byte(given), []byte(keys.Primary)) != 1 &&
			subtle.ConstantTimeCompare([]byte(given), []byte(keys.Secondary)) != 1 {
			return http.StatusUnauthorized, "wrong key for this service"
		}
	case cfg.TokenAuthEnabled:
		var p *atelier.Principal
		if r.Header.Get("Authorization") != "" && req.Authenticate != nil {
			p, _ = req.Authenticate()
		}
		if p == nil {
			return http.StatusUnauthorized, "this service needs a workspace token: send 'Authorization: Bearer TOKEN' (see 'atelier token create')"
		}
		ctx := atelier.NewContextWithPrincipal(r.Context(), p)
		if _, err := s.role(ctx, req.Workspace); err != nil {
			return http.StatusForbidden, "this token may not use services of workspace " + strconv.Quote(req.Workspace)
		}
	}
	return 0, ""
}

func pickRevision(revs []*revision) *revision {
	if len(revs) == 1 {
		return revs[0]
	}
	n := rand.IntN(100)
	for _, r := range revs {
		if n < r.percent {
			return r
		}
		n -= r.percent
	}
	return revs[len(revs)-1]
}

func scoringError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	m, _ := json.Marshal(msg)
	fmt.Fprintf(w, "{\"error\": {\"code\": %d, \"message\": %s}}\n", status, m)
}

func newRequestID() string {
	var b [16]byte
	for i := range b {
		b[i] = byte(rand.Uint32())
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	const digits = "0123456789abcdef"
	var id [36]byte
	j := 0
	for i, c := range b {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			id[j] = '-'
			j++
		}
		id[j], id[j+1] = digits[c>>4], digits[c&15]
		j += 2
	}
	return string(id[:])
}
