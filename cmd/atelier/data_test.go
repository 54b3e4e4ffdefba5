package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/atelier-ml/atelier"
	"github.com/google/go-cmp/cmp"
)

func TestLoadRunConfigData(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		want       []atelier.DataReference
		err        []string
	}{
		{name: "download and upload", yaml: `script: train.py
data:
  - {name: train, datastore: lake, path: diabetes/, mode: download}
  - name: scores
    datastore: lake
    path: out/
    mode: upload
`, want: []atelier.DataReference{{Name: "train", Datastore: "lake", Path: "diabetes/", Mode: "download"},
			{Name: "scores", Datastore: "lake", Path: "out/", Mode: "upload"}}},
		{name: "data as a map", yaml: "script: train.py\ndata:\n  train: lake\n", err: []string{"line 3", "data"}},
		{name: "unknown key in a reference", yaml: "script: train.py\ndata:\n  - name: x\n    datastore: lake\n    mount: true\n",
			err: []string{"line 5", "mount", "each of data"}},
		{name: "path as a list", yaml: "script: train.py\ndata:\n  - name: x\n    path: [a]\n", err: []string{"line 4", "path"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "run.yaml")
			os.WriteFile(path, []byte(tc.yaml), 0o644)
			got, err := loadRunConfig(path)
			if tc.err != nil {
				if err == nil {
					t.Fatalf("loadRunConfig = %+v, want an error", got)
				}
				for _, s := range tc.err {
					if !strings.Contains(atelier.ErrorMessage(err), s) {
						t.Errorf("error %q, want it to contain %q", atelier.ErrorMessage(err), s)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got.Data); diff != "" {
				t.Errorf("data (-want +got):\n%s", diff)
			}
		})
	}
}

func TestApplyDataFlags(t *testing.T) {
	rc := &atelier.RunConfig{Data: []atelier.DataReference{{Name: "train", Datastore: "old", Path: "x/", Mode: "download"}}}
	err := applyDataFlags(rc, []string{"train=lake:diabetes/", "scores=lake:out/:upload", "all=lake", "root=lake::upload",
		"odd=lake:a:b.csv", "dl=lake:f.csv:download", "mnt=lake:big/:mount"})
	if err != nil {
		t.Fatal(err)
	}
	want := []atelier.DataReference{
		{Name: "train", Datastore: "lake", Path: "diabetes/", Mode: "download"},
		{Name: "scores", Datastore: "lake", Path: "out/", Mode: "upload"},
		{Name: "all", Datastore: "lake", Path: "", Mode: "download"},
		{Name: "root", Datastore: "lake", Path: "", Mode: "upload"},
		{Name: "odd", Datastore: "lake", Path: "a:b.csv", Mode: "download"},
		{Name: "dl", Datastore: "lake", Path: "f.csv", Mode: "download"},
		{Name: "mnt", Datastore: "lake", Path: "big/", Mode: "mount"},
	}
	if diff := cmp.Diff(want, rc.Data); diff != "" {
		t.Errorf("data (-want +got):\n%s", diff)
	}
	for _, bad := range []string{"train", "=lake:x", "train=:x"} {
		if err := applyDataFlags(&atelier.RunConfig{}, []string{bad}); err == nil {
			t.Errorf("--data %q was accepted", bad)
		}
	}
}
