package storetest

import (
	"sync"
	"testing"

	"github.com/atelier-ml/atelier"
	"github.com/google/go-cmp/cmp"
)

// testModelRecords covers a model's own record: created with no version, described and tagged,
// renamed in one transaction.
func testModelRecords(t *testing.T, open func(t *testing.T) atelier.Store) {
	t.Run("CreateWithoutVersion", func(t *testing.T) {
		s := open(t)
		ctx := Context(t)
		MustCreateWorkspace(t, s, "ws")
		m, err := s.CreateModel(ctx, "ws", atelier.ModelCreate{Name: "empty", Description: "about", Tags: map[string]string{"team": "a"}})
		mustOK(t, err, "CreateModel")
		if m.Name != "empty" || m.VersionCount != 0 || m.LatestVersion != 0 || m.Description != "about" || m.CreatedAt.IsZero() {
			t.Errorf("CreateModel = %+v, want an empty model described about", m)
		}
		if diff := cmp.Diff(map[string]string{"team": "a"}, m.Tags); diff != "" {
			t.Errorf("tags (-want +got):\n%s", diff)
		}
		_, err = s.CreateModel(ctx, "ws", atelier.ModelCreate{Name: "empty"})
		wantCode(t, err, atelier.ECONFLICT, "CreateModel(taken)")
		_, err = s.CreateModel(ctx, "ws", atelier.ModelCreate{Name: "bad/name"})
		wantCode(t, err, atelier.EINVALID, "CreateModel(bad name)")
		list, err := s.ListModels(ctx, "ws", atelier.ModelQuery{})
		mustOK(t, err, "ListModels")
		if len(list.Models) != 1 || list.Models[0].Name != "empty" || list.Models[0].Tags["team"] != "a" {
			t.Errorf("ListModels = %+v, want the empty model with its tags", list.Models)
		}
		// Its first version is 1, and deleting it leaves the model.
		v := MustRegisterModel(t, s, "ws", &atelier.ModelVersion{Name: "empty"})
		if v.Version != 1 {
			t.Errorf("first version of a created model = %d, want 1", v.Version)
		}
		mustOK(t, s.DeleteModelVersion(ctx, "ws", v.Ref()), "DeleteModelVersion")
		if got, err := s.FindModel(ctx, "ws", "empty"); err != nil || got.VersionCount != 0 || got.Description != "about" {
			t.Errorf("FindModel after deleting its only version = %+v, %v; want it kept", got, err)
		}
		mustOK(t, s.DeleteModel(ctx, "ws", "empty"), "DeleteModel(no versions)")
		_, err = s.FindModel(ctx, "ws", "empty")
		wantCode(t, err, atelier.ENOTFOUND, "FindModel after DeleteModel")
		// Created again, it is a new model: no old tags.
		m2, err := s.CreateModel(ctx, "ws", atelier.ModelCreate{Name: "empty"})
		mustOK(t, err, "CreateModel(again)")
		if len(m2.Tags) != 0 || m2.Description != "" {
			t.Errorf("recreated model = %+v, want no description or tags", m2)
		}
		// A name whose model went with its last version may be created.
		gone := MustRegisterModel(t, s, "ws", &atelier.ModelVersion{Name: "gone"})
		mustOK(t, s.DeleteModelVersion(ctx, "ws", gone.Ref()), "DeleteModelVersion(gone)")
		if _, err := s.CreateModel(ctx, "ws", atelier.ModelCreate{Name: "gone"}); err != nil {
			t.Errorf("CreateModel of a name whose model went with its versions: %v", err)
		}
	})

	t.Run("Update", func(t *testing.T) {
		s := open(t)
		ctx := Context(t)
		MustCreateWorkspace(t, s, "ws")
		MustRegisterModel(t, s, "ws", &atelier.ModelVersion{Name: "m"})
		m, err := s.UpdateModel(ctx, "ws", "m", atelier.ModelUpdate{Description: ptr("d"), Tags: map[string]string{"a": "1", "b": "2"}})
		mustOK(t, err, "UpdateModel")
		if m.Description != "d" || len(m.Tags) != 2 || m.VersionCount != 1 {
			t.Errorf("UpdateModel = %+v, want description d, tags a and b, 1 version", m)
		}
		m, err = s.UpdateModel(ctx, "ws", "m", atelier.ModelUpdate{Tags: map[string]string{"a": "3"}, DeleteTags: []string{"b"}})
		mustOK(t, err, "UpdateModel(tags)")
		if diff := cmp.Diff(map[string]string{"a": "3"}, m.Tags); diff != "" || m.Description != "d" {
			t.Errorf("UpdateModel tags (-want +got):\n%s; description %q", diff, m.Description)
		}
		_, err = s.UpdateModel(ctx, "ws", "m", atelier.ModelUpdate{Tags: map[string]string{"a": "4"}, DeleteTags: []string{"b"}})
		wantCode(t, err, atelier.ENOTFOUND, "UpdateModel(delete a missing tag)")
		if got, _ := s.FindModel(ctx, "ws", "m"); got == nil || got.Tags["a"] != "3" {
			t.Errorf("a refused update changed the model: %+v", got)
		}
		_, err = s.UpdateModel(ctx, "ws", "missing", atelier.ModelUpdate{Description: ptr("x")})
		wantCode(t, err, atelier.ENOTFOUND, "UpdateModel(missing)")
		// Described, it outlives its last version.
		mustOK(t, s.DeleteModelVersion(ctx, "ws", atelier.ModelRef{Name: "m", Version: 1}), "DeleteModelVersion")
		if got, err := s.FindModel(ctx, "ws", "m"); err != nil || got.Description != "d" {
			t.Errorf("described model after its last version = %+v, %v; want it kept", got, err)
		}
	})

	t.Run("Rename", func(t *testing.T) {
		s := open(t)
		ctx := Context(t)
		MustCreateWorkspace(t, s, "ws")
		v1 := MustRegisterModel(t, s, "ws", &atelier.ModelVersion{Name: "old"})
		MustRegisterModel(t, s, "ws", &atelier.ModelVersion{Name: "old"})
		mustOK(t, s.DeleteModelVersion(ctx, "ws", atelier.ModelRef{Name: "old", Version: 2}), "DeleteModelVersion(2)")
		MustRegisterModel(t, s, "ws", &atelier.ModelVersion{Name: "old"}) // version 3: numbers with a gap
		_, err := s.SetModelAlias(ctx, "ws", "old", "prod", 1)
		mustOK(t, err, "SetModelAlias")
		_, err = s.UpdateModel(ctx, "ws", "old", atelier.ModelUpdate{Tags: map[string]string{"k": "v"}})
		mustOK(t, err, "UpdateModel")
		// In use: renaming is still allowed, and the reference follows.
		mustOK(t, s.AddModelReference(ctx, "ws", atelier.ModelReference{Kind: "image", ID: "img", Name: "old", Version: 1}), "AddModelReference")
		before, err := s.FindModel(ctx, "ws", "old")
		mustOK(t, err, "FindModel")
		m, err := s.RenameModel(ctx, "ws", "old", "new")
		mustOK(t, err, "RenameModel")
		if m.Name != "new" || m.VersionCount != 2 || m.LatestVersion != 3 || m.Aliases["prod"] != 1 || m.Tags["k"] != "v" ||
			!m.CreatedAt.Equal(before.CreatedAt) {
			t.Errorf("renamed = %+v, want 2 versions up to 3, alias prod → 1, tag k, creation time %v", m, before.CreatedAt)
		}
		_, err = s.FindModel(ctx, "ws", "old")
		wantCode(t, err, atelier.ENOTFOUND, "FindModel(old name)")
		got, err := s.FindModelVersion(ctx, "ws", atelier.ModelRef{Name: "new", Version: 1})
		mustOK(t, err, "FindModelVersion(new:1)")
		if !got.CreatedAt.Equal(v1.CreatedAt) || len(got.Files) != 1 {
			t.Errorf("new:1 = %+v, want the old version 1 with its creation time and files", got)
		}
		refs, err := s.ListModelReferences(ctx, "ws", atelier.ModelRef{Name: "new"})
		mustOK(t, err, "ListModelReferences")
		if len(refs) != 1 || refs[0].ID != "img" {
			t.Errorf("references after rename = %+v, want the image's", refs)
		}
		v4 := MustRegisterModel(t, s, "ws", &atelier.ModelVersion{Name: "new"})
		if v4.Version != 4 {
			t.Errorf("next version after rename = %d, want 4 (numbering kept)", v4.Version)
		}
		MustRegisterModel(t, s, "ws", &atelier.ModelVersion{Name: "other"})
		for _, tc := range []struct {
			name, from, to, code string
		}{
			{"taken", "new", "other", atelier.ECONFLICT},
			{"missing", "nope", "x", atelier.ENOTFOUND},
			{"bad name", "new", "a/b", atelier.EINVALID},
			{"same", "new", "new", atelier.EINVALID},
		} {
			_, err := s.RenameModel(ctx, "ws", tc.from, tc.to)
			wantCode(t, err, tc.code, "RenameModel(%s)", tc.name)
		}
	})

	t.Run("ConcurrentRenames", func(t *testing.T) {
		s := open(t)
		ctx := Context(t)
		MustCreateWorkspace(t, s, "ws")
		MustRegisterModel(t, s, "ws", &atelier.ModelVersion{Name: "a"})
		MustRegisterModel(t, s, "ws", &atelier.ModelVersion{Name: "b"})
		// a→c and b→c at once: exactly one wins, the other model keeps its name.
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i, from := range []string{"a", "b"} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = s.RenameModel(ctx, "ws", from, "c")
			}()
		}
		wg.Wait()
		if (errs[0] == nil) == (errs[1] == nil) {
			t.Fatalf("two concurrent renames to one name: %v, %v; want exactly one to succeed", errs[0], errs[1])
		}
		for _, err := range errs {
			if err != nil {
				wantCode(t, err, atelier.ECONFLICT, "the losing rename")
			}
		}
		list, err := s.ListModels(ctx, "ws", atelier.ModelQuery{})
		mustOK(t, err, "ListModels")
		var names []string
		for _, m := range list.Models {
			names = append(names, m.Name)
		}
		if len(names) != 2 || names[1] != "c" || (names[0] != "a" && names[0] != "b") {
			t.Errorf("models after two concurrent renames = %v, want one of a, b and c", names)
		}
	})
}
