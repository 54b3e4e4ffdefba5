package local_test

import (
	"bytes"
	"context"
	"io"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/compute/local"
	"github.com/google/go-cmp/cmp"
)

// fakeData is the datastores of a fakeHost: "datastore:path" → content.
type fakeData struct {
	mu     sync.Mutex
	files  map[string][]byte
	opened []string // "datastore:path" of every OpenData
}

func (d *fakeData) put(key string, b []byte) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.files == nil {
		d.files = map[string][]byte{}
	}
	d.files[key] = b
}

func (d *fakeData) snapshot() map[string]string {
	d.mu.Lock()
	defer d.mu.Unlock()
	m := map[string]string{}
	for k, v := range d.files {
		m[k] = string(v)
	}
	return m
}

func (h *fakeHost) ListData(ctx context.Context, job *atelier.Job, ref atelier.DataReference) ([]*atelier.DatastoreFile, error) {
	h.data.mu.Lock()
	defer h.data.mu.Unlock()
	if b, ok := h.data.files[ref.Datastore+":"+ref.Path]; ok && ref.Path != "" {
		return []*atelier.DatastoreFile{{Path: ref.Path, Size: int64(len(b))}}, nil
	}
	var list []*atelier.DatastoreFile
	for k, b := range h.data.files {
		ds, p, _ := strings.Cut(k, ":")
		if ds == ref.Datastore && strings.HasPrefix(p, ref.Folder()) {
			list = append(list, &atelier.DatastoreFile{Path: p, Size: int64(len(b))})
		}
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Path < list[j].Path })
	return list, nil
}

func (h *fakeHost) OpenData(ctx context.Context, job *atelier.Job, ref atelier.DataReference, path string) (io.ReadCloser, error) {
	h.data.mu.Lock()
	defer h.data.mu.Unlock()
	h.data.opened = append(h.data.opened, ref.Datastore+":"+path)
	b, ok := h.data.files[ref.Datastore+":"+path]
	if !ok {
		return nil, atelier.Errorf(atelier.ENOTFOUND, "%s not found", path)
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

func (h *fakeHost) WriteData(ctx context.Context, job *atelier.Job, ref atelier.DataReference, path string, r io.Reader) error {
	if ref.Mode != atelier.DataUpload || !strings.HasPrefix(path, ref.Folder()) {
		return atelier.Errorf(atelier.EINVALID, "writing %s outside the upload folder %s", path, ref.Folder())
	}
	if strings.Contains(path, "refused") {
		return atelier.Errorf(atelier.EFORBIDDEN, "refused by the test")
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	h.data.put(ref.Datastore+":"+path, b)
	return nil
}

// TestData: download references are in place before the script starts, under the variables
// the script is told, and what it writes to an upload reference's folder reaches the datastore.
func TestData(t *testing.T) {
	script := `import json, os, pathlib
train = pathlib.Path(os.environ["ATELIER_DATA_TRAIN"])
one = pathlib.Path(os.environ["ATELIER_DATA_ONE"])
out = pathlib.Path(os.environ["ATELIER_DATA_SCORES"])
print("train:", sorted(str(p.relative_to(train)) for p in train.rglob("*") if p.is_file()))
print("one:", one.name, one.read_text())
print("scores empty:", list(out.iterdir()) == [])
(out / "sub").mkdir()
(out / "sub" / "s.txt").write_text("0.9")
(out / "top.txt").write_text("top " + (train / "a.csv").read_text())
sets = json.loads(os.environ["ATELIER_DATASETS"])
print("sets:", sorted((k, v["mode"], v["path"] == os.environ["ATELIER_DATA_" + k.upper()]) for k, v in sets.items()))
`
	h, job := MustJob(t, map[string]string{"train.py": script, "data/keep.txt": "from the snapshot"}, atelier.RunConfig{Script: "train.py",
		Data: []atelier.DataReference{
			{Name: "train", Datastore: "lake", Path: "diabetes/"},
			{Name: "one", Datastore: "lake", Path: "diabetes/b/c.csv"},
			{Name: "scores", Datastore: "lake", Path: "out", Mode: atelier.DataUpload},
		}})
	h.data.put("lake:diabetes/a.csv", []byte("1,2"))
	h.data.put("lake:diabetes/b/c.csv", []byte("3,4"))
	h.data.put("lake:other/x.csv", []byte("no"))
	res := MustExecutor(t).Run(context.Background(), h, job)
	out := h.Log(local.StdLogPath)
	MustResult(t, res, atelier.StatusCompleted, "0")
	for _, want := range []string{"train: ['a.csv', 'b/c.csv']", "one: c.csv 3,4", "scores empty: True",
		"sets: [('one', 'download', True), ('scores', 'upload', True), ('train', 'download', True)]"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if log := h.Log(local.PrepareLogPath); !strings.Contains(log, "downloading data train: 2 files (6 bytes) from lake:diabetes/") {
		t.Errorf("prepare log:\n%s", log)
	}
	got := h.data.snapshot()
	want := map[string]string{"lake:diabetes/a.csv": "1,2", "lake:diabetes/b/c.csv": "3,4", "lake:other/x.csv": "no",
		"lake:out/sub/s.txt": "0.9", "lake:out/top.txt": "top 1,2"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("datastore after the run (-want +got):\n%s", diff)
	}
}

// TestDataMissing: a download reference that names nothing fails the run before the script.
func TestDataMissing(t *testing.T) {
	h, job := MustJob(t, map[string]string{"train.py": "print('ran')"}, atelier.RunConfig{Script: "train.py",
		Data: []atelier.DataReference{{Name: "train", Datastore: "lake", Path: "nothing/"}}})
	res := MustExecutor(t).Run(context.Background(), h, job)
	MustResult(t, res, atelier.StatusFailed, "none")
	if !strings.Contains(res.Error, `preparing data: data "train": lake:nothing/ holds no files`) {
		t.Errorf("error = %q", res.Error)
	}
	if strings.Contains(h.Log(local.StdLogPath), "ran") {
		t.Error("the script ran")
	}
}

// TestDataUploadFailure: a failed upload fails an otherwise successful run, naming the reference.
func TestDataUploadFailure(t *testing.T) {
	h, job := MustJob(t, map[string]string{"train.py": `import os, pathlib
pathlib.Path(os.environ["ATELIER_DATA_OUT"], "refused.txt").write_text("x")`}, atelier.RunConfig{Script: "train.py",
		Data: []atelier.DataReference{{Name: "out", Datastore: "lake", Path: "out/", Mode: atelier.DataUpload}}})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res := MustExecutor(t).Run(ctx, h, job)
	MustResult(t, res, atelier.StatusFailed, "0")
	if want := `uploading data "out" to lake:out/: refused.txt: refused by the test`; !strings.Contains(res.Error, want) {
		t.Errorf("error = %q, want %q", res.Error, want)
	}
}

// TestDataMount: a mount reference is a read-only folder of the reference's files, listed when
// the script starts, each fetched the first time the script opens it and only then; the mount
// is gone when the run ends.
func TestDataMount(t *testing.T) {
	script := `import errno, os, pathlib
train = pathlib.Path(os.environ["ATELIER_DATA_TRAIN"])
print("listed:", sorted(str(p.relative_to(train)) for p in train.rglob("*") if p.is_file()))
print("sizes:", sorted(p.stat().st_size for p in train.rglob("*") if p.is_file()))
print("a:", (train / "a.csv").read_text(), (train / "a.csv").read_text())
try:
    (train / "a.csv").write_text("x")
    print("written")
except OSError as e:
    print("write refused:", errno.errorcode[e.errno])
try:
    (train / "new.txt").write_text("x")
    print("created")
except OSError as e:
    print("create refused:", errno.errorcode[e.errno])
one = pathlib.Path(os.environ["ATELIER_DATA_ONE"])
print("one:", one.name, one.read_text())
`
	h, job := MustJob(t, map[string]string{"train.py": script}, atelier.RunConfig{Script: "train.py",
		Data: []atelier.DataReference{
			{Name: "train", Datastore: "lake", Path: "diabetes/", Mode: atelier.DataMount},
			{Name: "one", Datastore: "lake", Path: "diabetes/b/c.csv", Mode: atelier.DataMount},
		}})
	h.data.put("lake:diabetes/a.csv", []byte("1,2"))
	h.data.put("lake:diabetes/b/c.csv", []byte("3,4"))
	h.data.put("lake:diabetes/big.bin", make([]byte, 3<<20))
	res := MustExecutor(t).Run(context.Background(), h, job)
	prep := h.Log(local.PrepareLogPath)
	if strings.Contains(prep, "no FUSE file system can be mounted here") {
		t.Skipf("no FUSE here:\n%s", prep)
	}
	out := h.Log(local.StdLogPath)
	MustResult(t, res, atelier.StatusCompleted, "0")
	for _, want := range []string{"listed: ['a.csv', 'b/c.csv', 'big.bin']", "sizes: [3, 3, 3145728]", "a: 1,2 1,2",
		"write refused: E", "create refused: E", "one: c.csv 3,4"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(prep, "mounted data train at ") || !strings.Contains(prep, "3 files (3145734 bytes) from lake:diabetes/, each fetched when first opened") {
		t.Errorf("prepare log:\n%s", prep)
	}
	h.data.mu.Lock()
	opened := slices.Clone(h.data.opened)
	h.data.mu.Unlock()
	sort.Strings(opened)
	// a.csv read twice, fetched once; big.bin never opened, never fetched.
	if want := []string{"lake:diabetes/a.csv", "lake:diabetes/b/c.csv"}; !slices.Equal(opened, want) {
		t.Errorf("fetched %q, want %q", opened, want)
	}
	if got := h.data.snapshot()["lake:diabetes/a.csv"]; got != "1,2" {
		t.Errorf("the datastore's file became %q", got)
	}
	mounts, _ := os.ReadFile("/proc/self/mounts")
	if strings.Contains(string(mounts), "fuse.atelier-data") {
		t.Errorf("a data mount is left:\n%s", mounts)
	}
}
