package api_test

import (
	"strings"
	"testing"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/api"
)

// TestDatasetRunToken: a run's script registers the files its run produced as a dataset (Azure
// ML's output datasets): its token may, naming its run, and the version records the run; with
// no run, or another run, or to delete, it is refused with what a run's token may do; a run
// that does not exist is a 400.
func TestDatasetRunToken(t *testing.T) {
	s := MustStack(t)
	ctx := Ctx(t)
	run := MustRun(t, s.Client, atelier.RunCreate{})
	other := MustRun(t, s.Client, atelier.RunCreate{})
	if _, err := s.Client.WriteDatastoreFile(ctx, "default", atelier.DefaultDatastore, "out/predictions.csv", strings.NewReader("y\n1\n"), "", ""); err != nil {
		t.Fatal(err)
	}
	tok, err := s.Service.CreateToken(atelier.NewContextWithPrincipal(ctx, &atelier.Principal{Kind: atelier.PrincipalAdmin, Name: "admin"}),
		&atelier.Token{Name: "run", Kind: atelier.PrincipalRun, Owner: "run", Workspace: "default", RunID: run.ID})
	if err != nil {
		t.Fatal(err)
	}
	rc := api.NewClient(s.Server.URL, tok.Secret)
	reg := func(name, runID string) atelier.DatasetRegister {
		return atelier.DatasetRegister{Name: name, Type: atelier.DatasetFile, RunID: runID,
			Paths: []atelier.DatasetPath{{Datastore: atelier.DefaultDatastore, Path: "out/predictions.csv"}}}
	}
	d, err := rc.RegisterDataset(ctx, "default", reg("predictions", run.ID))
	if err != nil || d.Version != 1 || d.RunID != run.ID {
		t.Fatalf("a run registering its output: %+v, %v", d, err)
	}
	if got, err := s.Client.FindDataset(ctx, "default", "predictions", 1); err != nil || got.RunID != run.ID {
		t.Errorf("the registered version read back: %+v, %v; want run_id %s", got, err, run.ID)
	}
	for name, r := range map[string]atelier.DatasetRegister{"no run": reg("p2", ""), "another run": reg("p3", other.ID)} {
		_, err := rc.RegisterDataset(ctx, "default", r)
		MustCode(t, err, atelier.EFORBIDDEN)
		if !strings.Contains(atelier.ErrorMessage(err), "registering models and datasets from its run's files") {
			t.Errorf("%s: %q does not say what a run's token may do", name, atelier.ErrorMessage(err))
		}
	}
	MustCode(t, rc.DeleteDataset(ctx, "default", "predictions", 1), atelier.EFORBIDDEN)
	// A user names a run that does not exist: the field and the run are named.
	_, err = s.Client.RegisterDataset(ctx, "default", reg("p4", "0123456789abcdef0123456789abcdef"))
	MustCode(t, err, atelier.EINVALID)
	if msg := atelier.ErrorMessage(err); !strings.Contains(msg, "run_id: run \"0123456789abcdef0123456789abcdef\" not found") {
		t.Errorf("a missing run: %q", msg)
	}
}
