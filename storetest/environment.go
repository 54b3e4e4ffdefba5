package storetest

import (
	"encoding/json"
	"testing"

	"github.com/atelier-ml/atelier"
)

// testEnvironments runs the environments' part of the conformance suite: versions count from 1
// per name and workspace, specs and hashes come back as stored, the latest is version 0, and
// deletion of one or every version.
func testEnvironments(t *testing.T, open func(t *testing.T) atelier.Store) {
	ctx := Context(t)
	s := open(t)
	MustCreateWorkspace(t, s, "ws")
	MustCreateWorkspace(t, s, "other")
	mk := func(ws, name, spec string) *atelier.Environment {
		t.Helper()
		e := &atelier.Environment{Workspace: ws, Name: name, Spec: json.RawMessage(spec), SpecHash: "sha256:" + spec,
			Tags: map[string]string{"k": "v"}, Description: "d", CreatedBy: "tester"}
		if err := s.CreateEnvironmentVersion(ctx, e); err != nil {
			t.Fatal(err)
		}
		return e
	}
	e1 := mk("ws", "sk", `{"pip":["a"]}`)
	e2 := mk("ws", "sk", `{"pip":["b"]}`)
	o1 := mk("other", "sk", `{}`)
	mk("ws", "alpha", `{}`)
	if e1.Version != 1 || e2.Version != 2 || o1.Version != 1 {
		t.Fatalf("versions %d %d %d", e1.Version, e2.Version, o1.Version)
	}
	got, err := s.FindEnvironment(ctx, "ws", "sk", 0)
	if err != nil || got.Version != 2 || string(got.Spec) != `{"pip":["b"]}` || got.SpecHash != `sha256:{"pip":["b"]}` ||
		got.Tags["k"] != "v" || got.Description != "d" || got.CreatedBy != "tester" || !got.CreatedAt.Equal(e2.CreatedAt) {
		t.Fatalf("latest = %+v, %v", got, err)
	}
	if got, err := s.FindEnvironment(ctx, "ws", "sk", 1); err != nil || string(got.Spec) != `{"pip":["a"]}` {
		t.Fatalf("version 1 = %+v, %v", got, err)
	}
	if _, err := s.FindEnvironment(ctx, "ws", "sk", 3); atelier.ErrorCode(err) != atelier.ENOTFOUND {
		t.Errorf("version 3: %v", err)
	}
	if list, err := s.ListEnvironments(ctx, "ws"); err != nil || len(list) != 2 || list[0].Name != "alpha" || list[1].Version != 2 {
		t.Fatalf("ListEnvironments = %+v, %v", list, err)
	}
	if vs, err := s.ListEnvironmentVersions(ctx, "ws", "sk"); err != nil || len(vs) != 2 || vs[0].Version != 1 {
		t.Fatalf("ListEnvironmentVersions = %+v, %v", vs, err)
	}
	if err := s.DeleteEnvironment(ctx, "ws", "sk", 1); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteEnvironment(ctx, "ws", "sk", 1); atelier.ErrorCode(err) != atelier.ENOTFOUND {
		t.Errorf("deleting it again: %v", err)
	}
	if err := s.DeleteEnvironment(ctx, "ws", "sk", 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ListEnvironmentVersions(ctx, "ws", "sk"); atelier.ErrorCode(err) != atelier.ENOTFOUND {
		t.Errorf("versions of a deleted environment: %v", err)
	}
	if _, err := s.FindEnvironment(ctx, "other", "sk", 0); err != nil {
		t.Errorf("the other workspace's environment: %v", err)
	}
}
