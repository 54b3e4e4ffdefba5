// Package kubernetes is the driver of kubernetes compute targets: a namespace of a cluster
// reached with a kubeconfig (client-go). Each run is one batch/v1 Job (an Indexed Job of
// node_count pods for a distributed run) whose container runs the in-job runner (`atelier job
// exec`, in the target's image) talking to the server at its advertised URL; the runner's token
// and the run's secrets are in a Secret the pod reads (envFrom), never in the pod spec. The
// driver watches the Jobs and pods it made (one informer per target, with a label selector)
// and answers Status from that cache: it never polls a job. A job's handle names its target,
// namespace, Job name and uid, so a restarted server finds the Job again.
package kubernetes

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/atelier-ml/atelier"
)

var (
	_ atelier.ComputeDriver  = (*Driver)(nil)
	_ atelier.ComputeChecker = (*Driver)(nil)
)

// Labels and annotations of what the driver creates.
const (
	ManagedByLabel = "app.kubernetes.io/managed-by"
	ManagedBy      = "atelier"
	RunLabel       = "atelier.ai/run"
	RunAnnotation  = "atelier.ai/run"
	// WorkspaceAnnotation and TargetAnnotation say whose a Job is.
	WorkspaceAnnotation = "atelier.ai/workspace"
	TargetAnnotation    = "atelier.ai/compute"
	// controllerUIDLabel is the label the Job controller puts on a Job's pods.
	controllerUIDLabel = "batch.kubernetes.io/controller-uid"
	// completionIndexAnnotation is an Indexed Job's pod's index.
	completionIndexAnnotation = "batch.kubernetes.io/job-completion-index"
)

// Container is the name of the runner's container; WorkDir is where it runs (an emptyDir).
const (
	Container = "runner"
	WorkDir   = "/atelier"
	// MasterPort is MASTER_PORT of a distributed run (unless the driver's MasterPort says
	// otherwise); node 0's runner listens on the next port for the other nodes' runners.
	MasterPort = 29500
	// GPUResource is the extended resource a run's gpus ask for.
	GPUResource = "nvidia.com/gpu"
	// TerminationGrace is how long a deleted (canceled) pod's runner has to stop its script and
	// record the run's end before the kubelet kills it.
	TerminationGrace = 60
)

// PullImage is where a workspace image is pulled from: Reference (the workspace registry's
// advertised host, the image's repository and its version or digest), Registry (that host, as
// a docker config's key) and a credential that can only pull it (Password a token that expires;
// Username may be anything the registry accepts).
type PullImage struct {
	Reference string
	Registry  string
	// Username and Password log the node in; with no Password the run's script token is the
	// credential (user "run"): it pulls from its own workspace's registry while the run is
	// active and is revoked with it.
	Username, Password string
}

// ImageResolver resolves a target's kubernetes.image for a run of workspace: nil (and no
// error) when image names no workspace image (a reference of another registry, used as is).
type ImageResolver func(ctx context.Context, workspace, image string) (*PullImage, error)

// Lookup returns a workspace's stored compute target with its decrypted credentials: Status,
// Cancel, Logs and Release receive only a job's handle and find the target's cluster with it.
type Lookup func(ctx context.Context, workspace, name string) (*atelier.ComputeTarget, atelier.ComputeCredentials, error)

// Driver runs jobs on kubernetes compute targets. It serves every kubernetes target of every
// workspace: a job's handle names its target.
type Driver struct {
	Lookup Lookup
	// Image runs the runner for a target that names none (kubernetes.image); it must hold the
	// atelier binary (Runner) of the server's version and Python.
	Image string
	// Runner is the runner's command in the image ("atelier" when empty: on the image's PATH).
	Runner string
	// Args are added after the runner's own arguments (--cancel-grace, --server-wait).
	Args []string
	// MasterPort is a distributed run's MASTER_PORT, where its rank 0 listens (MasterPort when
	// zero); node 0's runner listens on the next one (ATELIER_CONTROL_PORT) for the others'.
	MasterPort int
	// ResolveImage, when set, is asked about a target's kubernetes.image at each launch: one
	// naming a workspace image (NAME:VERSION of `atelier image`) runs from the workspace
	// registry's reference, pulled with the credential it returns (see PullImage).
	ResolveImage ImageResolver
	// QPS and Burst bound the requests to each cluster (50 and 100 when zero).
	QPS   float32
	Burst int
	// SyncTimeout bounds the wait for a cluster's first list of Jobs and pods (30 s when zero).
	SyncTimeout time.Duration
	Log         *slog.Logger

	requests atomic.Int64
	mu       sync.Mutex
	clusters map[string]*cluster
	closed   bool
}

// New returns the driver of kubernetes targets.
func New(image string, lookup Lookup, args ...string) *Driver {
	return &Driver{Image: image, Lookup: lookup, Args: args}
}

func (d *Driver) log() *slog.Logger {
	if d.Log != nil {
		return d.Log
	}
	return slog.New(slog.DiscardHandler)
}

// Requests is how many HTTP requests the driver sent to apiservers (watches count once).
func (d *Driver) Requests() int64 { return d.requests.Load() }

// handle is what the driver stores of a job.
type handle struct {
	Workspace string `json:"workspace"`
	Target    string `json:"target"`
	Namespace string `json:"namespace"`
	Job       string `json:"job"`
	UID       string `json:"uid"`
}

var (
	k8sName = regexp.MustCompile(`^[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?$`)
	envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	runIDOK = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)
	labelOK = regexp.MustCompile(`^[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$`)
)

func parse(h string) (*handle, error) {
	var j handle
	if err := json.Unmarshal([]byte(h), &j); err != nil || j.Target == "" || !k8sName.MatchString(j.Namespace) ||
		!k8sName.MatchString(j.Job) || j.UID == "" {
		return nil, atelier.Errorf(atelier.EINVALID, "kubernetes job handle %q is not one this driver wrote", h)
	}
	return &j, nil
}

// cluster is a target's client and its informers on the Jobs and pods the driver made in the
// target's namespace.
type cluster struct {
	key       string
	namespace string
	host      string
	client    kubernetes.Interface
	factory   informers.SharedInformerFactory
	jobs      cache.SharedIndexInformer
	pods      cache.SharedIndexInformer
	stop      chan struct{}
	// serving caches web services' Deployments (see Serving); nil until asked for.
	serving *servingCache

	mu         sync.Mutex
	watchErr   error
	watchSince time.Time
	// syncErr is the last wait for the first list that timed out, at syncFailed: the calls
	// of the next SyncTimeout fail at once instead of each waiting again.
	syncErr    error
	syncFailed time.Time
}

// restConfig builds a client configuration from a target's kubeconfig (its kubernetes.context,
// or the current one), or the server's in-cluster one without a kubeconfig.
func (d *Driver) restConfig(t *atelier.ComputeTarget, creds atelier.ComputeCredentials) (*rest.Config, error) {
	var cfg *rest.Config
	if creds.Kubeconfig == "" {
		c, err := rest.InClusterConfig()
		if err != nil {
			return nil, atelier.Errorf(atelier.EINVALID, "compute target %s has no kubeconfig and this server does not run in a cluster (%v): attach it with --kubeconfig", t.Name, err)
		}
		cfg = c
	} else {
		raw, err := clientcmd.Load([]byte(creds.Kubeconfig))
		if err != nil {
			return nil, atelier.Errorf(atelier.EINVALID, "compute target %s: the kubeconfig cannot be read: %v", t.Name, err)
		}
		overrides := &clientcmd.ConfigOverrides{}
		if t.Kubernetes.Context != "" {
			if _, ok := raw.Contexts[t.Kubernetes.Context]; !ok {
				names := []string{}
				for n := range raw.Contexts {
					names = append(names, n)
				}
				sort.Strings(names)
				return nil, atelier.Errorf(atelier.EINVALID, "compute target %s: the kubeconfig has no context %q (it has: %s)", t.Name, t.Kubernetes.Context, strings.Join(names, ", "))
			}
			overrides.CurrentContext = t.Kubernetes.Context
		}
		c, err := clientcmd.NewNonInteractiveClientConfig(*raw, overrides.CurrentContext, overrides, nil).ClientConfig()
		if err != nil {
			return nil, atelier.Errorf(atelier.EINVALID, "compute target %s: the kubeconfig is not usable: %v", t.Name, err)
		}
		cfg = c
	}
	cfg.QPS, cfg.Burst = d.QPS, d.Burst
	if cfg.QPS == 0 {
		cfg.QPS = 50
	}
	if cfg.Burst == 0 {
		cfg.Burst = 100
	}
	cfg.UserAgent = "atelier"
	// No client timeout: it would cut the informers' watches too; requests are bounded by
	// their contexts.
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper { return countingTransport{rt, &d.requests} })
	return cfg, nil
}

type countingTransport struct {
	base http.RoundTripper
	n    *atomic.Int64
}

func (c countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.base.RoundTrip(r)
}

// clusterFor returns the cluster of a target, making its client and starting its informers
// the first time (and again when the target's configuration or kubeconfig changed).
func (d *Driver) clusterFor(t *atelier.ComputeTarget, creds atelier.ComputeCredentials) (*cluster, error) {
	sum := sha256.Sum256([]byte(t.Workspace + "\x00" + t.Name + "\x00" + t.Kubernetes.Namespace + "\x00" + t.Kubernetes.Context + "\x00" + creds.Kubeconfig))
	key := hex.EncodeToString(sum[:])
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, atelier.Errorf(atelier.EUNAVAILABLE, "the kubernetes driver is closed")
	}
	if c := d.clusters[key]; c != nil {
		return c, nil
	}
	cfg, err := d.restConfig(t, creds)
	if err != nil {
		return nil, err
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, atelier.Errorf(atelier.EINVALID, "compute target %s: %v", t.Name, err)
	}
	c := &cluster{key: key, namespace: t.Kubernetes.Namespace, host: cfg.Host, client: client, stop: make(chan struct{})}
	c.factory = informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithNamespace(c.namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = ManagedByLabel + "=" + ManagedBy }),
		informers.WithTransform(func(obj any) (any, error) {
			if m, ok := obj.(metav1.Object); ok {
				m.SetManagedFields(nil) // not needed, and most of an object's size
			}
			return obj, nil
		}))
	c.jobs = c.factory.Batch().V1().Jobs().Informer()
	c.pods = c.factory.Core().V1().Pods().Informer()
	c.pods.AddIndexers(cache.Indexers{"job": func(obj any) ([]string, error) {
		if p, ok := obj.(*corev1.Pod); ok && p.Labels[controllerUIDLabel] != "" {
			return []string{p.Labels[controllerUIDLabel]}, nil
		}
		return nil, nil
	}})
	for _, inf := range []cache.SharedIndexInformer{c.jobs, c.pods} {
		inf.SetWatchErrorHandlerWithContext(func(_ context.Context, _ *cache.Reflector, err error) {
			c.mu.Lock()
			if c.watchErr == nil {
				c.watchSince = time.Now()
			}
			c.watchErr = err
			c.mu.Unlock()
		})
		inf.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: func(any) { c.watchOK() }, UpdateFunc: func(any, any) { c.watchOK() }})
	}
	c.factory.Start(c.stop)
	if d.clusters == nil {
		d.clusters = map[string]*cluster{}
	}
	d.clusters[key] = c
	return c, nil
}

func (c *cluster) watchOK() {
	c.mu.Lock()
	c.watchErr = nil
	c.mu.Unlock()
}

// RequestTimeout bounds the requests of a Launch, Cancel or Release.
const RequestTimeout = time.Minute

// UnreachableAfter is how long a target's watch may fail before the driver stops answering
// from its cache (Status returns EUNAVAILABLE, and the server asks again later).
const UnreachableAfter = 2 * time.Minute

// synced waits for the cluster's informers to have listed once, and says when its watch has
// been failing long enough that the cache cannot be trusted.
func (d *Driver) synced(ctx context.Context, c *cluster, target string) error {
	timeout := d.SyncTimeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	if !c.jobs.HasSynced() || !c.pods.HasSynced() {
		c.mu.Lock()
		recent := c.syncErr
		if time.Since(c.syncFailed) >= timeout {
			recent = nil
		}
		c.mu.Unlock()
		if recent != nil {
			return recent
		}
		wctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		if !cache.WaitForCacheSync(wctx.Done(), c.jobs.HasSynced, c.pods.HasSynced) {
			c.mu.Lock()
			err := atelier.Errorf(atelier.EUNAVAILABLE, "compute target %s: cannot list the Jobs of namespace %s at %s: %v", target, c.namespace, c.host, c.watchErr)
			c.syncErr, c.syncFailed = err, time.Now()
			c.mu.Unlock()
			return err
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.watchErr != nil && time.Since(c.watchSince) > UnreachableAfter {
		return atelier.Errorf(atelier.EUNAVAILABLE, "compute target %s: watching namespace %s at %s fails since %s: %v",
			target, c.namespace, c.host, c.watchSince.UTC().Format(time.RFC3339), c.watchErr)
	}
	return nil
}

// Close stops the informers of every cluster.
func (d *Driver) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closed = true
	for _, c := range d.clusters {
		close(c.stop)
		c.factory.Shutdown()
	}
	d.clusters = nil
	return nil
}

// connect finds a handle's cluster again, or says why the job is gone (the target detached,
// or now naming another namespace).
func (d *Driver) connect(ctx context.Context, j *handle) (c *cluster, gone string, err error) {
	if d.Lookup == nil {
		return nil, "", atelier.Errorf(atelier.EUNAVAILABLE, "the kubernetes driver has no way to find compute targets")
	}
	t, creds, err := d.Lookup(ctx, j.Workspace, j.Target)
	if atelier.ErrorCode(err) == atelier.ENOTFOUND {
		return nil, fmt.Sprintf("the compute target %s of workspace %s was detached", j.Target, j.Workspace), nil
	} else if err != nil {
		return nil, "", err
	}
	if t.Kubernetes == nil || t.Kubernetes.Namespace != j.Namespace {
		return nil, fmt.Sprintf("the compute target %s no longer names namespace %s", j.Target, j.Namespace), nil
	}
	c, err = d.clusterFor(t, creds)
	return c, "", err
}

// job returns the handle's Job: from the cache, or (missed by the cache, just created) from
// the apiserver; nil when it does not exist, or another Job of that name replaced it.
func (d *Driver) job(ctx context.Context, c *cluster, j *handle) (*batchv1.Job, error) {
	if err := d.synced(ctx, c, j.Target); err != nil {
		return nil, err
	}
	obj, ok, _ := c.jobs.GetStore().GetByKey(j.Namespace + "/" + j.Job)
	var job *batchv1.Job
	if ok {
		job = obj.(*batchv1.Job)
	} else {
		got, err := c.client.BatchV1().Jobs(j.Namespace).Get(ctx, j.Job, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil, nil
		} else if err != nil {
			return nil, d.apiError(j.Target, "reading Job "+j.Job, err)
		}
		job = got
	}
	if string(job.UID) != j.UID {
		return nil, nil
	}
	return job, nil
}

// podsOf are the pods of a Job in the cache, by index (rank) then creation.
func (c *cluster) podsOf(uid types.UID) []*corev1.Pod {
	objs, _ := c.pods.GetIndexer().ByIndex("job", string(uid))
	pods := make([]*corev1.Pod, 0, len(objs))
	for _, o := range objs {
		pods = append(pods, o.(*corev1.Pod))
	}
	sort.Slice(pods, func(a, b int) bool {
		ia, ib := pods[a].Annotations[completionIndexAnnotation], pods[b].Annotations[completionIndexAnnotation]
		if ia != ib {
			na, _ := strconv.Atoi(ia)
			nb, _ := strconv.Atoi(ib)
			return na < nb
		}
		return pods[a].CreationTimestamp.Before(&pods[b].CreationTimestamp)
	})
	return pods
}

func condition(job *batchv1.Job, t batchv1.JobConditionType) *batchv1.JobCondition {
	for i := range job.Status.Conditions {
		if c := &job.Status.Conditions[i]; c.Type == t && c.Status == corev1.ConditionTrue {
			return c
		}
	}
	return nil
}

// Status says what became of a job, from the cache of the target's watch: a Job whose pods
// wait for a node is Running and Queued (the scheduler's reason in the Detail); one whose pods
// run is Running; a Complete Job is Exited 0; a Failed one Exited with its first failed pod's
// exit code (the runner's), or Gone with Kubernetes' reason when no container exited (a
// deadline, an eviction). A Job deleted (not by Cancel), replaced, or whose target was
// detached is Gone.
func (d *Driver) Status(ctx context.Context, h string) (atelier.JobState, error) {
	j, err := parse(h)
	if err != nil {
		return atelier.JobState{}, err
	}
	c, gone, err := d.connect(ctx, j)
	if err != nil {
		return atelier.JobState{}, err
	} else if gone != "" {
		return atelier.JobState{Phase: atelier.JobGone, Detail: gone}, nil
	}
	job, err := d.job(ctx, c, j)
	if err != nil {
		return atelier.JobState{}, err
	}
	if job == nil {
		return atelier.JobState{Phase: atelier.JobGone, Detail: fmt.Sprintf("the Kubernetes Job %s/%s (uid %s) no longer exists: it was deleted outside atelier, or its namespace was",
			j.Namespace, j.Job, j.UID)}, nil
	}
	pods := c.podsOf(job.UID)
	if condition(job, batchv1.JobComplete) != nil {
		return atelier.JobState{Phase: atelier.JobExited, ExitCode: 0}, nil
	}
	if cond := condition(job, batchv1.JobFailed); cond != nil {
		for _, p := range pods {
			for _, cs := range p.Status.ContainerStatuses {
				if cs.Name == Container && cs.State.Terminated != nil && cs.State.Terminated.ExitCode != 0 {
					return atelier.JobState{Phase: atelier.JobExited, ExitCode: int(cs.State.Terminated.ExitCode)}, nil
				}
			}
		}
		return atelier.JobState{Phase: atelier.JobGone, Detail: fmt.Sprintf("Kubernetes failed Job %s/%s: %s: %s", j.Namespace, j.Job, cond.Reason, cond.Message)}, nil
	}
	if job.DeletionTimestamp != nil {
		if len(pods) == 0 {
			return atelier.JobState{Phase: atelier.JobGone, Detail: fmt.Sprintf("the Kubernetes Job %s/%s is being deleted", j.Namespace, j.Job)}, nil
		}
		return atelier.JobState{Phase: atelier.JobRunning, Detail: fmt.Sprintf("the Kubernetes Job %s/%s is being deleted; its pods are stopping", j.Namespace, j.Job)}, nil
	}
	return podsState(job, pods), nil
}

// podsState is the state of an active Job from its pods.
func podsState(job *batchv1.Job, pods []*corev1.Pod) atelier.JobState {
	if len(pods) == 0 {
		return atelier.JobState{Phase: atelier.JobRunning, Queued: true, Detail: "waiting for the Job controller to create the pod of Job " + job.Name}
	}
	var running []string
	for _, p := range pods {
		switch p.Status.Phase {
		case corev1.PodRunning, corev1.PodSucceeded, corev1.PodFailed:
			running = append(running, p.Name+" on "+p.Spec.NodeName)
			continue
		}
		// Pending: not scheduled yet (waiting for a node), or scheduled and starting.
		for _, cond := range p.Status.Conditions {
			if cond.Type == corev1.PodScheduled && cond.Status == corev1.ConditionFalse {
				msg := cond.Message
				if msg == "" {
					msg = cond.Reason
				}
				return atelier.JobState{Phase: atelier.JobRunning, Queued: true, Detail: "waiting for a node: " + msg + " (pod " + p.Name + ")"}
			}
		}
		if p.Spec.NodeName == "" {
			return atelier.JobState{Phase: atelier.JobRunning, Queued: true, Detail: "waiting for the scheduler (pod " + p.Name + ")"}
		}
		for _, cs := range p.Status.ContainerStatuses {
			if w := cs.State.Waiting; w != nil && w.Reason != "" && w.Reason != "ContainerCreating" {
				detail := fmt.Sprintf("pod %s on %s: %s", p.Name, p.Spec.NodeName, w.Reason)
				if w.Message != "" {
					detail += ": " + w.Message
				}
				return atelier.JobState{Phase: atelier.JobRunning, Queued: true, Detail: detail}
			}
		}
		return atelier.JobState{Phase: atelier.JobRunning, Queued: true, Detail: "pod " + p.Name + " is starting on " + p.Spec.NodeName}
	}
	return atelier.JobState{Phase: atelier.JobRunning, Detail: "pod " + strings.Join(running, ", pod ")}
}

// Cancel deletes an active Job with foreground propagation: its pods get SIGTERM (the runner
// stops the script and records the run Canceled, within TerminationGrace seconds), and the
// Job goes once they are gone. Canceling an ended or vanished Job is not an error.
func (d *Driver) Cancel(ctx context.Context, h string) error {
	j, err := parse(h)
	if err != nil {
		return err
	}
	c, gone, err := d.connect(ctx, j)
	if err != nil || gone != "" {
		return err
	}
	job, err := d.job(ctx, c, j)
	if err != nil || job == nil || job.DeletionTimestamp != nil ||
		condition(job, batchv1.JobComplete) != nil || condition(job, batchv1.JobFailed) != nil {
		return err
	}
	fg := metav1.DeletePropagationForeground
	uid := types.UID(j.UID)
	ctx, cancel := context.WithTimeout(ctx, RequestTimeout)
	defer cancel()
	err = c.client.BatchV1().Jobs(j.Namespace).Delete(ctx, j.Job, metav1.DeleteOptions{PropagationPolicy: &fg, Preconditions: &metav1.Preconditions{UID: &uid}})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil
	} else if err != nil {
		return d.apiError(j.Target, "deleting Job "+j.Job, err)
	}
	d.log().Info("kubernetes job canceled", "compute", j.Target, "job", j.Job)
	return nil
}

// Logs reads the runner's own output (its container's log) from offset: the first pod's
// (rank 0's), while the cluster keeps it.
func (d *Driver) Logs(ctx context.Context, h string, offset int64) (io.ReadCloser, error) {
	j, err := parse(h)
	if err != nil {
		return nil, err
	}
	if offset < 0 {
		return nil, atelier.Errorf(atelier.EINVALID, "offset %d is negative", offset)
	}
	c, gone, err := d.connect(ctx, j)
	if err != nil {
		return nil, err
	} else if gone != "" {
		return nil, atelier.Errorf(atelier.ENOTFOUND, "%s", gone)
	}
	if err := d.synced(ctx, c, j.Target); err != nil {
		return nil, err
	}
	pods := c.podsOf(types.UID(j.UID))
	if len(pods) == 0 {
		return nil, atelier.Errorf(atelier.ENOTFOUND, "Job %s/%s has no pod (it has not started, or was released)", j.Namespace, j.Job)
	}
	rc, err := c.client.CoreV1().Pods(j.Namespace).GetLogs(pods[0].Name, &corev1.PodLogOptions{Container: Container}).Stream(ctx)
	if err != nil {
		return nil, d.apiError(j.Target, "reading the log of pod "+pods[0].Name, err)
	}
	if _, err := io.CopyN(io.Discard, rc, offset); err != nil && err != io.EOF {
		rc.Close()
		return nil, err
	}
	return rc, nil
}

// Release deletes an ended Job with its pods, Secret and Service (background propagation);
// an active Job is ECONFLICT.
func (d *Driver) Release(ctx context.Context, h string) error {
	j, err := parse(h)
	if err != nil {
		return err
	}
	c, gone, err := d.connect(ctx, j)
	if err != nil || gone != "" {
		return err
	}
	job, err := d.job(ctx, c, j)
	if err != nil || job == nil {
		return err
	}
	if job.DeletionTimestamp == nil && condition(job, batchv1.JobComplete) == nil && condition(job, batchv1.JobFailed) == nil {
		return atelier.Errorf(atelier.ECONFLICT, "Kubernetes Job %s/%s is still active", j.Namespace, j.Job)
	}
	bg := metav1.DeletePropagationBackground
	uid := types.UID(j.UID)
	ctx, cancel := context.WithTimeout(ctx, RequestTimeout)
	defer cancel()
	err = c.client.BatchV1().Jobs(j.Namespace).Delete(ctx, j.Job, metav1.DeleteOptions{PropagationPolicy: &bg, Preconditions: &metav1.Preconditions{UID: &uid}})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return d.apiError(j.Target, "deleting Job "+j.Job, err)
	}
	// The cache learns of the deletion from the watch; until then Status must not say Running.
	c.jobs.GetStore().Delete(job)
	return nil
}

// apiError turns an apiserver's error into atelier's: unreachable is EUNAVAILABLE, a refusal
// EINVALID, each naming the target.
func (d *Driver) apiError(target, what string, err error) error {
	var status apierrors.APIStatus
	switch {
	case apierrors.IsForbidden(err), apierrors.IsUnauthorized(err), apierrors.IsInvalid(err), apierrors.IsBadRequest(err):
		return atelier.Errorf(atelier.EINVALID, "compute target %s: %s: %s", target, what, err.Error())
	case errors.As(err, &status):
		return atelier.Errorf(atelier.EUNAVAILABLE, "compute target %s: %s: %s", target, what, err.Error())
	}
	return atelier.Errorf(atelier.EUNAVAILABLE, "compute target %s: %s: cannot reach the cluster: %v", target, what, err)
}

// jobName is a Job's name for a run: "atelier-" and the run's id (lowercased, '_' as '-',
// shortened), and a random suffix, so a run launched again never meets its old Job's name.
func jobName(runID string) string {
	id := strings.Trim(strings.ReplaceAll(strings.ToLower(runID), "_", "-"), "-")
	if len(id) > 40 {
		id = strings.Trim(id[:40], "-")
	}
	var b [3]byte
	rand.Read(b[:])
	name := "atelier-" + id + "-" + hex.EncodeToString(b[:])
	return strings.ReplaceAll(name, "--", "-")
}

// Launch creates a run's Secret (the runner's and the script's tokens, the run's secrets) and
// its Job, then makes the Job the Secret's owner (the Secret goes with the Job); a distributed
// run also gets a headless Service naming its pods (MASTER_ADDR is rank 0's). A target image
// that ResolveImage resolves to a workspace image also gets a dockerconfigjson Secret
// `<job>-pull` holding the pull credential, the pod's imagePullSecrets, owned by the Job too.
func (d *Driver) Launch(ctx context.Context, l *atelier.JobLaunch) (string, error) {
	t := l.Target
	if t == nil || t.Kubernetes == nil {
		return "", atelier.Errorf(atelier.EINVALID, "the kubernetes driver runs jobs of stored kubernetes compute targets only")
	}
	if !runIDOK.MatchString(l.Run.ID) {
		return "", atelier.Errorf(atelier.EINVALID, "run id %q cannot name a Job", l.Run.ID)
	}
	var config atelier.RunConfig
	if len(l.Run.Config) > 0 {
		if err := json.Unmarshal(l.Run.Config, &config); err != nil {
			return "", atelier.Errorf(atelier.EINVALID, "the run's configuration is unreadable: %v", err)
		}
	}
	image := t.Kubernetes.Image
	if image == "" {
		image = d.Image
	}
	if image == "" {
		return "", atelier.Errorf(atelier.EINVALID, "compute target %s names no image to run the job runner in (kubernetes.image), and the server has no default", t.Name)
	}
	data := map[string][]byte{"ATELIER_TOKEN": []byte(l.Token)}
	if l.ScriptToken != "" {
		data["ATELIER_SCRIPT_TOKEN"] = []byte(l.ScriptToken)
	}
	for name, value := range l.Secrets {
		if !envName.MatchString(name) || strings.ContainsRune(value, 0) {
			return "", atelier.Errorf(atelier.EINVALID, "secret %q cannot be passed in an environment variable", name)
		}
		data["ATELIER_SECRET_"+name] = []byte(value)
	}
	c, err := d.clusterFor(t, l.Credentials)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, RequestTimeout)
	defer cancel()
	var pull *PullImage
	if d.ResolveImage != nil && t.Kubernetes.Image != "" {
		if pull, err = d.ResolveImage(ctx, l.Run.Workspace, t.Kubernetes.Image); err != nil {
			return "", atelier.Errorf(atelier.ErrorCode(err), "compute target %s: kubernetes.image %q: %s", t.Name, t.Kubernetes.Image, atelier.ErrorMessage(err))
		}
		if pull != nil {
			if pull.Reference == "" || pull.Registry == "" || strings.ContainsAny(pull.Reference, " \t\n") {
				return "", atelier.Errorf(atelier.EINTERNAL, "compute target %s: kubernetes.image %q resolved to an unusable reference %q", t.Name, t.Kubernetes.Image, pull.Reference)
			}
			image = pull.Reference
			if pull.Password == "" {
				p := *pull
				p.Username, p.Password = "run", l.ScriptToken
				pull = &p
			}
		}
	}
	ns := t.Kubernetes.Namespace
	name := jobName(l.Run.ID)
	labels := map[string]string{ManagedByLabel: ManagedBy}
	if labelOK.MatchString(l.Run.ID) {
		labels[RunLabel] = l.Run.ID
	}
	annotations := map[string]string{RunAnnotation: l.Run.ID, WorkspaceAnnotation: l.Run.Workspace, TargetAnnotation: t.Name}
	meta := metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels, Annotations: annotations}

	job, err := d.jobSpec(meta, image, l, config)
	if err != nil {
		return "", err
	}
	secrets := []string{name}
	secret := &corev1.Secret{ObjectMeta: meta, Type: corev1.SecretTypeOpaque, Data: data}
	if _, err := c.client.CoreV1().Secrets(ns).Create(ctx, secret, metav1.CreateOptions{}); err != nil {
		return "", d.apiError(t.Name, "creating the run's Secret", err)
	}
	deleteSecrets := func() {
		for _, s := range secrets {
			c.client.CoreV1().Secrets(ns).Delete(context.WithoutCancel(ctx), s, metav1.DeleteOptions{})
		}
	}
	if pull != nil {
		// The pull credential is a Secret the kubelet reads (imagePullSecrets), not in the spec.
		pm := meta
		pm.Name = name + "-pull"
		if _, err := c.client.CoreV1().Secrets(ns).Create(ctx, pullSecret(pm, pull), metav1.CreateOptions{}); err != nil {
			deleteSecrets()
			return "", d.apiError(t.Name, "creating the run's image pull Secret", err)
		}
		secrets = append(secrets, pm.Name)
		job.Spec.Template.Spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: pm.Name}}
	}
	created, err := c.client.BatchV1().Jobs(ns).Create(ctx, job, metav1.CreateOptions{})
	if err != nil {
		deleteSecrets()
		return "", d.apiError(t.Name, "creating the run's Job", err)
	}
	// The watch brings the Job soon; until then the cache answers for it (no GET on the
	// controller's first Status).
	if _, ok, _ := c.jobs.GetStore().Get(created); !ok {
		c.jobs.GetStore().Add(created)
	}
	owner := metav1.OwnerReference{APIVersion: "batch/v1", Kind: "Job", Name: name, UID: created.UID}
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"ownerReferences": []metav1.OwnerReference{owner}}})
	for _, s := range secrets {
		if _, err := c.client.CoreV1().Secrets(ns).Patch(ctx, s, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
			d.log().Warn("making the Job own its Secret", "compute", t.Name, "job", name, "secret", s, "err", err)
		}
	}
	if n := config.NodeCount; n > 1 {
		svc := &corev1.Service{ObjectMeta: meta, Spec: corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone,
			Selector: map[string]string{"batch.kubernetes.io/job-name": name}, PublishNotReadyAddresses: true}}
		svc.OwnerReferences = []metav1.OwnerReference{owner}
		if _, err := c.client.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
			d.log().Warn("creating a distributed run's Service", "compute", t.Name, "job", name, "err", err)
		}
	}
	b, _ := json.Marshal(handle{Workspace: l.Run.Workspace, Target: t.Name, Namespace: ns, Job: name, UID: string(created.UID)})
	d.log().Info("kubernetes job created", "compute", t.Name, "run", l.Run.ID, "job", name)
	return string(b), nil
}

// pullSecret is a kubernetes.io/dockerconfigjson Secret holding a pull credential.
func pullSecret(meta metav1.ObjectMeta, p *PullImage) *corev1.Secret {
	auth := base64.StdEncoding.EncodeToString([]byte(p.Username + ":" + p.Password))
	cfg, _ := json.Marshal(map[string]any{"auths": map[string]any{p.Registry: map[string]string{
		"username": p.Username, "password": p.Password, "auth": auth}}})
	return &corev1.Secret{ObjectMeta: meta, Type: corev1.SecretTypeDockerConfigJson, Data: map[string][]byte{corev1.DockerConfigJsonKey: cfg}}
}

// jobSpec is a run's Job: restartPolicy Never and no retries (the runner records the run's
// end; a second pod would run it again, and one failed pod fails the Job), GPUs as
// nvidia.com/gpu requests and limits, the target's resources, node selector and tolerations.
//
// A distributed run (node_count × process_count_per_node > 1) is an Indexed Job of node_count
// pods (one per node, as PyTorch's operator and Azure ML do), each pod's runner told its node
// (ATELIER_NODE_RANK, the pod's completion index) and starting process_count_per_node processes
// of the script with RANK, LOCAL_RANK, NODE_RANK and WORLD_SIZE (compute/local's RankEnv).
// MASTER_ADDR is pod 0's name in the run's headless Service (`<job>-0.<job>`: the Job controller
// names an Indexed Job's pods' hosts `<job>-<index>`, and the pods' subdomain is the Service);
// MASTER_PORT is fixed. Node 0's runner records the run, and hears the other nodes' runners at
// MASTER_ADDR:ATELIER_CONTROL_PORT (MASTER_PORT + 1).
func (d *Driver) jobSpec(meta metav1.ObjectMeta, image string, l *atelier.JobLaunch, config atelier.RunConfig) (*batchv1.Job, error) {
	runner := d.Runner
	if runner == "" {
		runner = "atelier"
	}
	args := append([]string{"job", "exec", "--run", l.Run.ID, "--work-dir", "job", "--envs-dir", "envs"}, d.Args...)
	env := []corev1.EnvVar{
		{Name: "ATELIER_SERVER", Value: l.Server},
		{Name: "ATELIER_WORKSPACE", Value: l.Run.Workspace},
		{Name: "HOME", Value: WorkDir},
	}
	n := max(config.NodeCount, 1)
	port := d.MasterPort
	if port == 0 {
		port = MasterPort
	}
	switch {
	case n > 1:
		env = append(env,
			corev1.EnvVar{Name: "ATELIER_NODE_RANK", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{
				FieldPath: "metadata.annotations['" + completionIndexAnnotation + "']"}}},
			corev1.EnvVar{Name: "MASTER_ADDR", Value: meta.Name + "-0." + meta.Name},
			corev1.EnvVar{Name: "MASTER_PORT", Value: strconv.Itoa(port)},
			corev1.EnvVar{Name: "ATELIER_CONTROL_PORT", Value: strconv.Itoa(port + 1)},
		)
	case config.Processes() > 1: // one pod's processes
		env = append(env,
			corev1.EnvVar{Name: "ATELIER_NODE_RANK", Value: "0"},
			corev1.EnvVar{Name: "MASTER_ADDR", Value: "127.0.0.1"},
			corev1.EnvVar{Name: "MASTER_PORT", Value: strconv.Itoa(port)},
		)
	}
	res := corev1.ResourceRequirements{Requests: corev1.ResourceList{}, Limits: corev1.ResourceList{}}
	if config.GPUs > 0 {
		q := *resource.NewQuantity(int64(config.GPUs), resource.DecimalSI)
		res.Requests[GPUResource], res.Limits[GPUResource] = q, q
	}
	k := l.Target.Kubernetes
	if k.CPU != "" {
		q, err := resource.ParseQuantity(k.CPU)
		if err != nil {
			return nil, atelier.Errorf(atelier.EINVALID, "compute target %s: kubernetes.cpu %q: %v", l.Target.Name, k.CPU, err)
		}
		res.Requests[corev1.ResourceCPU] = q
	}
	if k.Memory != "" {
		q, err := resource.ParseQuantity(k.Memory)
		if err != nil {
			return nil, atelier.Errorf(atelier.EINVALID, "compute target %s: kubernetes.memory %q: %v", l.Target.Name, k.Memory, err)
		}
		res.Requests[corev1.ResourceMemory], res.Limits[corev1.ResourceMemory] = q, q
	}
	var tolerations []corev1.Toleration
	for _, t := range k.Tolerations {
		tolerations = append(tolerations, corev1.Toleration{Key: t.Key, Operator: corev1.TolerationOperator(t.Operator), Value: t.Value,
			Effect: corev1.TaintEffect(t.Effect)})
	}
	no, grace := false, int64(TerminationGrace)
	podLabels := map[string]string{}
	for k, v := range meta.Labels {
		podLabels[k] = v
	}
	pod := corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: podLabels, Annotations: meta.Annotations},
		Spec: corev1.PodSpec{
			RestartPolicy:                 corev1.RestartPolicyNever,
			AutomountServiceAccountToken:  &no,
			EnableServiceLinks:            &no,
			TerminationGracePeriodSeconds: &grace,
			NodeSelector:                  k.NodeSelector,
			Tolerations:                   tolerations,
			Containers: []corev1.Container{{
				Name:         Container,
				Image:        image,
				Command:      []string{runner},
				Args:         args,
				WorkingDir:   WorkDir,
				Env:          env,
				EnvFrom:      []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: meta.Name}}}},
				Resources:    res,
				VolumeMounts: []corev1.VolumeMount{{Name: "work", MountPath: WorkDir}},
			}},
			Volumes: []corev1.Volume{{Name: "work", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
		},
	}
	if n > 1 {
		pod.Spec.Subdomain = meta.Name
	}
	backoff, count := int32(0), int32(n)
	job := &batchv1.Job{ObjectMeta: meta, Spec: batchv1.JobSpec{BackoffLimit: &backoff, Template: pod}}
	if n > 1 {
		indexed := batchv1.IndexedCompletion
		job.Spec.CompletionMode, job.Spec.Completions, job.Spec.Parallelism = &indexed, &count, &count
	}
	return job, nil
}

// Check checks that a target can run jobs: the cluster answers at the kubeconfig's server,
// accepts its credentials, the namespace exists, and the user may create, watch and delete
// Jobs and create Secrets in it (SelfSubjectAccessReviews). Each failure names the target and
// what to fix.
func (d *Driver) Check(ctx context.Context, t *atelier.ComputeTarget, creds atelier.ComputeCredentials) error {
	if t.Kubernetes == nil {
		return atelier.Errorf(atelier.EINVALID, "compute target %s has no kubernetes configuration", t.Name)
	}
	cfg, err := d.restConfig(t, creds)
	if err != nil {
		return err
	}
	cfg.Timeout = 20 * time.Second // an apiserver that accepts and never answers
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return atelier.Errorf(atelier.EINVALID, "compute target %s: %v", t.Name, err)
	}
	cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if _, err := client.Discovery().ServerVersion(); err != nil {
		if apierrors.IsUnauthorized(err) || apierrors.IsForbidden(err) {
			return atelier.Errorf(atelier.EINVALID, "compute target %s: the cluster at %s refused the kubeconfig's credentials: %v", t.Name, cfg.Host, err)
		}
		return atelier.Errorf(atelier.EUNAVAILABLE, "compute target %s: cannot reach the cluster at %s: %v", t.Name, cfg.Host, err)
	}
	ns := t.Kubernetes.Namespace
	_, err = client.CoreV1().Namespaces().Get(cctx, ns, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return atelier.Errorf(atelier.EINVALID, "compute target %s: the cluster at %s has no namespace %q: create it (kubectl create namespace %s) or fix --namespace",
			t.Name, cfg.Host, ns, ns)
	} else if apierrors.IsUnauthorized(err) {
		return atelier.Errorf(atelier.EINVALID, "compute target %s: the cluster at %s refused the kubeconfig's credentials: %v", t.Name, cfg.Host, err)
	} else if err != nil && !apierrors.IsForbidden(err) {
		return d.apiError(t.Name, "reading namespace "+ns, err)
	}
	var missing []string
	for _, need := range []struct{ verb, group, resource string }{
		{"create", "batch", "jobs"}, {"watch", "batch", "jobs"}, {"delete", "batch", "jobs"},
		{"watch", "", "pods"}, {"get", "", "pods/log"}, {"create", "", "secrets"}, {"patch", "", "secrets"},
	} {
		res, sub, _ := strings.Cut(need.resource, "/")
		review := &authorizationv1SSAR{verb: need.verb, group: need.group, resource: res, subresource: sub, namespace: ns}
		ok, reason, err := review.do(cctx, client)
		if err != nil {
			return d.apiError(t.Name, "asking whether the user may "+need.verb+" "+need.resource, err)
		}
		if !ok {
			what := need.verb + " " + need.resource
			if reason != "" {
				what += " (" + reason + ")"
			}
			missing = append(missing, what)
		}
	}
	if len(missing) > 0 {
		return atelier.Errorf(atelier.EINVALID, "compute target %s: the kubeconfig's user may not %s in namespace %s of the cluster at %s: grant them with a Role and RoleBinding",
			t.Name, strings.Join(missing, ", "), ns, cfg.Host)
	}
	return nil
}

// authorizationv1SSAR asks the apiserver whether the client's user may do a verb.
type authorizationv1SSAR struct{ verb, group, resource, subresource, namespace string }

func (r *authorizationv1SSAR) do(ctx context.Context, client kubernetes.Interface) (bool, string, error) {
	review := &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{
		ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: r.namespace, Verb: r.verb, Group: r.group,
			Resource: r.resource, Subresource: r.subresource}}}
	got, err := client.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, review, metav1.CreateOptions{})
	if err != nil {
		return false, "", err
	}
	return got.Status.Allowed, got.Status.Reason, nil
}
