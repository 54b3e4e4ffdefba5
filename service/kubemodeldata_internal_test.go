package service

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	kubernetescompute "github.com/atelier-ml/atelier/compute/kubernetes"
)

// fakePod answers the model data pulls as a pod's scoring runtime does, from the files it has.
type fakePod struct {
	mu    sync.Mutex
	files map[string]string
	token string
	seen  []string // the tokens of the pulls
}

func (f *fakePod) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seen = append(f.seen, r.Header.Get(kubernetescompute.ModelDataHeader))
	if r.URL.Path != kubernetescompute.ModelDataPath || r.Header.Get(kubernetescompute.ModelDataHeader) != f.token {
		http.Error(w, "no", http.StatusUnauthorized)
		return
	}
	var req struct{ Offsets map[string]int64 }
	json.NewDecoder(r.Body).Decode(&req)
	type file struct {
		Path           string `json:"path"`
		Offset, Length int64
	}
	var files []file
	var body strings.Builder
	for p, content := range f.files {
		off := req.Offsets[p]
		if int64(len(content)) > off {
			files = append(files, file{p, off, int64(len(content)) - off})
			body.WriteString(content[off:])
		}
	}
	head, _ := json.Marshal(map[string]any{"files": files, "more": false})
	fmt.Fprintf(w, "%s\n%s", head, body.String())
}

func (f *fakePod) set(path, content string) {
	f.mu.Lock()
	f.files[path] = content
	f.mu.Unlock()
}

func TestKubeModelDataMergesPods(t *testing.T) {
	dir := t.TempDir()
	s := &WebServices{base: &base{log: slog.New(slog.NewTextHandler(io.Discard, nil))}}
	newPuller := func() *kubeModelData {
		k := &kubeModelData{s: s, workspace: "ws", service: "svc", dir: filepath.Join(dir, "modeldata"),
			state: filepath.Join(dir, "modeldata-pulled.json"), client: http.DefaultClient, token: "tok", offsets: map[string]map[string]int64{}}
		if b, err := os.ReadFile(k.state); err == nil {
			json.Unmarshal(b, &k.offsets)
		}
		return k
	}
	k := newPuller()
	const file = "m/1/inputs/2026/12/07/data.csv"
	const header = "$aml_dc_correlation_id,$aml_dc_scoring_timestamp,$aml_dc_identifier,x\n"
	a := &fakePod{files: map[string]string{file: header + "a1,t,default,1\n"}, token: "tok"}
	b := &fakePod{files: map[string]string{file: header + "b1,t,default,2\n"}, token: "tok"}
	sa, sb := httptest.NewServer(a), httptest.NewServer(b)
	defer sa.Close()
	defer sb.Close()
	podA := kubernetescompute.ServingPod{Name: "a", UID: "uid-a", Running: true, ModelData: true, Addr: strings.TrimPrefix(sa.URL, "http://")}
	podB := kubernetescompute.ServingPod{Name: "b", UID: "uid-b", Running: true, ModelData: true, Addr: strings.TrimPrefix(sb.URL, "http://")}
	read := func() string {
		t.Helper()
		got, err := os.ReadFile(filepath.Join(dir, "modeldata", filepath.FromSlash(file)))
		if err != nil {
			t.Fatal(err)
		}
		return string(got)
	}

	k.beforeDelete(t.Context(), podA)
	k.beforeDelete(t.Context(), podB)
	if got, want := read(), header+"a1,t,default,1\nb1,t,default,2\n"; got != want {
		t.Fatalf("after a pull of each pod:\n%s\nwant:\n%s", got, want)
	}
	// Only what was appended since comes next, also for a new puller (a restarted server).
	a.set(file, header+"a1,t,default,1\na2,t,default,3\n")
	k = newPuller()
	k.beforeDelete(t.Context(), podA)
	k.beforeDelete(t.Context(), podB)
	if got, want := read(), header+"a1,t,default,1\nb1,t,default,2\na2,t,default,3\n"; got != want {
		t.Fatalf("after the second pulls:\n%s\nwant:\n%s", got, want)
	}
	for _, p := range []*fakePod{a, b} {
		for _, tok := range p.seen {
			if tok != "tok" {
				t.Errorf("a pull carried token %q", tok)
			}
		}
	}

	// A pod that names a file outside the folder is refused: nothing is written there.
	evil := &fakePod{files: map[string]string{"../../escaped.csv": "x\n", "/abs.csv": "y\n"}, token: "tok"}
	se := httptest.NewServer(evil)
	defer se.Close()
	if _, err := k.pullOnce(t.Context(), kubernetescompute.ServingPod{UID: "uid-e", Running: true, ModelData: true,
		Addr: strings.TrimPrefix(se.URL, "http://")}); err == nil || !strings.Contains(err.Error(), "not a path below") {
		t.Errorf("a file outside the folder: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "..", "escaped.csv")); err == nil {
		t.Error("a pod wrote outside the model data folder")
	}
	// A pod that refuses the token: an error, nothing recorded.
	a.mu.Lock()
	a.token = "other"
	a.mu.Unlock()
	if _, err := k.pullOnce(t.Context(), podA); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("a refused pull: %v", err)
	}
}

// TestKubeModelDataFromAPrunedPod: a pod whose file was pruned (emptied after a pull this
// server's count of was lost) answers from past the server's offset: the rows are taken and
// the count goes on from there; an answer from before the server's offset (and not a file
// started over, at 0) is not where the server is and is left.
func TestKubeModelDataFromAPrunedPod(t *testing.T) {
	dir := t.TempDir()
	s := &WebServices{base: &base{log: slog.New(slog.NewTextHandler(io.Discard, nil))}}
	k := &kubeModelData{s: s, workspace: "ws", service: "svc", dir: filepath.Join(dir, "modeldata"),
		state: filepath.Join(dir, "modeldata-pulled.json"), client: http.DefaultClient, token: "tok", offsets: map[string]map[string]int64{}}
	const file = "m/1/inputs/2026/12/07/data.csv"
	var answerAt int64
	var rows string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		head, _ := json.Marshal(map[string]any{"files": []map[string]any{{"path": file, "offset": answerAt, "length": len(rows)}}, "more": false})
		fmt.Fprintf(w, "%s\n%s", head, rows)
	}))
	defer srv.Close()
	pod := kubernetescompute.ServingPod{Name: "a", UID: "uid-a", Running: true, ModelData: true, Addr: strings.TrimPrefix(srv.URL, "http://")}
	answerAt, rows = 500, "a9,t,default,9\n"
	if _, err := k.pullOnce(t.Context(), pod); err != nil {
		t.Fatal(err)
	}
	answerAt, rows = 10, "old,t,default,0\n"
	if _, err := k.pullOnce(t.Context(), pod); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(dir, "modeldata", filepath.FromSlash(file)))
	if err != nil || string(got) != "a9,t,default,9\n" {
		t.Errorf("the service's file: %q, %v; want only the rows from past the server's offset", got, err)
	}
	if have := k.offsets["uid-a"][file]; have != 500+int64(len("a9,t,default,9\n")) {
		t.Errorf("the server's offset is %d", have)
	}
}
