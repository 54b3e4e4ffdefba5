package storetest

import (
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/atelier-ml/atelier"
)

func testImages(t *testing.T, open func(t *testing.T) atelier.Store) {
	s := open(t)
	ctx := Context(t)
	MustCreateWorkspace(t, s, "ws")
	MustCreateWorkspace(t, s, "other")
	m1 := MustRegisterModel(t, s, "ws", &atelier.ModelVersion{Name: "diabetes"})
	MustRegisterModel(t, s, "ws", &atelier.ModelVersion{Name: "diabetes"})
	spec := func(name string, tags map[string]string) *atelier.Image {
		return &atelier.Image{Name: name, Tags: tags, EntryScript: "score.py", SnapshotID: "snap1", Requirements: "requirements.txt",
			Models: []atelier.ImageModel{{Name: "diabetes", Version: m1.Version}}}
	}

	// Versions are numbered per name, concurrently without gaps or repeats.
	var wg sync.WaitGroup
	var mu sync.Mutex
	versions := map[int64]bool{}
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			img := spec("svc", map[string]string{"team": "risk"})
			if err := s.CreateImage(ctx, "ws", img); err != nil {
				t.Errorf("CreateImage: %v", err)
				return
			}
			mu.Lock()
			versions[img.Version] = true
			mu.Unlock()
			if img.Status != atelier.ImageQueued || img.Location != "ws/svc:"+itoa(img.Version) || img.CreatedBy != "tester" {
				t.Errorf("created image %+v", img)
			}
		}()
	}
	wg.Wait()
	for v := int64(1); v <= 8; v++ {
		if !versions[v] {
			t.Errorf("versions %v: %d is missing", versions, v)
		}
	}
	other := spec("other-svc", nil)
	other.Models = nil
	mustOK(t, s.CreateImage(ctx, "ws", other), "CreateImage without models")
	if err := s.CreateImage(ctx, "ws", &atelier.Image{Name: "x", Models: []atelier.ImageModel{{Name: "nope", Version: 1}}}); atelier.ErrorCode(err) != atelier.ENOTFOUND {
		t.Errorf("CreateImage with a missing model: %v, want ENOTFOUND", err)
	}
	if err := s.CreateImage(ctx, "nowhere", spec("svc", nil)); atelier.ErrorCode(err) != atelier.ENOTFOUND {
		t.Errorf("CreateImage in a missing workspace: %v, want ENOTFOUND", err)
	}

	// Read back: the latest, a version, lists by name, model and tags.
	latest, err := s.FindImage(ctx, "ws", atelier.ImageRef{Name: "svc"})
	mustOK(t, err, "FindImage latest")
	if latest.Version != 8 || latest.Tags["team"] != "risk" || latest.EntryScript != "score.py" || latest.Requirements != "requirements.txt" ||
		len(latest.Models) != 1 || latest.Models[0] != (atelier.ImageModel{Name: "diabetes", Version: m1.Version}) {
		t.Errorf("FindImage(svc) = %+v", latest)
	}
	if _, err := s.FindImage(ctx, "other", atelier.ImageRef{Name: "svc"}); atelier.ErrorCode(err) != atelier.ENOTFOUND {
		t.Errorf("an image of another workspace: %v, want ENOTFOUND", err)
	}
	for _, tc := range []struct {
		q    atelier.ImageQuery
		want int
	}{
		{atelier.ImageQuery{}, 9},
		{atelier.ImageQuery{Name: "svc"}, 8},
		{atelier.ImageQuery{Model: "diabetes"}, 8},
		{atelier.ImageQuery{Model: "other"}, 0},
		{atelier.ImageQuery{Tags: map[string]string{"team": "risk"}}, 8},
		{atelier.ImageQuery{Tags: map[string]string{"team": "ops"}}, 0},
		{atelier.ImageQuery{Limit: 3}, 3},
	} {
		list, err := s.ListImages(ctx, "ws", tc.q)
		mustOK(t, err, "ListImages")
		if len(list) != tc.want {
			t.Errorf("ListImages(%+v) = %d images, want %d", tc.q, len(list), tc.want)
		}
	}

	// A model version an image uses cannot be deleted; the error names the image.
	err = s.DeleteModelVersion(ctx, "ws", atelier.ModelRef{Name: "diabetes", Version: m1.Version})
	var inUse *atelier.ModelInUseError
	if !errors.As(err, &inUse) || !strings.Contains(err.Error(), "image svc:") {
		t.Errorf("deleting a model version images use: %v, want a ModelInUseError naming the images", err)
	}

	// Builds are claimed once each, oldest first, with a lease.
	expires := time.Now().Add(time.Minute)
	claimed := map[string]string{}
	for _, owner := range []string{"a", "b", "c"} {
		got, err := s.ClaimImages(ctx, owner, 4, expires)
		mustOK(t, err, "ClaimImages")
		for _, img := range got {
			if prev, ok := claimed[img.Location]; ok {
				t.Errorf("%s claimed by %s and %s", img.Location, prev, owner)
			}
			claimed[img.Location] = owner
			if img.Status != atelier.ImageBuilding || img.StartedAt == nil {
				t.Errorf("claimed image %+v", img)
			}
		}
	}
	if len(claimed) != 9 {
		t.Errorf("%d builds claimed, want 9", len(claimed))
	}
	leases, err := s.ListLeases(ctx, atelier.LeaseKindBuild)
	mustOK(t, err, "ListLeases(build)")
	if len(leases) != 9 || leases[0].Workspace != "ws" || !strings.HasPrefix(leases[0].ID, "ws/") {
		t.Errorf("build leases %+v", leases)
	}

	// Logs append, read from an offset; the end is recorded once.
	ref := atelier.ImageRef{Name: "svc", Version: 1}
	mustOK(t, s.AppendImageLog(ctx, "ws", ref, "pip install\n"), "AppendImageLog")
	mustOK(t, s.AppendImageLog(ctx, "ws", ref, "done\n"), "AppendImageLog")
	if log, err := s.ImageLog(ctx, "ws", ref, 0); err != nil || log != "pip install\ndone\n" {
		t.Errorf("ImageLog = %q, %v", log, err)
	}
	if log, _ := s.ImageLog(ctx, "ws", ref, 12); log != "done\n" {
		t.Errorf("ImageLog from 12 = %q", log)
	}
	if err := s.DeleteImage(ctx, "ws", ref); atelier.ErrorCode(err) != atelier.ECONFLICT {
		t.Errorf("deleting an image being built: %v, want ECONFLICT", err)
	}
	res := &atelier.ImageBuildResult{Digest: "sha256:abc", Size: 123, Layers: []atelier.ImageLayer{{Name: "deps", Digest: "sha256:d", Size: 100, Cached: true}}}
	done, err := s.EndImageBuild(ctx, "ws", ref, res, "")
	mustOK(t, err, "EndImageBuild")
	if done.Status != atelier.ImageSucceeded || done.Digest != "sha256:abc" || done.EndedAt == nil || len(done.Layers) != 1 {
		t.Errorf("ended image %+v", done)
	}
	if _, err := s.EndImageBuild(ctx, "ws", ref, nil, "again"); atelier.ErrorCode(err) != atelier.ECONFLICT {
		t.Errorf("ending a build twice: %v, want ECONFLICT", err)
	}
	failed, err := s.EndImageBuild(ctx, "ws", atelier.ImageRef{Name: "svc", Version: 2}, nil, "pip install failed: no such package")
	mustOK(t, err, "EndImageBuild failed")
	if failed.Status != atelier.ImageFailed || failed.Error != "pip install failed: no such package" {
		t.Errorf("failed image %+v", failed)
	}
	// A build whose builder died goes back to the queue.
	mustOK(t, s.RequeueImage(ctx, "ws", atelier.ImageRef{Name: "svc", Version: 3}), "RequeueImage")
	if err := s.RequeueImage(ctx, "ws", ref); atelier.ErrorCode(err) != atelier.ECONFLICT {
		t.Errorf("requeueing an ended build: %v, want ECONFLICT", err)
	}
	again, err := s.ClaimImages(ctx, "d", 10, expires)
	mustOK(t, err, "ClaimImages after a requeue")
	if len(again) != 1 || again[0].Version != 3 {
		t.Errorf("claimed after the requeue: %d images", len(again))
	}

	// Deleting every image that uses the model version frees it.
	if err := s.DeleteImage(ctx, "ws", atelier.ImageRef{Name: "svc"}); atelier.ErrorCode(err) != atelier.EINVALID {
		t.Errorf("DeleteImage without a version: %v, want EINVALID", err)
	}
	for v := int64(1); v <= 8; v++ {
		r := atelier.ImageRef{Name: "svc", Version: v}
		if img, _ := s.FindImage(ctx, "ws", r); img != nil && img.Status == atelier.ImageBuilding {
			_, err := s.EndImageBuild(ctx, "ws", r, nil, "stopped")
			mustOK(t, err, "EndImageBuild")
		}
		mustOK(t, s.DeleteImage(ctx, "ws", r), "DeleteImage")
	}
	if _, err := s.FindImage(ctx, "ws", ref); atelier.ErrorCode(err) != atelier.ENOTFOUND {
		t.Errorf("a deleted image: %v, want ENOTFOUND", err)
	}
	mustOK(t, s.DeleteModelVersion(ctx, "ws", atelier.ModelRef{Name: "diabetes", Version: m1.Version}), "DeleteModelVersion once no image uses it")
	// Numbers are never given twice.
	img := spec("svc", nil)
	img.Models = nil
	mustOK(t, s.CreateImage(ctx, "ws", img), "CreateImage after deletes")
	if img.Version != 9 {
		t.Errorf("version after deleting 1-8: %d, want 9", img.Version)
	}
}

func itoa(v int64) string { return strconv.FormatInt(v, 10) }
