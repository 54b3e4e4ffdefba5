package storetest

import (
	"bytes"
	"testing"

	"github.com/atelier-ml/atelier"
)

// testSecrets runs the vault's part of the conformance suite: sealed values come back as
// stored, listings never carry them, and a secret belongs to one workspace.
func testSecrets(t *testing.T, open func(t *testing.T) atelier.Store) {
	ctx := Context(t)
	s := open(t)
	MustCreateWorkspace(t, s, "ws")
	MustCreateWorkspace(t, s, "other")

	sealed := []byte{1, 0, 255, 7}
	first, err := s.PutSecret(ctx, "ws", "API_KEY", sealed)
	if err != nil {
		t.Fatal(err)
	}
	if first.Name != "API_KEY" || first.Workspace != "ws" || first.CreatedBy != "tester" || first.CreatedAt.IsZero() ||
		!first.UpdatedAt.Equal(first.CreatedAt) {
		t.Errorf("PutSecret = %+v", first)
	}
	if got, err := s.SealedSecret(ctx, "ws", "API_KEY"); err != nil || !bytes.Equal(got, sealed) {
		t.Errorf("SealedSecret = %v, %v; want %v", got, err, sealed)
	}

	// Replacing keeps the creation's date and author.
	other := atelier.NewContextWithPrincipal(ctx, &atelier.Principal{Kind: atelier.PrincipalUser, Name: "ana"})
	second, err := s.PutSecret(other, "ws", "API_KEY", []byte{9})
	if err != nil {
		t.Fatal(err)
	}
	if !second.CreatedAt.Equal(first.CreatedAt) || second.CreatedBy != "tester" || second.UpdatedAt.Before(first.UpdatedAt) {
		t.Errorf("replaced secret = %+v, first %+v", second, first)
	}
	if got, _ := s.SealedSecret(ctx, "ws", "API_KEY"); !bytes.Equal(got, []byte{9}) {
		t.Errorf("SealedSecret after replacing = %v, want [9]", got)
	}

	// Listed by name, per workspace.
	if _, err := s.PutSecret(ctx, "ws", "AAA", []byte{2}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutSecret(ctx, "other", "API_KEY", []byte{3}); err != nil {
		t.Fatal(err)
	}
	list, err := s.ListSecrets(ctx, "ws")
	if err != nil || len(list) != 2 || list[0].Name != "AAA" || list[1].Name != "API_KEY" || list[1].Workspace != "ws" {
		t.Fatalf("ListSecrets = %+v, %v", list, err)
	}
	if got, _ := s.SealedSecret(ctx, "other", "API_KEY"); !bytes.Equal(got, []byte{3}) {
		t.Errorf("the other workspace's secret = %v, want [3]", got)
	}

	// Not found: a missing secret, a missing workspace.
	for _, tc := range []struct{ ws, name string }{{"ws", "NOPE"}, {"nows", "API_KEY"}} {
		if _, err := s.SealedSecret(ctx, tc.ws, tc.name); atelier.ErrorCode(err) != atelier.ENOTFOUND {
			t.Errorf("SealedSecret(%s, %s): %v, want ENOTFOUND", tc.ws, tc.name, err)
		}
		if err := s.DeleteSecret(ctx, tc.ws, tc.name); atelier.ErrorCode(err) != atelier.ENOTFOUND {
			t.Errorf("DeleteSecret(%s, %s): %v, want ENOTFOUND", tc.ws, tc.name, err)
		}
	}
	if _, err := s.PutSecret(ctx, "nows", "X", []byte{1}); atelier.ErrorCode(err) != atelier.ENOTFOUND {
		t.Errorf("PutSecret in a missing workspace: %v, want ENOTFOUND", err)
	}
	if _, err := s.ListSecrets(ctx, "nows"); atelier.ErrorCode(err) != atelier.ENOTFOUND {
		t.Errorf("ListSecrets of a missing workspace: %v, want ENOTFOUND", err)
	}
	for _, name := range []string{"", "1ABC", "A-B", "ATELIER_TOKEN"} {
		if _, err := s.PutSecret(ctx, "ws", name, []byte{1}); atelier.ErrorCode(err) != atelier.EINVALID {
			t.Errorf("PutSecret(%q): %v, want EINVALID", name, err)
		}
	}

	// Deleted: gone from the list, from its workspace only.
	if err := s.DeleteSecret(ctx, "ws", "API_KEY"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SealedSecret(ctx, "ws", "API_KEY"); atelier.ErrorCode(err) != atelier.ENOTFOUND {
		t.Errorf("SealedSecret after delete: %v, want ENOTFOUND", err)
	}
	if list, _ := s.ListSecrets(ctx, "ws"); len(list) != 1 {
		t.Errorf("ListSecrets after delete = %+v", list)
	}
	if _, err := s.SealedSecret(ctx, "other", "API_KEY"); err != nil {
		t.Errorf("the other workspace's secret after delete: %v", err)
	}

	// Deleting a workspace deletes its secrets: a new workspace of that name starts empty.
	if err := s.DeleteWorkspace(ctx, "other", true); err != nil {
		t.Fatal(err)
	}
	MustCreateWorkspace(t, s, "other")
	if list, err := s.ListSecrets(ctx, "other"); err != nil || len(list) != 0 {
		t.Errorf("ListSecrets of a re-created workspace = %+v, %v; want none", list, err)
	}
}
