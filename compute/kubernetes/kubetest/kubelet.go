package kubetest

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/retry"
)

// Kubelet is a node whose pods' first containers run as processes of the test's machine: a
// stand-in for a kubelet and a container runtime, enough for a driver's conformance with a
// real runner. Its pods run with the container's command and arguments (the command's first
// word mapped through Binaries), the container's environment (values, secretKeyRef, fieldRef
// and envFrom secretRef resolved as a kubelet does), in a directory of their own (the working
// directory of the image is not there: relative paths are). A deleted pod's process gets
// SIGTERM, then SIGKILL after its grace period; its output is served as the container's log
// (kubectl logs, the API's pods/log).
//
// The node is its pods' DNS too, as far as they need it: a pod with a subdomain (an Indexed
// Job's pod in a headless Service) is named in the node's hosts file, as the cluster's DNS
// names it (<hostname>.<subdomain>, with .<namespace>, .svc and .cluster.local), at 127.0.0.1,
// where all the node's pods are; and such a pod's process sees that file as its /etc/hosts (a
// mount namespace of its own, as a kubelet gives each pod its /etc/hosts, and a PID namespace
// of its own, as a pod has), so its runner and its scripts reach pod 0 of their Job by name.
// Pods on this node reach only this node's pods.
//
// A container with no command runs its image's entrypoint: the program Binaries names for the
// image's reference (or for "*", any image's). A pod's IP is 127.0.0.1, the node's, unless
// OwnPodIPs was called: then each pod has a loopback address of its own (127.0.x.y), so that
// several pods listen on the same port as in a cluster. A container's readiness probe (an
// HTTP GET) is honoured: the pod is Ready once the probe answers 2xx or 3xx (probed every 50 ms
// until then, then at its period), and not Ready after failureThreshold failures in a row.
type Kubelet struct {
	Name string
	c    *Cluster
	// Binaries maps a command's first word to the program run for it.
	Binaries map[string]string
	dir      string

	mu   sync.Mutex
	pods map[string]*kpod // by uid
	// ownIPs: each pod gets a loopback address of its own (lastIP counts them); claims hold
	// them against other nodes, in this process and others.
	ownIPs bool
	lastIP int
	claims []net.PacketConn
	// names are the hosts file's lines of the pods with a subdomain, by uid; hosts is the file.
	names map[string]string
	hosts string
}

type kpod struct {
	ip      string
	cmd     *exec.Cmd
	out     *syncBuffer
	done    chan struct{}
	killing bool
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) Bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.b.Bytes())
}

// StartKubelet registers a node named name, Ready, with the capacity given (the defaults of
// NodeCapacity), and runs its pods until the test ends.
func (c *Cluster) StartKubelet(tb testing.TB, name string, capacity NodeCapacity, binaries map[string]string) *Kubelet {
	tb.Helper()
	k := &Kubelet{Name: name, c: c, Binaries: binaries, dir: tb.TempDir(), pods: map[string]*kpod{}, names: map[string]string{}}
	k.hosts = filepath.Join(k.dir, "hosts")
	k.writeHosts()
	logs := httptest.NewUnstartedServer(http.HandlerFunc(k.serveLogs))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	logs.Listener = l
	logs.StartTLS()
	port := l.Addr().(*net.TCPAddr).Port

	if capacity.CPU == "" {
		capacity.CPU = "32"
	}
	if capacity.Memory == "" {
		capacity.Memory = "256Gi"
	}
	if capacity.Pods == 0 {
		capacity.Pods = 110
	}
	res := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse(capacity.CPU),
		corev1.ResourceMemory: resource.MustParse(capacity.Memory),
		corev1.ResourcePods:   *resource.NewQuantity(int64(capacity.Pods), resource.DecimalSI),
	}
	if capacity.GPUs > 0 {
		res["nvidia.com/gpu"] = *resource.NewQuantity(int64(capacity.GPUs), resource.DecimalSI)
	}
	ctx, cancel := context.WithCancel(context.Background())
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"type": "process", "kubernetes.io/hostname": name}}}
	node, err = c.Client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
	if err != nil {
		tb.Fatalf("creating node %s: %v", name, err)
	}
	heartbeat := func() error {
		return retry.RetryOnConflict(retry.DefaultRetry, func() error {
			n, err := c.Client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			now := metav1.Now()
			n.Status.Capacity, n.Status.Allocatable = res, res
			n.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "127.0.0.1"}}
			n.Status.DaemonEndpoints.KubeletEndpoint.Port = int32(port)
			n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady",
				Message: "kubetest runs this node's pods as processes", LastHeartbeatTime: now, LastTransitionTime: now}}
			_, err = c.Client.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{})
			return err
		})
	}
	if err := heartbeat(); err != nil {
		tb.Fatalf("node %s status: %v", name, err)
	}
	go func() {
		t := time.NewTicker(10 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				heartbeat()
			}
		}
	}()

	f := informers.NewSharedInformerFactoryWithOptions(c.Client, 0, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
		o.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", name).String()
	}))
	inf := f.Core().V1().Pods().Informer()
	inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { k.sync(ctx, obj.(*corev1.Pod)) },
		UpdateFunc: func(_, obj any) { k.sync(ctx, obj.(*corev1.Pod)) },
	})
	f.Start(ctx.Done())
	tb.Cleanup(func() {
		cancel()
		f.Shutdown()
		k.mu.Lock()
		var pods []*kpod
		for _, p := range k.pods {
			if p.cmd != nil && p.cmd.Process != nil {
				syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			}
			pods = append(pods, p)
		}
		k.mu.Unlock()
		for _, p := range pods { // their addresses are free once they have ended
			select {
			case <-p.done:
			case <-time.After(10 * time.Second):
			}
		}
		k.mu.Lock()
		for _, c := range k.claims {
			c.Close()
		}
		k.mu.Unlock()
		logs.Close()
	})
	return k
}

// OwnPodIPs gives each pod started from now on a loopback address of its own (127.0.x.y, never
// reused by the node, nor given by another node while this one runs) as its IP, instead of
// the node's 127.0.0.1.
func (k *Kubelet) OwnPodIPs() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.ownIPs = true
}

// ipClaimPort is the UDP port a node binds on each loopback address it gives a pod: the
// claim that keeps another node (of this test process or of another package's, running at
// the same time) from giving the same address to its pod, whose runtime would then answer
// on the same IP and port as this one's.
const ipClaimPort = "47999"

// podIP is a new pod's IP; called with mu held.
func (k *Kubelet) podIP() string {
	if !k.ownIPs {
		return "127.0.0.1"
	}
	for {
		k.lastIP++
		n := k.lastIP
		ip := "127.0." + strconv.Itoa(1+n/250) + "." + strconv.Itoa(1+n%250)
		if c, err := net.ListenPacket("udp", net.JoinHostPort(ip, ipClaimPort)); err == nil {
			k.claims = append(k.claims, c)
			return ip
		}
	}
}

var logPath = regexp.MustCompile(`^/containerLogs/([^/]+)/([^/]+)/([^/]+)$`)

func (k *Kubelet) serveLogs(w http.ResponseWriter, r *http.Request) {
	m := logPath.FindStringSubmatch(r.URL.Path)
	if m == nil {
		http.NotFound(w, r)
		return
	}
	pod, err := k.c.Client.CoreV1().Pods(m[1]).Get(r.Context(), m[2], metav1.GetOptions{})
	if err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	k.mu.Lock()
	p := k.pods[string(pod.UID)]
	k.mu.Unlock()
	if p == nil {
		http.Error(w, "the container has not started", http.StatusNotFound)
		return
	}
	w.Write(p.out.Bytes())
}

func (k *Kubelet) sync(ctx context.Context, pod *corev1.Pod) {
	k.mu.Lock()
	p := k.pods[string(pod.UID)]
	k.mu.Unlock()
	if pod.DeletionTimestamp != nil {
		if p == nil {
			k.c.Client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, *metav1.NewDeleteOptions(0))
			return
		}
		k.mu.Lock()
		first := !p.killing
		p.killing = true
		k.mu.Unlock()
		if first {
			grace := time.Duration(30) * time.Second
			if pod.DeletionGracePeriodSeconds != nil {
				grace = time.Duration(*pod.DeletionGracePeriodSeconds) * time.Second
			}
			go func() {
				// As a container runtime: SIGTERM to the container's first process, then
				// SIGKILL to all of it after the grace period.
				k.mu.Lock()
				cmd := p.cmd
				k.mu.Unlock()
				if cmd != nil && cmd.Process != nil {
					cmd.Process.Signal(syscall.SIGTERM)
					select {
					case <-p.done:
					case <-time.After(grace):
						syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
						<-p.done
					}
				} else {
					<-p.done
				}
				k.c.Client.CoreV1().Pods(pod.Namespace).Delete(context.Background(), pod.Name, *metav1.NewDeleteOptions(0))
			}()
		}
		return
	}
	if p != nil || pod.Status.Phase != corev1.PodPending || len(pod.Spec.Containers) == 0 {
		return
	}
	k.name(pod)
	p = &kpod{out: &syncBuffer{}, done: make(chan struct{})}
	k.mu.Lock()
	p.ip = k.podIP()
	k.pods[string(pod.UID)] = p
	k.mu.Unlock()
	go k.run(ctx, pod, p)
}

func (k *Kubelet) setStatus(pod *corev1.Pod, f func(*corev1.PodStatus)) {
	ctx := context.Background()
	retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := k.c.Client.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if cur.UID != pod.UID {
			return nil
		}
		f(&cur.Status)
		_, err = k.c.Client.CoreV1().Pods(pod.Namespace).UpdateStatus(ctx, cur, metav1.UpdateOptions{})
		return err
	})
}

func (k *Kubelet) fail(pod *corev1.Pod, p *kpod, reason, msg string) {
	p.out.Write([]byte(msg + "\n"))
	close(p.done)
	k.setStatus(pod, func(s *corev1.PodStatus) {
		s.Phase = corev1.PodFailed
		s.Reason, s.Message = reason, msg
	})
}

func (k *Kubelet) run(ctx context.Context, pod *corev1.Pod, p *kpod) {
	ctr := pod.Spec.Containers[0]
	env, err := k.env(ctx, pod, p.ip, ctr)
	if err != nil {
		k.fail(pod, p, "CreateContainerConfigError", err.Error())
		return
	}
	words := append(append([]string{}, ctr.Command...), ctr.Args...)
	if len(ctr.Command) == 0 {
		// The image's entrypoint, then the arguments.
		k.mu.Lock()
		entry, ok := k.Binaries[ctr.Image]
		if !ok {
			entry, ok = k.Binaries["*"]
		}
		k.mu.Unlock()
		if !ok {
			k.fail(pod, p, "NoCommand", "kubetest runs containers with a command, or images Binaries names")
			return
		}
		words = append([]string{entry}, ctr.Args...)
	}
	vars := map[string]string{}
	for _, e := range env {
		name, value, _ := strings.Cut(e, "=")
		vars[name] = value
	}
	for i := range words {
		words[i] = expand(words[i], vars)
	}
	prog := words[0]
	k.mu.Lock()
	b, ok := k.Binaries[prog]
	k.mu.Unlock()
	if ok {
		prog = b
	}
	dir := filepath.Join(k.dir, string(pod.UID))
	os.MkdirAll(dir, 0o755)
	args := words[1:]
	var clone uintptr
	if pod.Spec.Subdomain != "" {
		// A pod of its own, as a container runtime makes it: a PID namespace whose first
		// process is the container's (its /proc shows the pod's processes only) and a mount
		// namespace whose /etc/hosts is the node's hosts file.
		clone = syscall.CLONE_NEWPID | syscall.CLONE_NEWNS
		args = append([]string{"-c", `mount --make-rprivate / && mount --bind "$0" /etc/hosts && mount -t proc proc /proc && exec "$@"`, k.hosts, prog}, args...)
		prog = "/bin/sh"
	}
	cmd := exec.Command(prog, args...)
	cmd.Dir = dir
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}, env...)
	cmd.Stdout, cmd.Stderr = p.out, p.out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Cloneflags: clone}
	if clone != 0 && os.Geteuid() != 0 {
		cmd.SysProcAttr.Cloneflags |= syscall.CLONE_NEWUSER
		cmd.SysProcAttr.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Geteuid(), Size: 1}}
		cmd.SysProcAttr.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getegid(), Size: 1}}
	}
	if err := cmd.Start(); err != nil {
		k.fail(pod, p, "StartError", err.Error())
		return
	}
	k.mu.Lock()
	p.cmd = cmd
	k.mu.Unlock()
	started := metav1.Now()
	probe := ctr.ReadinessProbe != nil && ctr.ReadinessProbe.HTTPGet != nil
	k.setStatus(pod, func(s *corev1.PodStatus) {
		s.Phase = corev1.PodRunning
		s.HostIP, s.PodIP = "127.0.0.1", p.ip
		s.PodIPs = []corev1.PodIP{{IP: p.ip}}
		s.StartTime = &started
		s.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: started}}
		s.ContainerStatuses = []corev1.ContainerStatus{{Name: ctr.Name, Image: ctr.Image, Ready: true,
			State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: started}}}}
		if probe {
			s.Conditions[0].Status, s.ContainerStatuses[0].Ready = corev1.ConditionFalse, false
		}
	})
	if probe {
		go k.probe(pod, p, ctr)
	}
	err = cmd.Wait()
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // the container's other processes end with it
	code := 0
	if err != nil {
		code = 1
		if ee, ok := err.(*exec.ExitError); ok {
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				code = 128 + int(ws.Signal())
			} else {
				code = ee.ExitCode()
			}
		}
	}
	close(p.done)
	finished := metav1.Now()
	k.setStatus(pod, func(s *corev1.PodStatus) {
		s.Phase = corev1.PodSucceeded
		reason := "Completed"
		if code != 0 {
			s.Phase, reason = corev1.PodFailed, "Error"
		}
		s.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionFalse, LastTransitionTime: finished}}
		s.ContainerStatuses = []corev1.ContainerStatus{{Name: ctr.Name, Image: ctr.Image,
			State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: int32(code), Reason: reason,
				StartedAt: started, FinishedAt: finished}}}}
	})
}

// probe runs a container's HTTP readiness probe until the pod's process ends, setting the
// pod's Ready condition as it passes or fails.
func (k *Kubelet) probe(pod *corev1.Pod, p *kpod, ctr corev1.Container) {
	rp := ctr.ReadinessProbe
	port := rp.HTTPGet.Port.IntValue()
	if port == 0 {
		for _, cp := range ctr.Ports {
			if cp.Name == rp.HTTPGet.Port.String() {
				port = int(cp.ContainerPort)
			}
		}
	}
	path := rp.HTTPGet.Path
	if path == "" {
		path = "/"
	}
	url := "http://" + net.JoinHostPort(p.ip, strconv.Itoa(port)) + path
	period := time.Duration(max(rp.PeriodSeconds, 1)) * time.Second
	threshold := int(max(rp.FailureThreshold, 1))
	client := &http.Client{Timeout: time.Duration(max(rp.TimeoutSeconds, 1)) * time.Second}
	ready, failures := false, 0
	for {
		ok := false
		if resp, err := client.Get(url); err == nil {
			resp.Body.Close()
			ok = resp.StatusCode >= 200 && resp.StatusCode < 400
		}
		select {
		case <-p.done:
			return
		default:
		}
		switch {
		case ok:
			failures = 0
		default:
			failures++
		}
		if ok && !ready || !ok && ready && failures >= threshold {
			ready = ok
			now := metav1.Now()
			k.setStatus(pod, func(s *corev1.PodStatus) {
				if s.Phase != corev1.PodRunning {
					return
				}
				st := corev1.ConditionFalse
				if ready {
					st = corev1.ConditionTrue
				}
				s.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: st, LastTransitionTime: now}}
				for i := range s.ContainerStatuses {
					s.ContainerStatuses[i].Ready = ready
				}
			})
		}
		wait := period
		if !ready {
			wait = 50 * time.Millisecond
		}
		select {
		case <-p.done:
			return
		case <-time.After(wait):
		}
	}
}

// name puts a pod with a subdomain in the node's hosts file.
func (k *Kubelet) name(pod *corev1.Pod) {
	if pod.Spec.Subdomain == "" {
		return
	}
	host := pod.Spec.Hostname
	if host == "" {
		host = pod.Name
	}
	fqdn := host + "." + pod.Spec.Subdomain
	line := "127.0.0.1\t" + strings.Join([]string{fqdn + "." + pod.Namespace + ".svc.cluster.local", fqdn + "." + pod.Namespace + ".svc",
		fqdn + "." + pod.Namespace, fqdn}, " ")
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.names[string(pod.UID)] == line {
		return
	}
	k.names[string(pod.UID)] = line
	k.writeHostsLocked()
}

func (k *Kubelet) writeHosts() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.writeHostsLocked()
}

// writeHostsLocked rewrites the hosts file in place: the pods' mounts of it see the new lines.
func (k *Kubelet) writeHostsLocked() {
	lines := []string{"127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback"}
	for _, l := range k.names {
		lines = append(lines, l)
	}
	os.WriteFile(k.hosts, []byte(strings.Join(lines, "\n")+"\n"), 0o644)
}

var varRef = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// expand replaces $(VAR) with the variable's value, as Kubernetes does in env and args.
func expand(s string, vars map[string]string) string {
	return varRef.ReplaceAllStringFunc(s, func(m string) string {
		if v, ok := vars[m[2:len(m)-1]]; ok {
			return v
		}
		return m
	})
}

var fieldAnnotation = regexp.MustCompile(`^metadata\.(annotations|labels)\['(.+)'\]$`)

// env resolves a container's environment as a kubelet does.
func (k *Kubelet) env(ctx context.Context, pod *corev1.Pod, ip string, ctr corev1.Container) ([]string, error) {
	var env []string
	vars := map[string]string{}
	set := func(name, value string) {
		env = append(env, name+"="+value)
		vars[name] = value
	}
	secret := func(name string) (*corev1.Secret, error) {
		s, err := k.c.Client.CoreV1().Secrets(pod.Namespace).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil, &configError{"secret " + strconv.Quote(name) + " not found"}
		}
		return s, err
	}
	for _, from := range ctr.EnvFrom {
		if from.SecretRef == nil {
			continue
		}
		s, err := secret(from.SecretRef.Name)
		if err != nil {
			return nil, err
		}
		for key, v := range s.Data {
			set(from.Prefix+key, string(v))
		}
	}
	for _, e := range ctr.Env {
		switch {
		case e.ValueFrom == nil:
			set(e.Name, expand(e.Value, vars))
		case e.ValueFrom.SecretKeyRef != nil:
			s, err := secret(e.ValueFrom.SecretKeyRef.Name)
			if err != nil {
				return nil, err
			}
			set(e.Name, string(s.Data[e.ValueFrom.SecretKeyRef.Key]))
		case e.ValueFrom.FieldRef != nil:
			path := e.ValueFrom.FieldRef.FieldPath
			switch path {
			case "metadata.name":
				set(e.Name, pod.Name)
			case "metadata.namespace":
				set(e.Name, pod.Namespace)
			case "spec.nodeName":
				set(e.Name, pod.Spec.NodeName)
			case "status.podIP":
				set(e.Name, ip)
			case "status.hostIP":
				set(e.Name, "127.0.0.1")
			default:
				if m := fieldAnnotation.FindStringSubmatch(path); m != nil {
					if m[1] == "annotations" {
						set(e.Name, pod.Annotations[m[2]])
					} else {
						set(e.Name, pod.Labels[m[2]])
					}
				} else {
					return nil, &configError{"fieldRef " + path + " is not supported by kubetest"}
				}
			}
		}
	}
	return env, nil
}

type configError struct{ msg string }

func (e *configError) Error() string { return e.msg }
