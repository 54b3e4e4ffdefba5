package storetest

import (
	"bytes"
	"testing"

	"github.com/atelier-ml/atelier"
)

// testWebServices: services are unique by name in their workspace, keep their images,
// configuration, tags and sealed keys, report the controller's state without counting it as a
// change, keep the images they serve from deletion, and go with their lease.
func testWebServices(t *testing.T, open func(t *testing.T) atelier.Store) {
	s := open(t)
	ctx := Context(t)
	MustCreateWorkspace(t, s, "ws")
	MustCreateWorkspace(t, s, "other")
	img := &atelier.Image{Name: "svc-img", Models: []atelier.ImageModel{}, EntryScript: "score.py", SnapshotID: "snap1"}
	mustOK(t, s.CreateImage(ctx, "ws", img), "CreateImage")
	ref := atelier.ImageRef{Name: "svc-img", Version: img.Version}
	_, err := s.EndImageBuild(ctx, "ws", ref, &atelier.ImageBuildResult{Digest: "sha256:" + string(bytes.Repeat([]byte("ab"), 32)), Size: 1 << 20}, "")
	mustOK(t, err, "EndImageBuild")

	cfg := atelier.WebServiceConfig{AuthEnabled: true, MinReplicas: 1, MaxReplicas: 4, AutoscaleEnabled: true}
	cfg.Fill()
	svc := &atelier.WebService{Name: "diabetes", Target: "local", Description: "first",
		Images: []atelier.ServiceImage{{Image: "svc-img:" + itoa(img.Version), Percent: 100}}, Config: cfg,
		Tags: map[string]string{"team": "risk", "tier": "gold"}, State: atelier.ServiceTransitioning}
	mustOK(t, s.CreateWebService(ctx, "ws", svc, []byte("sealed-1")), "CreateWebService")
	wantCode(t, s.CreateWebService(ctx, "ws", &atelier.WebService{Name: "diabetes", Target: "local", Images: svc.Images, Config: cfg}, nil),
		atelier.ECONFLICT, "CreateWebService(a taken name)")
	wantCode(t, s.CreateWebService(ctx, "ws", &atelier.WebService{Name: "Bad Name!", Target: "local", Images: svc.Images, Config: cfg}, nil),
		atelier.EINVALID, "CreateWebService(a bad name)")

	got, err := s.FindWebService(ctx, "ws", "diabetes")
	mustOK(t, err, "FindWebService")
	if got.Workspace != "ws" || got.Description != "first" || got.Target != "local" || got.State != atelier.ServiceTransitioning ||
		len(got.Images) != 1 || got.Images[0] != svc.Images[0] || got.Config != cfg ||
		got.Tags["team"] != "risk" || got.Tags["tier"] != "gold" || len(got.Tags) != 2 || got.CreatedBy != "tester" {
		t.Errorf("FindWebService = %+v, want what was created: %+v", got, svc)
	}
	_, err = s.FindWebService(ctx, "other", "diabetes")
	wantCode(t, err, atelier.ENOTFOUND, "FindWebService(another workspace)")
	keys, err := s.WebServiceKeys(ctx, "ws", "diabetes")
	if err != nil || string(keys) != "sealed-1" {
		t.Errorf("WebServiceKeys = %q, %v; want the sealed keys given", keys, err)
	}
	mustOK(t, s.SetWebServiceKeys(ctx, "ws", "diabetes", []byte("sealed-2")), "SetWebServiceKeys")
	if keys, _ := s.WebServiceKeys(ctx, "ws", "diabetes"); string(keys) != "sealed-2" {
		t.Errorf("WebServiceKeys after SetWebServiceKeys = %q", keys)
	}

	for _, tc := range []struct {
		ws   string
		want int
	}{{"ws", 1}, {"other", 0}, {"", 1}} {
		list, err := s.ListWebServices(ctx, tc.ws)
		mustOK(t, err, "ListWebServices(%q)", tc.ws)
		if len(list) != tc.want || (tc.want == 1 && (list[0].Name != "diabetes" || list[0].Tags["team"] != "risk")) {
			t.Errorf("ListWebServices(%q) = %d services (%v), want %d", tc.ws, len(list), list, tc.want)
		}
	}

	// The controller's state is not a change of what is wanted.
	before, _ := s.FindWebService(ctx, "ws", "diabetes")
	mustOK(t, s.SetWebServiceState(ctx, "ws", "diabetes", atelier.ServiceFailed, "replica 0 exited"), "SetWebServiceState")
	after, _ := s.FindWebService(ctx, "ws", "diabetes")
	if after.State != atelier.ServiceFailed || after.Error != "replica 0 exited" || !after.UpdatedAt.Equal(before.UpdatedAt) {
		t.Errorf("after SetWebServiceState: state %q error %q updated %v (was %v)", after.State, after.Error, after.UpdatedAt, before.UpdatedAt)
	}
	wantCode(t, s.SetWebServiceState(ctx, "ws", "nosuch", atelier.ServiceFailed, ""), atelier.ENOTFOUND, "SetWebServiceState(no service)")

	// An update replaces the tags.
	after.Description, after.Tags = "second", map[string]string{"team": "fraud"}
	mustOK(t, s.UpdateWebService(ctx, "ws", after), "UpdateWebService")
	if got, _ := s.FindWebService(ctx, "ws", "diabetes"); got.Description != "second" || len(got.Tags) != 1 || got.Tags["team"] != "fraud" {
		t.Errorf("after UpdateWebService: %+v", got)
	}

	// The image it serves stays until the service goes.
	wantCode(t, s.DeleteImage(ctx, "ws", ref), atelier.ECONFLICT, "DeleteImage(a served image)")
	mustOK(t, s.DeleteWebService(ctx, "ws", "diabetes"), "DeleteWebService")
	_, err = s.FindWebService(ctx, "ws", "diabetes")
	wantCode(t, err, atelier.ENOTFOUND, "FindWebService(deleted)")
	wantCode(t, s.DeleteWebService(ctx, "ws", "diabetes"), atelier.ENOTFOUND, "DeleteWebService(deleted)")
	mustOK(t, s.DeleteImage(ctx, "ws", ref), "DeleteImage(no longer served)")
}
