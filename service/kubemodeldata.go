package service

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"sync"
	"time"

	kubernetescompute "github.com/atelier-ml/atelier/compute/kubernetes"
)

// Model data collection on kubernetes targets. The server cannot bind a folder into a pod, so
// each pod's ModelDataCollector writes in the pod (kubernetescompute.ModelDataDir, an
// emptyDir), and the server pulls what the pods appended into the service's modeldata folder,
// where the modelDataShipper finds it as it finds a local replica's files: before each shipment
// (every modelDataEvery, and the last one when the service stops here) from every running pod
// of the service that collects, and from a pod the pool is about to delete (a stopped replica's:
// scale-down, a rolling update's old revision) before it goes. Each pull asks the pod's
// scoring runtime (POST /__atelier/modeldata, with the service's token) for the bytes beyond
// those it has of each file; the rows of several pods go into one file per day (the header
// once). What was pulled of each pod is kept in modeldata-pulled.json beside the folder, so a
// restarted server that adopts the pods pulls only what is new.

// kubeModelDataLimit is what one pull request asks for at most; a pod with more is asked again
// (up to kubeModelDataRounds times a pull), between its scoring requests.
const (
	kubeModelDataLimit  = 1 << 20
	kubeModelDataRounds = 64
)

// kubeModelData pulls the model data of a service's pods.
type kubeModelData struct {
	s         *WebServices
	workspace string
	service   string
	sv        *kubernetescompute.Serving
	dir       string // the service's modeldata folder
	state     string // the offsets file
	client    *http.Client

	mu      sync.Mutex // one pull at a time: they append to the same files
	token   string
	offsets map[string]map[string]int64 // pod UID → file (below dir, with /) → bytes appended here
}

var kubeModelDatas = struct {
	sync.Mutex
	m map[*deployment]*kubeModelData
}{m: map[*deployment]*kubeModelData{}}

// kubeModelData returns the puller of a deployment, making it the first time; token is the
// service's (kubernetescompute.Pods.ModelDataToken).
func (s *WebServices) kubeModelData(d *deployment, sv *kubernetescompute.Serving, token string) *kubeModelData {
	kubeModelDatas.Lock()
	defer kubeModelDatas.Unlock()
	k := kubeModelDatas.m[d]
	if k == nil {
		sdir := s.serviceDir(d.workspace, d.name)
		k = &kubeModelData{s: s, workspace: d.workspace, service: d.name, sv: sv, dir: filepath.Join(sdir, "modeldata"),
			state: filepath.Join(sdir, "modeldata-pulled.json"), client: &http.Client{Timeout: 10 * time.Second},
			offsets: map[string]map[string]int64{}}
		if b, err := os.ReadFile(k.state); err == nil {
			json.Unmarshal(b, &k.offsets)
		}
		kubeModelDatas.m[d] = k
	}
	k.mu.Lock()
	k.token = token
	k.mu.Unlock()
	return k
}

// gatherKubeModelData pulls a kubernetes service's model data before the shipper ships it (the
// last time when final: the service stops here).
func (s *WebServices) gatherKubeModelData(ctx context.Context, d *deployment, final bool) {
	kubeModelDatas.Lock()
	k := kubeModelDatas.m[d]
	if final {
		delete(kubeModelDatas.m, d)
	}
	kubeModelDatas.Unlock()
	if k != nil {
		k.pullAll(ctx)
	}
}

// pullAll pulls from every running pod of the service that collects, and forgets the pods
// that are gone.
func (k *kubeModelData) pullAll(ctx context.Context) {
	pods := k.sv.ServicePods(k.workspace, k.service)
	k.mu.Lock()
	defer k.mu.Unlock()
	known := map[string]bool{}
	for _, p := range pods {
		known[p.UID] = true
		if p.ModelData && p.Running {
			k.pullLocked(ctx, p)
		}
	}
	changed := false
	for uid := range k.offsets {
		if !known[uid] {
			delete(k.offsets, uid)
			changed = true
		}
	}
	if changed {
		k.saveLocked()
	}
}

// beforeDelete is the pool's last pull of a pod it deletes.
func (k *kubeModelData) beforeDelete(ctx context.Context, p kubernetescompute.ServingPod) {
	if !p.ModelData || !p.Running {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.pullLocked(ctx, p)
}

// pullLocked pulls what a pod appended since the last pull.
func (k *kubeModelData) pullLocked(ctx context.Context, p kubernetescompute.ServingPod) {
	for range kubeModelDataRounds {
		more, err := k.pullOnce(ctx, p)
		if err != nil {
			k.s.log.Warn("model data: pulling from a pod", "workspace", k.workspace, "service", k.service, "pod", p.Name, "err", err)
			return
		}
		if !more {
			return
		}
	}
}

type pulledFile struct {
	Path   string `json:"path"`
	Offset int64  `json:"offset"`
	Length int64  `json:"length"`
}

// pullOnce asks the pod for the bytes beyond those it has, appends them and records how far it
// got; more: the pod has more.
func (k *kubeModelData) pullOnce(ctx context.Context, p kubernetescompute.ServingPod) (bool, error) {
	have := k.offsets[p.UID]
	body, _ := json.Marshal(map[string]any{"offsets": have, "limit": kubeModelDataLimit})
	req, err := http.NewRequestWithContext(ctx, "POST", "http://"+p.Addr+kubernetescompute.ModelDataPath, bytes.NewReader(body))
	if err != nil {
		return false, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(kubernetescompute.ModelDataHeader, k.token)
	resp, err := k.client.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return false, fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(msg))
	}
	r := bufio.NewReader(io.LimitReader(resp.Body, 2*kubeModelDataLimit+1<<16))
	line, err := r.ReadBytes('\n')
	if err != nil {
		return false, fmt.Errorf("reading the answer: %w", err)
	}
	var head struct {
		Files []pulledFile `json:"files"`
		More  bool         `json:"more"`
	}
	if err := json.Unmarshal(line, &head); err != nil {
		return false, fmt.Errorf("reading the answer: %w", err)
	}
	if have == nil {
		have = map[string]int64{}
		k.offsets[p.UID] = have
	}
	defer k.saveLocked()
	for _, f := range head.Files {
		if f.Length < 0 || f.Length > 2*kubeModelDataLimit {
			return false, fmt.Errorf("file %q: %d bytes announced", f.Path, f.Length)
		}
		data := make([]byte, f.Length)
		if _, err := io.ReadFull(r, data); err != nil {
			return false, fmt.Errorf("file %q: %w", f.Path, err)
		}
		rel := path.Clean(f.Path)
		if !filepath.IsLocal(filepath.FromSlash(rel)) || rel != f.Path {
			return false, fmt.Errorf("file %q is not a path below the pod's model data folder", f.Path)
		}
		if f.Offset < have[rel] && f.Offset != 0 {
			continue // not where this server is: the next pull asks again
		}
		// (Past where this server is: the pod pruned bytes of the file that this server pulled
		// before and lost the count of; they are not in the pod any more.)
		if err := k.appendRows(rel, f.Offset, data); err != nil {
			return false, err
		}
		have[rel] = f.Offset + f.Length
	}
	return head.More, nil
}

// appendRows appends a pod's bytes to the service's file; a pod's file from its start has the
// header line, which a file that has rows already does not take again.
func (k *kubeModelData) appendRows(rel string, offset int64, data []byte) error {
	local := filepath.Join(k.dir, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(local), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(local, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	if offset == 0 {
		if fi, err := f.Stat(); err == nil && fi.Size() > 0 {
			if i := bytes.IndexByte(data, '\n'); i >= 0 {
				data = data[i+1:]
			}
		}
	}
	_, err = f.Write(data)
	return err
}

func (k *kubeModelData) saveLocked() {
	b, _ := json.Marshal(k.offsets)
	tmp := k.state + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err == nil {
		err = os.Rename(tmp, k.state)
		if err == nil {
			return
		}
	}
	k.s.log.Warn("model data: recording what was pulled", "workspace", k.workspace, "service", k.service, "file", k.state)
}
