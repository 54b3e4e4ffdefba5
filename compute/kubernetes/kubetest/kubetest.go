// Package kubetest starts a real Kubernetes control plane for tests: etcd, kube-apiserver,
// kube-controller-manager (the Job controller, the garbage collector, service accounts) and
// kube-scheduler, built from the Go module proxy by scripts/build-kubernetes.sh, on loopback
// ports with their certificates, data and logs in a temporary directory. Nodes are fake: kwok
// ones (their pods go Running, then Succeeded, without running anything) and, with
// StartKubelet, a node whose pods' commands run as processes of the test's machine.
package kubetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Binaries are the programs a cluster needs, in the directory Bin finds.
var Binaries = []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok", "kwok-stages.yaml"}

// Token is the bearer token of the cluster's administrator (system:masters).
const Token = "kubetest-admin-token"

// KwokAnnotation marks a node kwok manages.
const KwokAnnotation = "kwok.x-k8s.io/node"

// Bin returns the directory of the binaries (ATELIER_KUBERNETES_BIN, or the current build of
// scripts/build-kubernetes.sh under ATELIER_TEST_CACHE or ~/.cache/atelier-test), or why
// there is none.
func Bin() (string, error) {
	dir := os.Getenv("ATELIER_KUBERNETES_BIN")
	if dir == "" {
		cache := os.Getenv("ATELIER_TEST_CACHE")
		if cache == "" {
			home, _ := os.UserHomeDir()
			cache = filepath.Join(home, ".cache", "atelier-test")
		}
		dir = filepath.Join(cache, "kubernetes", "current", "bin")
	}
	var missing []string
	for _, b := range Binaries {
		if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
			missing = append(missing, b)
		}
	}
	if len(missing) > 0 {
		return "", fmt.Errorf("no %s in %s: build them with scripts/build-kubernetes.sh (about 12 minutes, 3 GB of RAM) or set ATELIER_KUBERNETES_BIN",
			strings.Join(missing, ", "), dir)
	}
	return dir, nil
}

// Options shape a cluster.
type Options struct {
	// Nodes is how many kwok nodes to create (each Node's capacity).
	Nodes int
	Node  NodeCapacity
	// PodDuration is how long a pod of a Job on a kwok node stays Running before it
	// Succeeds (at once when zero).
	PodDuration time.Duration
}

// NodeCapacity is a fake node's capacity; zero fields get 32 CPUs, 256Gi, 110 pods, no GPUs.
type NodeCapacity struct {
	CPU    string
	Memory string
	Pods   int
	GPUs   int
}

// Cluster is a running control plane.
type Cluster struct {
	// URL is the apiserver's (https, a self-signed certificate).
	URL string
	// Kubeconfig is a kubeconfig file for the administrator; KubeconfigData its content.
	Kubeconfig     string
	KubeconfigData []byte
	Config         *rest.Config
	Client         kubernetes.Interface
	Dir            string

	bin   string
	procs []*exec.Cmd
	logs  []string
	nodes int
}

func freePort(tb testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Start starts a cluster, stopped at the end of the test. Without the binaries it skips
// saying how to build them, unless CI is set: there it fails (.ci/run builds them).
func Start(tb testing.TB, opts Options) *Cluster {
	tb.Helper()
	bin, err := Bin()
	if err != nil {
		if os.Getenv("CI") != "" {
			tb.Fatalf("a real Kubernetes control plane is needed (CI is set, so this fails instead of skipping): %v", err)
		}
		tb.Skipf("a real Kubernetes control plane is needed: %v", err)
	}
	dir, err := os.MkdirTemp("", "atelier-k8s-")
	if err != nil {
		tb.Fatal(err)
	}
	c := &Cluster{Dir: dir, bin: bin}
	tb.Cleanup(func() {
		c.stop()
		if tb.Failed() {
			c.dumpLogs(tb)
		}
		os.RemoveAll(dir)
	})
	for _, d := range []string{"etcd", "certs", "log"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			tb.Fatal(err)
		}
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		tb.Fatal(err)
	}
	pub, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			tb.Fatal(err)
		}
		return p
	}
	saKey := write("sa.key", pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}))
	saPub := write("sa.pub", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}))
	tokens := write("tokens.csv", []byte(Token+",admin,admin-uid,system:masters\n"))

	etcdClient, etcdPeer, etcdMetrics, apiPort := freePort(tb), freePort(tb), freePort(tb), freePort(tb)
	etcdURL := "http://127.0.0.1:" + strconv.Itoa(etcdClient)
	peerURL := "http://127.0.0.1:" + strconv.Itoa(etcdPeer)
	c.start(tb, "etcd", "--data-dir", filepath.Join(dir, "etcd"), "--listen-client-urls", etcdURL, "--advertise-client-urls", etcdURL,
		"--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL, "--initial-cluster", "default="+peerURL,
		"--listen-metrics-urls", "http://127.0.0.1:"+strconv.Itoa(etcdMetrics), "--log-level", "warn")
	c.wait(tb, "etcd", func() bool {
		resp, err := http.Get(etcdURL + "/health")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})

	c.URL = "https://127.0.0.1:" + strconv.Itoa(apiPort)
	c.start(tb, "kube-apiserver", "--etcd-servers", etcdURL, "--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1",
		"--endpoint-reconciler-type", "none", "--secure-port", strconv.Itoa(apiPort), "--cert-dir", filepath.Join(dir, "certs"),
		"--service-account-issuer", "https://kubernetes.default.svc", "--service-account-key-file", saPub,
		"--service-account-signing-key-file", saKey, "--token-auth-file", tokens, "--authorization-mode", "RBAC",
		"--service-cluster-ip-range", "10.96.0.0/24", "--max-requests-inflight", "1000", "--max-mutating-requests-inflight", "500")
	c.Config = &rest.Config{Host: c.URL, BearerToken: Token, TLSClientConfig: rest.TLSClientConfig{Insecure: true}, QPS: -1}
	c.Client = kubernetes.NewForConfigOrDie(c.Config)
	c.wait(tb, "kube-apiserver", func() bool {
		b, err := c.Client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(context.Background())
		return err == nil && string(b) == "ok"
	})
	c.KubeconfigData = KubeconfigFor(c.URL, Token, "default")
	c.Kubeconfig = write("kubeconfig", c.KubeconfigData)

	kc := c.Kubeconfig
	c.start(tb, "kube-controller-manager", "--kubeconfig", kc, "--authentication-kubeconfig", kc, "--authorization-kubeconfig", kc,
		"--bind-address", "127.0.0.1", "--secure-port", strconv.Itoa(freePort(tb)), "--leader-elect=false",
		"--service-account-private-key-file", saKey, "--root-ca-file", filepath.Join(dir, "certs", "apiserver.crt"),
		"--controllers", "*,-nodeipam", "--kube-api-qps", "500", "--kube-api-burst", "1000",
		"--concurrent-job-syncs", "20", "--concurrent-gc-syncs", "40")
	c.start(tb, "kube-scheduler", "--kubeconfig", kc, "--authentication-kubeconfig", kc, "--authorization-kubeconfig", kc,
		"--bind-address", "127.0.0.1", "--secure-port", strconv.Itoa(freePort(tb)), "--leader-elect=false")
	stages := write("kwok-stages.yaml", c.stages(tb, opts.PodDuration))
	c.start(tb, "kwok", "--kubeconfig", kc, "--config", stages, "--manage-all-nodes=false",
		"--manage-nodes-with-annotation-selector", KwokAnnotation+"=fake", "--cidr", "10.0.0.1/16", "--node-ip", "10.0.0.1",
		"--server-address", "127.0.0.1:"+strconv.Itoa(freePort(tb)))
	if opts.Nodes > 0 {
		c.AddNodes(tb, opts.Nodes, opts.Node)
	}
	return c
}

// KubeconfigFor is a kubeconfig for server with a bearer token, its context using namespace.
func KubeconfigFor(server, token, namespace string) []byte {
	return fmt.Appendf(nil, `apiVersion: v1
kind: Config
clusters:
- name: kubetest
  cluster:
    server: %s
    insecure-skip-tls-verify: true
users:
- name: kubetest
  user:
    token: %s
contexts:
- name: kubetest
  context:
    cluster: kubetest
    user: kubetest
    namespace: %s
current-context: kubetest
`, server, token, namespace)
}

// stages are kwok's stage configuration: the stock node and pod stages of the build, with
// the pods of Jobs completing after d.
func (c *Cluster) stages(tb testing.TB, d time.Duration) []byte {
	stock, err := os.ReadFile(filepath.Join(c.bin, "kwok-stages.yaml"))
	if err != nil {
		tb.Fatal(err)
	}
	var out [][]byte
	for _, doc := range bytes.Split(stock, []byte("\n---\n")) {
		if bytes.Contains(doc, []byte("name: pod-complete\n")) {
			doc = podComplete(d)
		}
		out = append(out, doc)
	}
	return bytes.Join(out, []byte("\n---\n"))
}

func podComplete(d time.Duration) []byte {
	delay := ""
	if d > 0 {
		delay = fmt.Sprintf("  delay:\n    durationMilliseconds: %d\n", d.Milliseconds())
	}
	return []byte(`apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: pod-complete
spec:
  resourceRef:
    apiGroup: v1
    kind: Pod
  selector:
    matchExpressions:
    - key: '.metadata.deletionTimestamp'
      operator: 'DoesNotExist'
    - key: '.status.phase'
      operator: 'In'
      values:
      - 'Running'
    - key: '.metadata.ownerReferences.[].kind'
      operator: 'In'
      values:
      - 'Job'
` + delay + `  next:
    statusTemplate: |
      {{ $now := Now }}
      {{ $root := . }}
      containerStatuses:
      {{ range $index, $item := .spec.containers }}
      - image: {{ $item.image | Quote }}
        name: {{ $item.name | Quote }}
        ready: false
        restartCount: 0
        started: false
        state:
          terminated:
            exitCode: 0
            finishedAt: {{ $now | Quote }}
            reason: Completed
            startedAt: {{ $now | Quote }}
      {{ end }}
      phase: Succeeded
`)
}

// start starts a component with its output in log/<name>.log.
func (c *Cluster) start(tb testing.TB, name string, args ...string) {
	tb.Helper()
	logPath := filepath.Join(c.Dir, "log", name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command(filepath.Join(c.bin, name), args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		tb.Fatalf("starting %s: %v", name, err)
	}
	c.procs = append(c.procs, cmd)
	c.logs = append(c.logs, logPath)
}

// wait waits for a component to be ready, failing with its log when it does not come up.
func (c *Cluster) wait(tb testing.TB, name string, ok func() bool) {
	tb.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for !ok() {
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(c.Dir, "log", name+".log"))
			tb.Fatalf("%s did not become ready in 2 minutes:\n%s", name, tail(log, 4000))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

func (c *Cluster) stop() {
	for i := len(c.procs) - 1; i >= 0; i-- {
		p := c.procs[i]
		p.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { p.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			p.Process.Kill()
			<-done
		}
	}
	c.procs = nil
}

func (c *Cluster) dumpLogs(tb testing.TB) {
	for _, p := range c.logs {
		b, _ := os.ReadFile(p)
		tb.Logf("%s:\n%s", filepath.Base(p), tail(b, 3000))
	}
}

// AddNodes creates n kwok nodes (kwok-0, kwok-1, ... continuing the cluster's count), Ready
// at once.
func (c *Cluster) AddNodes(tb testing.TB, n int, capacity NodeCapacity) {
	tb.Helper()
	ctx := context.Background()
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
	for i := 0; i < n; i++ {
		name := "kwok-" + strconv.Itoa(c.nodes)
		c.nodes++
		node := &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: map[string]string{KwokAnnotation: "fake"},
				Labels: map[string]string{"type": "kwok", "kubernetes.io/hostname": name}},
			Spec:   corev1.NodeSpec{Taints: []corev1.Taint{}},
			Status: corev1.NodeStatus{Capacity: res, Allocatable: res},
		}
		if _, err := c.Client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
			tb.Fatalf("creating node %s: %v", name, err)
		}
	}
	c.wait(tb, "kwok", func() bool {
		nodes, err := c.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: "type=kwok"})
		if err != nil {
			return false
		}
		ready := 0
		for _, n := range nodes.Items {
			for _, cond := range n.Status.Conditions {
				if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
					ready++
				}
			}
		}
		return ready == c.nodes
	})
}

// Namespace creates a namespace and waits for its default service account (pods are refused
// until the controller manager made it).
func (c *Cluster) Namespace(tb testing.TB, name string) {
	tb.Helper()
	ctx := context.Background()
	_, err := c.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		tb.Fatalf("creating namespace %s: %v", name, err)
	}
	c.wait(tb, "kube-controller-manager", func() bool {
		_, err := c.Client.CoreV1().ServiceAccounts(name).Get(ctx, "default", metav1.GetOptions{})
		return err == nil
	})
}

// UserKubeconfig adds a user with its own token (tokens are read at the apiserver's start, so
// this restarts nothing: it uses impersonation instead) and returns a kubeconfig acting as
// that user, who has no permission until granted one.
func (c *Cluster) UserKubeconfig(user string) []byte {
	return []byte(strings.Replace(string(c.KubeconfigData), "    token: "+Token+"\n",
		"    token: "+Token+"\n    as: "+user+"\n", 1))
}

// Loadable checks a kubeconfig parses (a helper's own check).
func Loadable(b []byte) error {
	_, err := clientcmd.Load(b)
	return err
}
