package ui_test

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/compute/local"
	"github.com/atelier-ml/atelier/server"
	"github.com/atelier-ml/atelier/server/servertest"
	"github.com/atelier-ml/atelier/service"
	"github.com/chromedp/chromedp"
)

// submitted is a run submitted with a snapshot and a run configuration reading a datastore
// file and writing a folder, under a parent, with a model registered from it.
type submitted struct {
	s      *servertest.Stack
	ctx    context.Context
	parent *atelier.Run
	run    *atelier.Run
}

func newSubmitted(t *testing.T) *submitted {
	t.Helper()
	// A local target to submit to; without the scheduler the runs stay queued.
	s := servertest.New(t, servertest.WithoutScheduler(), servertest.WithLocalCompute(func(_ context.Context, m server.Machine) (*service.Target, error) {
		ex := &local.Executor{WorkDir: filepath.Join(m.DataDir, "work"), Envs: &local.EnvCache{Dir: filepath.Join(m.DataDir, "envs")}}
		return &service.Target{Name: "local", Kind: "local", MaxConcurrentRuns: 1, Executor: ex}, nil
	}))
	ctx := atelier.NewContextWithPrincipal(context.Background(), &atelier.Principal{Kind: atelier.PrincipalAdmin, Name: "admin"})
	c := s.Client
	if _, err := c.WriteDatastoreFile(ctx, "default", "default", "data/train.csv", strings.NewReader("a,b\n1,2\n"), "", ""); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, _ := zw.Create("train.py")
	io.WriteString(w, "print('hello')\n")
	zw.Close()
	snap, err := s.Service.UploadSnapshotZip(ctx, "default", &buf)
	if err != nil {
		t.Fatal(err)
	}
	run, err := s.Service.SubmitRun(ctx, "default", atelier.RunSubmit{Experiment: "lineage", Name: "trainer", SnapshotID: snap.ID,
		Config: atelier.RunConfig{Script: "train.py", Arguments: []string{"--epochs", "3"}, Data: []atelier.DataReference{
			{Name: "train", Datastore: "default", Path: "data/train.csv"},
			{Name: "results", Datastore: "default", Path: "results/", Mode: atelier.DataUpload}}}})
	if err != nil {
		t.Fatal(err)
	}
	parent, err := c.CreateRun(ctx, "default", atelier.RunCreate{Experiment: "lineage", Name: "sweep"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateRun(ctx, "default", atelier.RunCreate{Experiment: "lineage", Name: "trial-1", ParentID: parent.ID}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.UploadFile(ctx, "default", run.ID, "outputs/model.pkl", strings.NewReader("weights"), ""); err != nil {
		t.Fatal(err)
	}
	if _, err := c.RegisterModel(ctx, "default", atelier.ModelRegister{Name: "digits", RunID: run.ID, Path: "outputs/model.pkl"}); err != nil {
		t.Fatal(err)
	}
	for _, u := range []struct {
		name string
		role atelier.Role
	}{{"carl", atelier.RoleContributor}, {"rita", atelier.RoleReader}} {
		if err := c.CreateUser(ctx, &atelier.User{Name: u.name}, password); err != nil {
			t.Fatal(err)
		}
		if _, err := c.ShareWorkspace(ctx, "default", u.name, u.role); err != nil {
			t.Fatal(err)
		}
	}
	return &submitted{s: s, ctx: ctx, parent: parent, run: run}
}

// TestRunLineage: the run page's lineage links the datastore paths of its run configuration
// (to the datastore browser and the file's download), the data sets an MLflow client logged,
// the models registered from it, its parent and its children.
func TestRunLineage(t *testing.T) {
	f := newSubmitted(t)
	s := f.s
	code, body := getAs(t, s, s.Token, "/w/default/runs/"+f.run.ID)
	if code != 200 {
		t.Fatalf("the run page: %d", code)
	}
	lineage := body[strings.Index(body, `id="lineage"`):]
	for _, want := range []string{
		`<a href="/w/default/datastores/default?path=data%2F" class="data-browse">data/train.csv</a>`,
		`href="/api/v1/workspaces/default/datastores/default/files/data/train.csv" download`,
		`<a href="/w/default/datastores/default?path=results%2F" class="data-browse">results/</a>`,
		"<td>reads</td>", "<td>writes</td>",
		`<a href="/w/default/models/digits">digits</a> version 1`,
		"none (a top-level run)",
	} {
		if !strings.Contains(lineage, want) {
			t.Errorf("the lineage lacks %s", want)
		}
	}
	if t.Failed() {
		t.Fatalf("the lineage section:\n%s", lineage)
	}
	// The links lead somewhere: the browser lists the file, the download is its bytes.
	if _, page := getAs(t, s, s.Token, "/w/default/datastores/default?path=data%2F"); !strings.Contains(page, "train.csv") {
		t.Fatal("the data link's folder does not list train.csv")
	}
	if code, data := getAs(t, s, s.Token, "/api/v1/workspaces/default/datastores/default/files/data/train.csv"); code != 200 || data != "a,b\n1,2\n" {
		t.Fatalf("the data download: %d %q", code, data)
	}

	// Parent and children.
	page, err := s.Client.ListRuns(f.ctx, "default", atelier.RunQuery{ParentID: f.parent.ID})
	if err != nil || len(page.Runs) != 1 {
		t.Fatal(page, err)
	}
	child := page.Runs[0]
	_, body = getAs(t, s, s.Token, "/w/default/runs/"+child.ID)
	if !strings.Contains(body, `<a href="/w/default/runs/`+f.parent.ID+`" id="lineage-parent">`) {
		t.Fatal("a child's lineage does not link its parent")
	}
	_, body = getAs(t, s, s.Token, "/w/default/runs/"+f.parent.ID)
	if !strings.Contains(body, `id="lineage-children">1 child runs</a>`) || !strings.Contains(body, `<a href="/w/default/runs/`+child.ID+`">trial-1</a>`) {
		t.Fatal("a parent's lineage does not link its children")
	}

	// Data sets an MLflow client logged as inputs (kept in a hidden tag by the MLflow API).
	inputs := `[{"tags":[{"key":"mlflow.data.context","value":"training"}],"dataset":{"name":"<b>iris</b>","digest":"d1g3st","source_type":"http","source":"{\"url\": \"https://example.com/iris.csv\"}"}}]`
	if err := s.Client.SetTags(f.ctx, "default", child.ID, map[string]string{"mlflow.datasetInputs": inputs}); err != nil {
		t.Fatal(err)
	}
	_, body = getAs(t, s, s.Token, "/w/default/runs/"+child.ID)
	i := strings.Index(body, `id="lineage-datasets"`)
	if i < 0 {
		t.Fatal("no data sets in the lineage")
	}
	for _, want := range []string{"&lt;b&gt;iris&lt;/b&gt;", "training", "d1g3st", "https://example.com/iris.csv"} {
		if !strings.Contains(body[i:], want) {
			t.Errorf("the data sets lack %s", want)
		}
	}
}

// TestRerun: a Contributor re-submits a submitted run from its page: a new run of the same
// snapshot and run configuration, linked to the original (rerun_of), and the answer is the new
// run's page; a Reader sees no button and is refused, a run that was not submitted has none and
// is refused with a 400.
func TestRerun(t *testing.T) {
	f := newSubmitted(t)
	s := f.s
	carl, rita := tokenFor(t, s, "carl"), tokenFor(t, s, "rita")
	page := "/w/default/runs/" + f.run.ID
	if _, body := getAs(t, s, carl, page); !strings.Contains(body, `id="rerun"`) {
		t.Fatal("a Contributor's page of a submitted run has no Re-submit")
	}
	if _, body := getAs(t, s, rita, page); strings.Contains(body, `id="rerun"`) {
		t.Fatal("a Reader is offered Re-submit")
	}
	if _, body := getAs(t, s, carl, "/w/default/runs/"+f.parent.ID); strings.Contains(body, `id="rerun"`) {
		t.Fatal("a run that was not submitted is offered Re-submit")
	}
	if code, _, _ := postAs(t, s, rita, page+"/rerun", nil); code != 403 {
		t.Fatalf("a Reader's re-submit: %d, want 403", code)
	}
	if code, _, body := postAs(t, s, carl, "/w/default/runs/"+f.parent.ID+"/rerun", nil); code != 400 || !strings.Contains(body, "was not submitted") {
		t.Fatalf("re-submitting a run that was not submitted: %d\n%s", code, body)
	}
	if code, _, _ := postAs(t, s, carl, "/w/default/runs/nosuch/rerun", nil); code != 404 {
		t.Fatalf("re-submitting a run that does not exist: %d, want 404", code)
	}
	if page, _ := s.Client.ListRuns(f.ctx, "default", atelier.RunQuery{Experiment: "lineage"}); len(page.Runs) != 3 {
		t.Fatalf("refused re-submits made runs: %d runs", len(page.Runs))
	}
	code, loc, body := postAs(t, s, carl, page+"/rerun", url.Values{})
	if code != 303 || !strings.HasPrefix(loc, "/w/default/runs/") || loc == page {
		t.Fatalf("re-submit: %d to %q\n%s", code, loc, body)
	}
	id := strings.TrimPrefix(loc, "/w/default/runs/")
	again, err := s.Client.FindRun(f.ctx, "default", id)
	if err != nil {
		t.Fatal(err)
	}
	var rc atelier.RunConfig
	if err := json.Unmarshal(again.Config, &rc); err != nil {
		t.Fatal(err)
	}
	if again.SnapshotID != f.run.SnapshotID || again.Experiment != "lineage" || again.Name != "trainer" || again.Compute != f.run.Compute ||
		rc.Script != "train.py" || !slices.Equal(rc.Arguments, []string{"--epochs", "3"}) || len(rc.Data) != 2 ||
		again.Properties["rerun_of"] != f.run.ID || again.CreatedBy != "carl" {
		t.Fatalf("the new run %+v (config %+v) is not the original submitted again by carl", again, rc)
	}
	if _, body := getAs(t, s, carl, loc); !strings.Contains(body, `<a href="/w/default/runs/`+f.run.ID+`" id="lineage-rerun-of">`) {
		t.Fatal("the new run's lineage does not link the original")
	}
}

// TestRerunInBrowser: in Chromium, a Contributor follows the lineage's data link to the
// datastore browser, then re-submits the run and lands on the new run's page.
func TestRerunInBrowser(t *testing.T) {
	b := newBrowser(t)
	f := newSubmitted(t)
	tb := b.tab(f.s.URL)
	page := "/w/default/runs/" + f.run.ID
	tb.open(page)
	tb.login("carl", password)
	tb.run("following the data link", chromedp.Click("#lineage-data a.data-browse", chromedp.ByQuery), chromedp.WaitVisible("#datastore-files", chromedp.ByQuery))
	if got := tb.text("#datastore-files"); !strings.Contains(got, "train.csv") {
		t.Fatalf("the data link's folder: %q", got)
	}
	tb.open(page)
	tb.run("re-submitting", chromedp.Click("#rerun", chromedp.ByQuery))
	tb.waitJS("the new run's page", `location.pathname !== "`+page+`" && location.pathname.startsWith("/w/default/runs/") && !!document.getElementById("lineage-rerun-of")`)
	var href string
	tb.eval(`document.getElementById("lineage-rerun-of").getAttribute("href")`, &href)
	if href != page {
		t.Fatalf("the new run links %q as its original, want %q", href, page)
	}
	id := strings.TrimPrefix(tb.location(), "/w/default/runs/")
	again, err := f.s.Client.FindRun(f.ctx, "default", id)
	if err != nil || again.SnapshotID != f.run.SnapshotID || again.Properties["rerun_of"] != f.run.ID {
		t.Fatalf("the re-submitted run: %+v, %v", again, err)
	}
}
