package sqlite_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/storetest"
)

// mustModelVersions stores n versions spread over 100 names, with tags stage (3 values), team
// (50 values) and, on 1 in 100, candidate; and a property algo (4 values).
func mustModelVersions(b *testing.B, db atelier.Store, n int) {
	ctx := storetest.Context(b)
	var wg sync.WaitGroup
	work := make(chan int)
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				tags := map[string]string{"stage": []string{"dev", "staging", "prod"}[i%3], "team": fmt.Sprintf("t%d", i%50)}
				if i%100 == 0 {
					tags["candidate"] = "yes"
				}
				v := &atelier.ModelVersion{Name: fmt.Sprintf("model-%d", i%100), Tags: tags,
					Properties: map[string]string{"algo": []string{"ridge", "lasso", "tree", "mlp"}[i%4]},
					Files:      []atelier.ModelFile{{Path: "model.pkl", Digest: fmt.Sprintf("%064x", i), Size: 1 << 20}}}
				if err := db.CreateModelVersion(ctx, "default", v); err != nil {
					b.Error(err)
				}
			}
		}()
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
}

// BenchmarkModelSearch searches 10,000 versions by tag (a page of 100, with tags, properties
// and aliases attached).
func BenchmarkModelSearch(b *testing.B) {
	db := MustOpen(b, filepath.Join(b.TempDir(), "atelier.db"))
	storetest.MustCreateWorkspace(b, db, "default")
	mustModelVersions(b, db, 10000)
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		q    atelier.ModelQuery
	}{
		{"tag=common", atelier.ModelQuery{Tags: []string{"stage=prod"}}},
		{"tag=2%", atelier.ModelQuery{Tags: []string{"team=t7"}}},
		{"tag-key=1%", atelier.ModelQuery{Tags: []string{"candidate"}}},
		{"tag+property+name", atelier.ModelQuery{Tags: []string{"stage=prod", "team=t7"}, Properties: []string{"algo=tree"}, NameContains: "model-1"}},
		{"tag-none", atelier.ModelQuery{Tags: []string{"stage=archived"}}},
		{"tag-by-version", atelier.ModelQuery{Tags: []string{"team=t7"}, OrderBy: "version desc"}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := db.ListModelVersions(ctx, "default", tc.q); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkModelRegisterFromRunRows measures the store's part of registering a 1 GB folder
// from a run: 1024 file rows of 1 MiB each referenced by a new version (no bytes move).
func BenchmarkModelRegisterFromRunRows(b *testing.B) {
	db := MustOpen(b, filepath.Join(b.TempDir(), "atelier.db"))
	storetest.MustCreateWorkspace(b, db, "default")
	ctx := storetest.Context(b)
	run := storetest.MustCreateRun(b, db, "default", atelier.RunCreate{Experiment: "e"})
	for i := range 1024 {
		if err := db.PutFile(ctx, "default", run.ID, &atelier.File{Path: fmt.Sprintf("outputs/model/part-%04d.bin", i),
			Digest: fmt.Sprintf("%064x", i), Size: 1 << 20}); err != nil {
			b.Fatal(err)
		}
	}
	for b.Loop() {
		list, err := db.ListFiles(ctx, "default", run.ID, "outputs/model")
		if err != nil {
			b.Fatal(err)
		}
		files := make([]atelier.ModelFile, len(list))
		for i, f := range list {
			files[i] = atelier.ModelFile{Path: "model" + f.Path[len("outputs/model"):], Digest: f.Digest, Size: f.Size}
		}
		if err := db.CreateModelVersion(ctx, "default", &atelier.ModelVersion{Name: "big", RunID: run.ID, Files: files}); err != nil {
			b.Fatal(err)
		}
	}
}
