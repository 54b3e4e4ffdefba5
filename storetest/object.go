package storetest

import (
	"fmt"
	"testing"

	"github.com/atelier-ml/atelier"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// testObjects: content is stored once for the whole server, but a workspace may use only what
// it holds (atelier.Store.MissingObjects). Knowing a digest is not holding it; holding is per
// workspace and idempotent, and it ends with the workspace.
func testObjects(t *testing.T, open func(t *testing.T) atelier.Store) {
	s := open(t)
	ctx := Context(t)
	MustCreateWorkspace(t, s, "a")
	MustCreateWorkspace(t, s, "b")
	obj := func(content string) atelier.Object {
		return atelier.Object{Digest: digestOf(content), Size: int64(len(content))}
	}
	x, y, z, m := obj("x"), obj("y"), obj("z"), obj("model file")
	hold := func(ws string, objs ...atelier.Object) {
		t.Helper()
		mustOK(t, s.HoldObjects(ctx, ws, objs), "HoldObjects(%s, %d objects)", ws, len(objs))
	}
	// missing checks MissingObjects(ws, asked) returns want, in the order asked.
	missing := func(what, ws string, asked []atelier.Object, want ...atelier.Object) {
		t.Helper()
		got, err := s.MissingObjects(ctx, ws, digests(asked))
		mustOK(t, err, "MissingObjects(%s)", ws)
		if diff := cmp.Diff(digests(want), got, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("%s: MissingObjects(%s) (-want +got):\n%s", what, ws, diff)
		}
	}
	all := []atelier.Object{x, y, z, m}

	missing("a new workspace", "a", all, all...)
	missing("asking for nothing", "a", nil)

	hold("a", x, y)
	missing("after holding x and y", "a", []atelier.Object{z, y, m, x}, z, m)
	missing("another workspace knowing the digests", "b", all, all...)

	// Holding again, or twice in one call, is no error and changes nothing.
	hold("a", x, x)
	hold("a", y)
	hold("a")
	missing("after holding again", "a", all, z, m)

	// A second workspace holding the same content holds it for itself only.
	hold("b", y)
	missing("b after holding y", "b", all, x, z, m)
	missing("a after b held y", "a", all, z, m)

	// Registering a model makes its workspace hold the model's files, and no other.
	MustRegisterModel(t, s, "a", &atelier.ModelVersion{Name: "net",
		Files: []atelier.ModelFile{{Path: "model.pkl", Digest: m.Digest, Size: m.Size}}})
	missing("a after registering a model", "a", all, z)
	missing("b after a registered a model", "b", all, x, z, m)

	// No workspace, nothing held.
	wantCode(t, s.HoldObjects(ctx, "nope", []atelier.Object{x}), atelier.ENOTFOUND, "HoldObjects(missing workspace)")
	_, err := s.MissingObjects(ctx, "nope", digests(all))
	wantCode(t, err, atelier.ENOTFOUND, "MissingObjects(missing workspace)")

	// Deleting a workspace releases what it held, and only that: a workspace created again
	// under the name starts with nothing.
	mustOK(t, s.DeleteWorkspace(ctx, "a", true), "DeleteWorkspace(a)")
	missing("b after a was deleted", "b", all, x, z, m)
	MustCreateWorkspace(t, s, "a")
	missing("a created again", "a", all, all...)
	MustCreateWorkspace(t, s, "nope")
	missing("a workspace held for before it existed", "nope", all, all...)

	// Many digests at once (a snapshot of a large source tree): still exact and in order.
	var many, held, notHeld []atelier.Object
	for i := range 1200 {
		o := obj(fmt.Sprintf("file %d", i))
		many = append(many, o)
		if i%3 == 0 {
			held = append(held, o)
		} else {
			notHeld = append(notHeld, o)
		}
	}
	hold("b", held...)
	missing("after holding every third of many", "b", many, notHeld...)
	missing("another workspace asking for many", "a", many, many...)
}

func digests(objs []atelier.Object) []string {
	out := make([]string, len(objs))
	for i, o := range objs {
		out[i] = o.Digest
	}
	return out
}
