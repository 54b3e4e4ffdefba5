package kubernetes

// Web services on kubernetes compute targets. Each revision of a service (an image with a
// configuration) is a Deployment of the image's scoring runtime, pulled from the workspace
// registry; each service has one ClusterIP Service over its revisions' pods. The gateway's own
// autoscaler (package serving) decides how many replicas a revision has: a Revision maps the
// replicas of its pool onto the Deployment's Ready pods, raising the Deployment's replicas for
// a replica that starts and deleting the pod of a replica that stops (with the lowest
// pod-deletion-cost, so that the ReplicaSet removes that one pod as the replicas go down).

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/tools/cache"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/serving"
)

// Labels and annotations of a web service's objects.
const (
	WorkspaceLabel = "ai.atelier/workspace"
	ServiceLabel   = "ai.atelier/service"
	// ImageLabel is the image's name and version (NAME-VERSION: a label has no ':'); the
	// annotation of the same name has it as NAME:VERSION.
	ImageLabel      = "ai.atelier/image"
	ImageAnnotation = "ai.atelier/image"
	// RevisionLabel names the Deployment a pod belongs to.
	RevisionLabel = "ai.atelier/revision"
	// PodDeletionCost is the annotation that makes a ReplicaSet remove a pod first.
	PodDeletionCost = "controller.kubernetes.io/pod-deletion-cost"
	// stoppingCost marks the pods of replicas being stopped.
	stoppingCost = "-1000000"
	// ModelDataAnnotation marks the pods that collect model data ("true").
	ModelDataAnnotation = "ai.atelier/model-data"
)

// Model data collection in a pod: score.py's ModelDataCollector writes under ModelDataDir (an
// emptyDir of the pod), and the server pulls what it appended from the scoring runtime
// (POST /__atelier/modeldata), with the service's token, which the pods get from the
// service's Secret <ServiceObjectName>-modeldata (key "token") as ATELIER_MODEL_DATA_TOKEN.
const (
	ModelDataDir    = "/var/atelier/modeldata"
	ModelDataPath   = "/__atelier/modeldata"
	ModelDataHeader = "x-atelier-model-data-token"
	modelDataKey    = "token"
)

// ServingPort is where the scoring runtime listens in a pod; ServingContainer names its
// container.
const (
	ServingPort      = 5001
	ServingContainer = "scoring"
)

// Serving is a kubernetes compute target's side of web services: its cluster's client and
// the caches of the Deployments and pods the driver made in its namespace.
type Serving struct {
	d      *Driver
	c      *cluster
	target string
	// k is the target's configuration: its pods' node selector and tolerations.
	k atelier.KubernetesCompute
}

// servingCache is a cluster's cache of the Deployments of web services, and the broadcast of
// any change of those or of the pods.
type servingCache struct {
	deploys cache.SharedIndexInformer
	changed broadcast
}

// broadcast wakes every waiter at each change.
type broadcast struct {
	mu sync.Mutex
	ch chan struct{}
}

func (b *broadcast) wait() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ch == nil {
		b.ch = make(chan struct{})
	}
	return b.ch
}

func (b *broadcast) fire() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ch != nil {
		close(b.ch)
		b.ch = nil
	}
}

// Serving returns the web services side of a kubernetes target, once the caches listed its
// namespace.
func (d *Driver) Serving(ctx context.Context, t *atelier.ComputeTarget, creds atelier.ComputeCredentials) (*Serving, error) {
	if t == nil || t.Kubernetes == nil {
		return nil, atelier.Errorf(atelier.EINVALID, "web services deploy to kubernetes compute targets only")
	}
	c, err := d.clusterFor(t, creds)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	sc := c.serving
	if sc == nil {
		sc = &servingCache{}
		sc.deploys = c.factory.Apps().V1().Deployments().Informer()
		err := sc.deploys.AddIndexers(cache.Indexers{"service": func(obj any) ([]string, error) {
			if m, ok := obj.(metav1.Object); ok && m.GetLabels()[ServiceLabel] != "" {
				return []string{m.GetLabels()[WorkspaceLabel] + "/" + m.GetLabels()[ServiceLabel]}, nil
			}
			return nil, nil
		}})
		if err == nil {
			err = c.pods.AddIndexers(cache.Indexers{"revision": func(obj any) ([]string, error) {
				if p, ok := obj.(*corev1.Pod); ok && p.Labels[RevisionLabel] != "" {
					return []string{p.Labels[RevisionLabel]}, nil
				}
				return nil, nil
			}})
		}
		if err != nil {
			c.mu.Unlock()
			return nil, atelier.Errorf(atelier.EINTERNAL, "compute target %s: indexing the cache of web services: %v", t.Name, err)
		}
		fire := cache.ResourceEventHandlerFuncs{AddFunc: func(any) { sc.changed.fire() }, UpdateFunc: func(any, any) { sc.changed.fire() },
			DeleteFunc: func(any) { sc.changed.fire() }}
		sc.deploys.AddEventHandler(fire)
		c.pods.AddEventHandler(fire)
		c.serving = sc
		c.factory.Start(c.stop)
	}
	c.mu.Unlock()
	if err := d.synced(ctx, c, t.Name); err != nil {
		return nil, err
	}
	timeout := d.SyncTimeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if !cache.WaitForCacheSync(wctx.Done(), sc.deploys.HasSynced) {
		return nil, atelier.Errorf(atelier.EUNAVAILABLE, "compute target %s: cannot list the Deployments of namespace %s at %s", t.Name, c.namespace, c.host)
	}
	return &Serving{d: d, c: c, target: t.Name, k: *t.Kubernetes}, nil
}

func shortHash(parts ...string) string {
	sum := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return hex.EncodeToString(sum[:])[:8]
}

// dnsPart makes s fit a DNS label: lower case letters, digits and '-', at most n characters.
func dnsPart(s string, n int) string {
	b := []byte(strings.ToLower(s))
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			b[i] = '-'
		}
	}
	out := strings.Trim(string(b), "-")
	if len(out) > n {
		out = strings.TrimRight(out[:n], "-")
	}
	return out
}

// ServiceObjectName is the name of a service's Service (and prefix of its other objects):
// unique per workspace and service in a namespace.
func ServiceObjectName(workspace, service string) string {
	return "ws-" + dnsPart(service, 40) + "-" + shortHash(workspace, service)
}

// DeploymentName is the Deployment of a revision: the same image and configuration name the
// same Deployment, which a restarted server adopts.
func DeploymentName(workspace, service, image string, config any) string {
	cfg, _ := json.Marshal(config)
	return ServiceObjectName(workspace, service) + "-" + shortHash(workspace, service, image, string(cfg))
}

func labelValue(s string) string {
	v := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' {
			return r
		}
		return '-'
	}, s)
	if len(v) > 63 {
		v = v[:63]
	}
	return strings.Trim(v, "-_.")
}

// Revision is what a Deployment of a service is made from.
type Revision struct {
	Workspace, Service string
	// Image is the image's NAME:VERSION; Name is the Deployment's (DeploymentName).
	Image, Name string
	// Reference is where the nodes pull the image from, with Pull's credential (nil: none).
	Reference string
	Pull      *PullImage
	// Env is the scoring runtime's environment (NAME=VALUE); ATELIER_SCORE_HOST and
	// ATELIER_SCORE_PORT are added.
	Env []string
	// CPU (cores) and MemoryGB are the container's requests (and the memory's limit).
	CPU, MemoryGB float64
	// ModelData: the pods collect model data (see ModelDataDir); Pods.ModelDataToken is the
	// token that pulls it.
	ModelData bool
	// Log receives what the revision does with pods (may be nil).
	Log func(string)
}

func (s *Serving) labels(workspace, service string) map[string]string {
	return map[string]string{ManagedByLabel: ManagedBy, WorkspaceLabel: labelValue(workspace), ServiceLabel: labelValue(service)}
}

// Deploy creates what a revision needs (the service's pull Secret and Service, the
// revision's Deployment, with no replica yet) or adopts what exists (a restarted server), and
// returns the revision's pods to start replicas on.
func (s *Serving) Deploy(ctx context.Context, rev Revision) (*Pods, error) {
	ctx, cancel := context.WithTimeout(ctx, RequestTimeout)
	defer cancel()
	ns := s.c.namespace
	base := ServiceObjectName(rev.Workspace, rev.Service)
	labels := s.labels(rev.Workspace, rev.Service)
	annotations := map[string]string{WorkspaceAnnotation: rev.Workspace, "ai.atelier/service": rev.Service, TargetAnnotation: s.target}
	meta := func(name string) metav1.ObjectMeta {
		return metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels, Annotations: annotations}
	}
	var pullSecrets []corev1.LocalObjectReference
	if rev.Pull != nil {
		sec := pullSecret(meta(base+"-pull"), rev.Pull)
		if _, err := s.c.client.CoreV1().Secrets(ns).Create(ctx, sec, metav1.CreateOptions{}); apierrors.IsAlreadyExists(err) {
			_, err = s.c.client.CoreV1().Secrets(ns).Update(ctx, sec, metav1.UpdateOptions{})
			if err != nil {
				return nil, s.d.apiError(s.target, "updating the service's image pull Secret", err)
			}
		} else if err != nil {
			return nil, s.d.apiError(s.target, "creating the service's image pull Secret", err)
		}
		pullSecrets = []corev1.LocalObjectReference{{Name: base + "-pull"}}
	}
	svc := &corev1.Service{ObjectMeta: meta(base), Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP,
		Selector: map[string]string{WorkspaceLabel: labels[WorkspaceLabel], ServiceLabel: labels[ServiceLabel]},
		Ports:    []corev1.ServicePort{{Name: "http", Port: ServingPort, TargetPort: intstr.FromInt32(ServingPort)}}}}
	if _, err := s.c.client.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, s.d.apiError(s.target, "creating the service's Service", err)
	}
	var token string
	if rev.ModelData {
		var err error
		if token, err = s.modelDataToken(ctx, meta(base+"-modeldata")); err != nil {
			return nil, err
		}
	}
	dep, err := s.deployment(meta(rev.Name), rev, pullSecrets)
	if err != nil {
		return nil, err
	}
	adopted := false
	if _, err := s.c.client.AppsV1().Deployments(ns).Create(ctx, dep, metav1.CreateOptions{}); apierrors.IsAlreadyExists(err) {
		adopted = true
	} else if err != nil {
		return nil, s.d.apiError(s.target, "creating the Deployment of "+rev.Image, err)
	}
	p := &Pods{s: s, name: rev.Name, log: rev.Log, claimed: map[string]*podReplica{}, token: token}
	if p.log == nil {
		p.log = func(string) {}
	}
	if adopted {
		p.log(fmt.Sprintf("Deployment %s/%s exists: adopted with its pods", ns, rev.Name))
	} else {
		p.log(fmt.Sprintf("Deployment %s/%s created", ns, rev.Name))
	}
	return p, nil
}

// modelDataToken is the token of a service's model data Secret, which it makes the first time.
// The Secret stays until the service is deleted: the pods a restarted server adopts have its
// token.
func (s *Serving) modelDataToken(ctx context.Context, meta metav1.ObjectMeta) (string, error) {
	secrets := s.c.client.CoreV1().Secrets(meta.Namespace)
	for range 2 {
		sec, err := secrets.Get(ctx, meta.Name, metav1.GetOptions{})
		if err == nil && len(sec.Data[modelDataKey]) > 0 {
			return string(sec.Data[modelDataKey]), nil
		} else if err != nil && !apierrors.IsNotFound(err) {
			return "", s.d.apiError(s.target, "reading the service's model data Secret", err)
		}
		b := make([]byte, 32)
		rand.Read(b)
		token := hex.EncodeToString(b)
		sec = &corev1.Secret{ObjectMeta: meta, Type: corev1.SecretTypeOpaque, Data: map[string][]byte{modelDataKey: []byte(token)}}
		if err == nil {
			_, err = secrets.Update(ctx, sec, metav1.UpdateOptions{})
		} else {
			_, err = secrets.Create(ctx, sec, metav1.CreateOptions{})
		}
		if err == nil {
			return token, nil
		} else if !apierrors.IsAlreadyExists(err) && !apierrors.IsConflict(err) {
			return "", s.d.apiError(s.target, "creating the service's model data Secret", err)
		}
	}
	return "", atelier.Errorf(atelier.ECONFLICT, "compute target %s: the service's model data Secret %s keeps changing", s.target, meta.Name)
}

// deployment is a revision's Deployment: no replica (the pool raises them), pods from the
// image with the runtime listening on the pod's IP, Ready once GET / answers.
func (s *Serving) deployment(meta metav1.ObjectMeta, rev Revision, pullSecrets []corev1.LocalObjectReference) (*appsv1.Deployment, error) {
	podLabels := map[string]string{RevisionLabel: rev.Name, ImageLabel: labelValue(strings.ReplaceAll(rev.Image, ":", "-"))}
	for k, v := range meta.Labels {
		podLabels[k] = v
	}
	meta.Labels = podLabels
	ann := map[string]string{ImageAnnotation: rev.Image}
	for k, v := range meta.Annotations {
		ann[k] = v
	}
	meta.Annotations = ann
	env := []corev1.EnvVar{
		{Name: "ATELIER_SCORE_HOST", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.podIP"}}},
		{Name: "ATELIER_SCORE_PORT", Value: strconv.Itoa(ServingPort)},
	}
	for _, kv := range rev.Env {
		k, v, _ := strings.Cut(kv, "=")
		if k == "ATELIER_SCORE_SOCKET" || k == "ATELIER_MODEL_DATA_DIR" || k == "ATELIER_MODEL_DATA_TOKEN" {
			continue // a pod listens on its IP; its model data is set below
		}
		env = append(env, corev1.EnvVar{Name: k, Value: v})
	}
	var volumes []corev1.Volume
	var mounts []corev1.VolumeMount
	if rev.ModelData {
		secret := ServiceObjectName(rev.Workspace, rev.Service) + "-modeldata"
		env = append(env, corev1.EnvVar{Name: "ATELIER_MODEL_DATA_DIR", Value: ModelDataDir},
			corev1.EnvVar{Name: "ATELIER_MODEL_DATA_TOKEN", ValueFrom: &corev1.EnvVarSource{
				SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: secret}, Key: modelDataKey}}})
		volumes = []corev1.Volume{{Name: "modeldata", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
		mounts = []corev1.VolumeMount{{Name: "modeldata", MountPath: ModelDataDir}}
		ann[ModelDataAnnotation] = "true"
	} else {
		env = append(env, corev1.EnvVar{Name: "ATELIER_MODEL_DATA_DIR", Value: ""})
	}
	res := corev1.ResourceRequirements{Requests: corev1.ResourceList{}, Limits: corev1.ResourceList{}}
	// The service's cpu_cores and memory_gb, or else the target's kubernetes.cpu and memory.
	if rev.CPU > 0 {
		res.Requests[corev1.ResourceCPU] = *resource.NewMilliQuantity(int64(rev.CPU*1000), resource.DecimalSI)
	} else if s.k.CPU != "" {
		q, err := resource.ParseQuantity(s.k.CPU)
		if err != nil {
			return nil, atelier.Errorf(atelier.EINVALID, "compute target %s: kubernetes.cpu %q: %v", s.target, s.k.CPU, err)
		}
		res.Requests[corev1.ResourceCPU] = q
	}
	if rev.MemoryGB > 0 {
		q := *resource.NewQuantity(int64(rev.MemoryGB*(1<<30)), resource.BinarySI)
		res.Requests[corev1.ResourceMemory], res.Limits[corev1.ResourceMemory] = q, q
	} else if s.k.Memory != "" {
		q, err := resource.ParseQuantity(s.k.Memory)
		if err != nil {
			return nil, atelier.Errorf(atelier.EINVALID, "compute target %s: kubernetes.memory %q: %v", s.target, s.k.Memory, err)
		}
		res.Requests[corev1.ResourceMemory], res.Limits[corev1.ResourceMemory] = q, q
	}
	var tolerations []corev1.Toleration
	for _, t := range s.k.Tolerations {
		tolerations = append(tolerations, corev1.Toleration{Key: t.Key, Operator: corev1.TolerationOperator(t.Operator), Value: t.Value,
			Effect: corev1.TaintEffect(t.Effect)})
	}
	zero, no, grace := int32(0), false, int64(30)
	maxSurge := intstr.FromString("100%")
	maxUnavailable := intstr.FromInt32(0)
	return &appsv1.Deployment{ObjectMeta: meta, Spec: appsv1.DeploymentSpec{
		Replicas: &zero,
		Selector: &metav1.LabelSelector{MatchLabels: map[string]string{RevisionLabel: rev.Name}},
		Strategy: appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType,
			RollingUpdate: &appsv1.RollingUpdateDeployment{MaxSurge: &maxSurge, MaxUnavailable: &maxUnavailable}},
		Template: corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Labels: podLabels, Annotations: ann},
			Spec: corev1.PodSpec{
				AutomountServiceAccountToken:  &no,
				EnableServiceLinks:            &no,
				TerminationGracePeriodSeconds: &grace,
				ImagePullSecrets:              pullSecrets,
				NodeSelector:                  s.k.NodeSelector,
				Tolerations:                   tolerations,
				Volumes:                       volumes,
				Containers: []corev1.Container{{
					Name:         ServingContainer,
					Image:        rev.Reference,
					Env:          env,
					VolumeMounts: mounts,
					Ports:        []corev1.ContainerPort{{Name: "http", ContainerPort: ServingPort, Protocol: corev1.ProtocolTCP}},
					Resources:    res,
					ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/", Port: intstr.FromInt32(ServingPort)}},
						PeriodSeconds: 5, FailureThreshold: 3, TimeoutSeconds: 5},
				}},
			},
		},
	}}, nil
}

// Services are the services (workspace, name) with Deployments in the target's namespace, from
// the cache: the server compares them with its store to delete what a deleted service left.
func (s *Serving) Services() [][2]string {
	seen := map[[2]string]bool{}
	var list [][2]string
	for _, o := range s.c.serving.deploys.GetStore().List() {
		d, ok := o.(*appsv1.Deployment)
		if !ok || d.Labels[ServiceLabel] == "" {
			continue
		}
		k := [2]string{d.Annotations[WorkspaceAnnotation], d.Annotations["ai.atelier/service"]}
		if k[0] != "" && k[1] != "" && !seen[k] {
			seen[k] = true
			list = append(list, k)
		}
	}
	return list
}

// PullPasswords are the passwords in a service's image pull Secret (none without one): tokens
// of the server that made them, so the server tells its own services' objects from those
// another installation put in the same namespace.
func (s *Serving) PullPasswords(ctx context.Context, workspace, service string) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, RequestTimeout)
	defer cancel()
	name := ServiceObjectName(workspace, service) + "-pull"
	sec, err := s.c.client.CoreV1().Secrets(s.c.namespace).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	} else if err != nil {
		return nil, s.d.apiError(s.target, "reading Secret "+name, err)
	}
	var cfg struct {
		Auths map[string]struct {
			Password string `json:"password"`
		} `json:"auths"`
	}
	if err := json.Unmarshal(sec.Data[corev1.DockerConfigJsonKey], &cfg); err != nil {
		return nil, nil // not one of ours
	}
	var list []string
	for _, a := range cfg.Auths {
		if a.Password != "" {
			list = append(list, a.Password)
		}
	}
	return list, nil
}

// Deployments are the names of a service's Deployments in the cache.
func (s *Serving) Deployments(workspace, service string) []string {
	objs, _ := s.c.serving.deploys.GetIndexer().ByIndex("service", labelValue(workspace)+"/"+labelValue(service))
	var names []string
	for _, o := range objs {
		d := o.(*appsv1.Deployment)
		if d.Annotations[WorkspaceAnnotation] == workspace && d.Annotations["ai.atelier/service"] == service {
			names = append(names, d.Name)
		}
	}
	return names
}

// Changed is closed at the next change of the target's Deployments or pods.
func (s *Serving) Changed() <-chan struct{} { return s.c.serving.changed.wait() }

// DeleteDeployment deletes a revision's Deployment with its pods (background propagation).
func (s *Serving) DeleteDeployment(ctx context.Context, name string) error {
	ctx, cancel := context.WithTimeout(ctx, RequestTimeout)
	defer cancel()
	bg := metav1.DeletePropagationBackground
	err := s.c.client.AppsV1().Deployments(s.c.namespace).Delete(ctx, name, metav1.DeleteOptions{PropagationPolicy: &bg})
	if err != nil && !apierrors.IsNotFound(err) {
		return s.d.apiError(s.target, "deleting Deployment "+name, err)
	}
	return nil
}

// DeleteService deletes everything of a service: its Deployments (and their pods), its
// Service, its pull Secret and its model data Secret.
func (s *Serving) DeleteService(ctx context.Context, workspace, service string) error {
	var errs []error
	for _, name := range s.Deployments(workspace, service) {
		errs = append(errs, s.DeleteDeployment(ctx, name))
	}
	ctx, cancel := context.WithTimeout(ctx, RequestTimeout)
	defer cancel()
	base := ServiceObjectName(workspace, service)
	if err := s.c.client.CoreV1().Services(s.c.namespace).Delete(ctx, base, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		errs = append(errs, s.d.apiError(s.target, "deleting Service "+base, err))
	}
	for _, sec := range []string{base + "-pull", base + "-modeldata"} {
		if err := s.c.client.CoreV1().Secrets(s.c.namespace).Delete(ctx, sec, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, s.d.apiError(s.target, "deleting Secret "+sec, err))
		}
	}
	return errors.Join(errs...)
}

// Pods maps the replicas of a pool onto the Ready pods of a revision's Deployment: Start is
// the pool's serving.StartFunc.
type Pods struct {
	// StartTimeout bounds the wait for a Ready pod (10 minutes when zero).
	StartTimeout time.Duration
	// BeforeDelete, when set (before the pool starts), is called with each pod the pool
	// deletes (a stopped replica's, one no longer Ready, one spare) before its deletion: the
	// last moment to pull its model data.
	BeforeDelete func(ctx context.Context, pod ServingPod)

	s     *Serving
	name  string
	log   func(string)
	token string

	scale sync.Mutex // one change of the Deployment's replicas at a time
	mu    sync.Mutex
	// want is the number of replicas the pool runs or starts: the Deployment's replicas.
	want    int
	claimed map[string]*podReplica // by pod name
}

// Name is the Deployment's.
func (p *Pods) Name() string { return p.name }

// ModelDataToken is what pulls the model data of the revision's pods ("" when they do not
// collect): see ModelDataPath.
func (p *Pods) ModelDataToken() string { return p.token }

// ServingPod is a pod of a service: its name, UID, whether it runs (has an IP and runs) and
// its scoring runtime's address, and whether it collects model data.
type ServingPod struct {
	Name, UID string
	Running   bool
	Addr      string
	ModelData bool
}

func servingPod(pod *corev1.Pod) ServingPod {
	sp := ServingPod{Name: pod.Name, UID: string(pod.UID), ModelData: pod.Annotations[ModelDataAnnotation] == "true"}
	if pod.Status.Phase == corev1.PodRunning && pod.Status.PodIP != "" {
		sp.Running, sp.Addr = true, net.JoinHostPort(pod.Status.PodIP, strconv.Itoa(ServingPort))
	}
	return sp
}

// ServicePods are the pods of a service's Deployments in the cache, whatever their state.
func (s *Serving) ServicePods(workspace, service string) []ServingPod {
	var out []ServingPod
	for _, name := range s.Deployments(workspace, service) {
		objs, _ := s.c.pods.GetIndexer().ByIndex("revision", name)
		for _, o := range objs {
			out = append(out, servingPod(o.(*corev1.Pod)))
		}
	}
	return out
}

// beforeDelete calls BeforeDelete for a pod about to be deleted.
func (p *Pods) beforeDelete(ctx context.Context, name string) {
	if p.BeforeDelete == nil {
		return
	}
	if pod := p.pod(name); pod != nil {
		p.BeforeDelete(ctx, servingPod(pod))
	}
}

// Claimed is how many pods serve replicas of the pool.
func (p *Pods) Claimed() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.claimed)
}

// Serves tells whether a replica of the pool is served by the pod.
func (p *Pods) Serves(pod string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.claimed[pod]
	return ok
}

func podReady(pod *corev1.Pod) bool {
	if pod.DeletionTimestamp != nil || pod.Status.Phase != corev1.PodRunning || pod.Status.PodIP == "" {
		return false
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// pods are the revision's pods in the cache.
func (p *Pods) pods() []*corev1.Pod {
	objs, _ := p.s.c.pods.GetIndexer().ByIndex("revision", p.name)
	pods := make([]*corev1.Pod, 0, len(objs))
	for _, o := range objs {
		pods = append(pods, o.(*corev1.Pod))
	}
	return pods
}

func (p *Pods) pod(name string) *corev1.Pod {
	obj, ok, _ := p.s.c.pods.GetStore().GetByKey(p.s.c.namespace + "/" + name)
	if !ok {
		return nil
	}
	return obj.(*corev1.Pod)
}

// sync sets the Deployment's replicas to want: up only, unless down.
func (p *Pods) sync(ctx context.Context, down bool) error {
	p.scale.Lock()
	defer p.scale.Unlock()
	p.mu.Lock()
	want := p.want
	p.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, RequestTimeout)
	defer cancel()
	cur := -1
	if obj, ok, _ := p.s.c.serving.deploys.GetStore().GetByKey(p.s.c.namespace + "/" + p.name); ok {
		if d := obj.(*appsv1.Deployment); d.Spec.Replicas != nil {
			cur = int(*d.Spec.Replicas)
		}
	}
	if cur < 0 {
		d, err := p.s.c.client.AppsV1().Deployments(p.s.c.namespace).Get(ctx, p.name, metav1.GetOptions{})
		if err != nil {
			return p.s.d.apiError(p.s.target, "reading Deployment "+p.name, err)
		}
		cur = int(*d.Spec.Replicas)
	}
	if want == cur || want < cur && !down {
		return nil
	}
	patch := fmt.Appendf(nil, `{"spec":{"replicas":%d}}`, want)
	if _, err := p.s.c.client.AppsV1().Deployments(p.s.c.namespace).Patch(ctx, p.name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		return p.s.d.apiError(p.s.target, "scaling Deployment "+p.name, err)
	}
	p.log(fmt.Sprintf("Deployment %s scaled from %d to %d replicas", p.name, cur, want))
	return nil
}

// Trim lowers the Deployment's replicas to the replicas the pool has, deleting the pods no
// replica serves beyond those (an adopted Deployment had more).
func (p *Pods) Trim(ctx context.Context) error {
	var spare []string
	live := 0
	p.mu.Lock()
	for _, pod := range p.pods() {
		if pod.DeletionTimestamp != nil {
			continue
		}
		live++
		if _, mine := p.claimed[pod.Name]; !mine {
			spare = append(spare, pod.Name)
		}
	}
	extra := live - p.want
	p.mu.Unlock()
	spare = spare[:max(0, min(extra, len(spare)))]
	for _, name := range spare {
		p.markStopping(ctx, name)
		p.beforeDelete(ctx, name)
	}
	if err := p.sync(ctx, true); err != nil {
		return err
	}
	for _, name := range spare {
		p.s.c.client.CoreV1().Pods(p.s.c.namespace).Delete(ctx, name, metav1.DeleteOptions{})
	}
	if len(spare) > 0 {
		p.log(fmt.Sprintf("%d pods of Deployment %s served no replica: deleted", len(spare), p.name))
	}
	return nil
}

func (p *Pods) markStopping(ctx context.Context, pod string) {
	patch := fmt.Appendf(nil, `{"metadata":{"annotations":{%q:%q}}}`, PodDeletionCost, stoppingCost)
	ctx, cancel := context.WithTimeout(ctx, RequestTimeout)
	defer cancel()
	p.s.c.client.CoreV1().Pods(p.s.c.namespace).Patch(ctx, pod, types.MergePatchType, patch, metav1.PatchOptions{})
}

// failure says why a pod of the revision cannot serve ("" when nothing is wrong yet), and
// whether its score.py's init() failed.
func failure(pod *corev1.Pod) (string, bool) {
	if pod.DeletionTimestamp != nil {
		return "", false
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
			return "no node can run pod " + pod.Name + ": " + c.Message, false
		}
	}
	for _, cs := range pod.Status.ContainerStatuses {
		if t := cs.State.Terminated; t != nil && t.ExitCode != 0 {
			return fmt.Sprintf("pod %s: the scoring runtime exited with code %d (%s)", pod.Name, t.ExitCode, t.Reason), t.ExitCode == serving.InitFailedExit
		}
		if w := cs.State.Waiting; w != nil {
			switch w.Reason {
			case "CrashLoopBackOff", "ErrImagePull", "ImagePullBackOff", "InvalidImageName", "CreateContainerConfigError", "CreateContainerError":
				msg := fmt.Sprintf("pod %s: %s: %s", pod.Name, w.Reason, w.Message)
				init := false
				if t := cs.LastTerminationState.Terminated; t != nil {
					msg += fmt.Sprintf(" (the scoring runtime exited with code %d)", t.ExitCode)
					init = t.ExitCode == serving.InitFailedExit
				}
				return msg, init
			}
		}
	}
	if pod.Status.Phase == corev1.PodFailed {
		return fmt.Sprintf("pod %s failed: %s %s", pod.Name, pod.Status.Reason, pod.Status.Message), false
	}
	return "", false
}

// logTail is the end of a pod's log.
func (p *Pods) logTail(ctx context.Context, pod string) string {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	lines := int64(30)
	b, err := p.s.c.client.CoreV1().Pods(p.s.c.namespace).GetLogs(pod, &corev1.PodLogOptions{Container: ServingContainer, TailLines: &lines}).DoRaw(ctx)
	if err != nil {
		return ""
	}
	return string(bytes.TrimSpace(b))
}

// Start is the pool's StartFunc: it raises the Deployment's replicas by one and returns a
// replica on the first Ready pod no replica serves, or the reason its pods cannot start.
func (p *Pods) Start(ctx context.Context, n int) (serving.Replica, error) {
	p.mu.Lock()
	p.want++
	p.mu.Unlock()
	pool := ctx
	timeout := p.StartTimeout
	if timeout <= 0 {
		timeout = 10 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	giveUp := func() {
		p.mu.Lock()
		p.want--
		p.mu.Unlock()
	}
	if err := p.sync(ctx, false); err != nil {
		giveUp()
		return nil, err
	}
	for {
		changed := p.s.Changed()
		var failed *corev1.Pod
		var why string
		var initFailed bool
		p.mu.Lock()
		for _, pod := range p.pods() {
			if _, taken := p.claimed[pod.Name]; taken {
				continue
			}
			if podReady(pod) && pod.Annotations[PodDeletionCost] != stoppingCost {
				r := &podReplica{p: p, pod: pod.Name, uid: pod.UID, addr: net.JoinHostPort(pod.Status.PodIP, strconv.Itoa(ServingPort)),
					pool: pool, done: make(chan struct{})}
				p.claimed[pod.Name] = r
				p.mu.Unlock()
				go r.watch()
				return r, nil
			}
			if msg, init := failure(pod); msg != "" && failed == nil {
				failed, why, initFailed = pod, msg, init
			}
		}
		p.mu.Unlock()
		if failed != nil {
			giveUp()
			if tail := p.logTail(ctx, failed.Name); tail != "" {
				why += ":\n" + tail
			}
			if failed.Status.Phase == corev1.PodFailed {
				// The ReplicaSet makes another; this one is kept no longer than reported.
				p.s.c.client.CoreV1().Pods(p.s.c.namespace).Delete(context.WithoutCancel(ctx), failed.Name, metav1.DeleteOptions{})
			}
			if initFailed {
				return nil, fmt.Errorf("%w: %s", serving.ErrInitFailed, why)
			}
			return nil, errors.New(why)
		}
		select {
		case <-ctx.Done():
			giveUp()
			if pool.Err() == nil {
				return nil, fmt.Errorf("no pod of Deployment %s became Ready in %s", p.name, timeout)
			}
			return nil, ctx.Err()
		case <-changed:
		}
	}
}

// podReplica is a replica served by a pod.
type podReplica struct {
	p    *Pods
	pod  string
	uid  types.UID
	addr string
	// pool is the pool's context: ended, the pool closes, and its replicas leave their pods to
	// the Deployment (whose fate the service decides: kept for a restarted server, or deleted).
	pool context.Context

	once sync.Once
	done chan struct{}
	mu   sync.Mutex
	err  error
}

func (r *podReplica) Dial(ctx context.Context) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "tcp", r.addr)
}

func (r *podReplica) Done() <-chan struct{} { return r.done }

func (r *podReplica) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// end ends the replica once: its pod no longer counts as the pool's.
func (r *podReplica) end(err error) bool {
	first := false
	r.once.Do(func() {
		first = true
		r.mu.Lock()
		r.err = err
		r.mu.Unlock()
		r.p.mu.Lock()
		if r.p.claimed[r.pod] == r {
			delete(r.p.claimed, r.pod)
			r.p.want--
		}
		r.p.mu.Unlock()
		close(r.done)
	})
	return first
}

// watch ends the replica when its pod is gone or no longer Ready; such a pod is deleted (the
// ReplicaSet replaces it) unless the pool closes.
func (r *podReplica) watch() {
	for {
		changed := r.p.s.Changed()
		pod := r.p.pod(r.pod)
		why := ""
		switch {
		case pod == nil || pod.UID != r.uid:
			why = "pod " + r.pod + " was deleted"
		case pod.DeletionTimestamp != nil:
			why = "pod " + r.pod + " is being deleted"
		case !podReady(pod):
			why = "pod " + r.pod + " is no longer Ready"
			if msg, _ := failure(pod); msg != "" {
				why = msg
			}
		}
		if why != "" {
			if r.end(errors.New(why)) && r.pool.Err() == nil && pod != nil && pod.DeletionTimestamp == nil {
				r.p.log(why + ": deleting it")
				r.p.beforeDelete(context.Background(), r.pod)
				r.p.s.c.client.CoreV1().Pods(r.p.s.c.namespace).Delete(context.Background(), r.pod, metav1.DeleteOptions{})
			}
			return
		}
		select {
		case <-r.done:
			return
		case <-changed:
		}
	}
}

// Stop ends the replica: its pod gets the lowest deletion cost, the Deployment one replica
// fewer and the pod is deleted; Stop returns once it is gone. When the pool closes, the pod
// is left to the Deployment.
func (r *podReplica) Stop() {
	if r.pool.Err() != nil {
		r.end(errors.New("the pool closed"))
		return
	}
	if !r.end(errors.New("stopped")) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*RequestTimeout)
	defer cancel()
	r.p.markStopping(ctx, r.pod)
	r.p.beforeDelete(ctx, r.pod)
	if err := r.p.sync(ctx, true); err != nil {
		r.p.log(err.Error())
	}
	err := r.p.s.c.client.CoreV1().Pods(r.p.s.c.namespace).Delete(ctx, r.pod, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		r.p.log(fmt.Sprintf("deleting pod %s: %v", r.pod, err))
		return
	}
	for {
		changed := r.p.s.Changed()
		if pod := r.p.pod(r.pod); pod == nil || pod.UID != r.uid {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		}
	}
}

// SetPull replaces the credential of a service's pull Secret (a renewed one).
func (s *Serving) SetPull(ctx context.Context, workspace, service string, pull *PullImage) error {
	ctx, cancel := context.WithTimeout(ctx, RequestTimeout)
	defer cancel()
	base := ServiceObjectName(workspace, service)
	meta := metav1.ObjectMeta{Name: base + "-pull", Namespace: s.c.namespace, Labels: s.labels(workspace, service),
		Annotations: map[string]string{WorkspaceAnnotation: workspace, "ai.atelier/service": service, TargetAnnotation: s.target}}
	if _, err := s.c.client.CoreV1().Secrets(s.c.namespace).Update(ctx, pullSecret(meta, pull), metav1.UpdateOptions{}); err != nil {
		return s.d.apiError(s.target, "updating the service's image pull Secret", err)
	}
	return nil
}
