package ui_test

import (
	"context"
	"net/url"
	"strings"
	"testing"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/server/servertest"
	"github.com/chromedp/chromedp"
)

// newAliasStack is a workspace with a model "digits" of two versions registered from a run,
// and a Contributor carl and a Reader rita.
func newAliasStack(t *testing.T) *servertest.Stack {
	t.Helper()
	s := newMembersStack(t)
	ctx, c := context.Background(), s.Client
	run, err := c.CreateRun(ctx, "default", atelier.RunCreate{Experiment: "models", Name: "trainer"})
	if err != nil {
		t.Fatal(err)
	}
	for i, content := range []string{"weights v1", "weights v2, larger"} {
		p := "outputs/model" + string(rune('1'+i)) + ".pkl"
		if _, err := c.UploadFile(ctx, "default", run.ID, p, strings.NewReader(content), ""); err != nil {
			t.Fatal(err)
		}
		if _, err := c.RegisterModel(ctx, "default", atelier.ModelRegister{Name: "digits", RunID: run.ID, Path: p}); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

func aliasesOf(t *testing.T, s *servertest.Stack) map[string]int64 {
	t.Helper()
	m, err := s.Client.FindModel(context.Background(), "default", "digits")
	if err != nil {
		t.Fatal(err)
	}
	return m.Aliases
}

// TestModelAliases: the models pages show each model's aliases; a version's page shows its
// aliases and files with their downloads; /aliases/{alias} is the page of the version the alias
// points at (resolved when read); a Contributor sets, moves and deletes an alias with the
// pages' forms, bad input is said on the model's page with its status; a Reader sees no forms
// and their posts are 403; a non-member gets 404.
func TestModelAliases(t *testing.T) {
	s := newAliasStack(t)
	carl, rita, olga := tokenFor(t, s, "carl"), tokenFor(t, s, "rita"), tokenFor(t, s, "olga")

	// A Contributor sets @champion on version 1 with the model page's form.
	code, body := getAs(t, s, carl, "/w/default/models/digits")
	if code != 200 || !strings.Contains(body, `id="set-alias"`) || !strings.Contains(body, "No aliases.") {
		t.Fatalf("a Contributor's model page (%d) lacks the alias form:\n%s", code, body)
	}
	code, loc, body := postAs(t, s, carl, "/w/default/models/digits/aliases", url.Values{"alias": {"champion"}, "version": {"1"}})
	if code != 303 || loc != "/w/default/models/digits/aliases/champion" {
		t.Fatalf("setting @champion: %d %s\n%s", code, loc, body)
	}
	if a := aliasesOf(t, s); a["champion"] != 1 {
		t.Fatalf("aliases after setting champion: %v", a)
	}
	code, body = getAs(t, s, rita, loc)
	if code != 200 || !strings.Contains(body, "version 1") || !strings.Contains(body, `id="resolved-by"`) || !strings.Contains(body, "outputs/model1.pkl") ||
		!strings.Contains(body, `/api/v1/workspaces/default/models/digits/versions/1/files/model1.pkl`) {
		t.Fatalf("the page of @champion (%d):\n%s", code, body)
	}
	// The alias is on the models list, the model page and the version page, with links.
	for _, path := range []string{"/w/default/models", "/w/default/models/digits", "/w/default/models/digits/versions/1"} {
		code, body := getAs(t, s, rita, path)
		if code != 200 || !strings.Contains(body, "@champion") {
			t.Fatalf("%s (%d) does not show @champion:\n%s", path, code, body)
		}
		if path != "/w/default/models/digits/versions/1" && !strings.Contains(body, `href="/w/default/models/digits/aliases/champion"`) {
			t.Fatalf("%s does not link @champion:\n%s", path, body)
		}
	}
	// Setting it again from version 2's page moves it: the alias URL now shows version 2.
	if code, body := getAs(t, s, carl, "/w/default/models/digits/versions/2"); code != 200 || !strings.Contains(body, `name="version" value="2"`) {
		t.Fatalf("version 2's page (%d) lacks its alias form:\n%s", code, body)
	}
	if code, _, _ := postAs(t, s, carl, "/w/default/models/digits/aliases", url.Values{"alias": {"champion"}, "version": {"2"}}); code != 303 {
		t.Fatalf("moving @champion: %d", code)
	}
	if code, body := getAs(t, s, rita, "/w/default/models/digits/aliases/champion"); code != 200 || !strings.Contains(body, "version 2") || !strings.Contains(body, "model2.pkl") {
		t.Fatalf("@champion after moving (%d):\n%s", code, body)
	}
	if _, err := s.Client.SetModelAlias(context.Background(), "default", "digits", "shadow", 1); err != nil {
		t.Fatal(err)
	}

	// A Reader reads the pages without forms; their posts are refused.
	for _, path := range []string{"/w/default/models/digits", "/w/default/models/digits/versions/1", "/w/default/models/digits/aliases/champion"} {
		code, body := getAs(t, s, rita, path)
		if code != 200 || strings.Contains(body, `method="post" action="/w/default/models`) {
			t.Fatalf("a Reader's %s (%d) offers forms:\n%s", path, code, body)
		}
	}
	for _, p := range []struct {
		path string
		form url.Values
	}{
		{"/w/default/models/digits/aliases", url.Values{"alias": {"mine"}, "version": {"1"}}},
		{"/w/default/models/digits/aliases", url.Values{"alias": {""}, "version": {"x"}}},
		{"/w/default/models/digits/aliases/champion/delete", nil},
	} {
		if code, _, body := postAs(t, s, rita, p.path, p.form); code != 403 {
			t.Fatalf("a Reader's post to %s %v: %d, want 403\n%s", p.path, p.form, code, body)
		}
	}
	bob := tokenFor(t, s, "bob")
	if code, _, _ := postAs(t, s, bob, "/w/default/models/digits/aliases", url.Values{"alias": {"mine"}, "version": {"1"}}); code != 404 {
		t.Fatalf("a non-member's post: %d, want 404", code)
	}
	if code, _ := getAs(t, s, bob, "/w/default/models/digits/aliases/champion"); code != 404 {
		t.Fatalf("a non-member reading an alias: %d, want 404", code)
	}

	// Refusals of input, on the model page with their status and the input kept.
	for _, tc := range []struct {
		path   string
		form   url.Values
		status int
		want   string
	}{
		{"/w/default/models/digits/aliases", url.Values{"alias": {"latest"}, "version": {"1"}}, 400, "reserved"},
		{"/w/default/models/digits/aliases", url.Values{"alias": {"9lives"}, "version": {"1"}}, 400, "starting with a letter"},
		{"/w/default/models/digits/aliases", url.Values{"alias": {""}, "version": {"1"}}, 400, "name the alias"},
		{"/w/default/models/digits/aliases", url.Values{"alias": {"ok"}, "version": {"two"}}, 400, "give a version number"},
		{"/w/default/models/digits/aliases", url.Values{"alias": {"ok"}, "version": {"7"}}, 404, "7"},
		{"/w/default/models/digits/aliases/nope/delete", nil, 404, "nope"},
	} {
		code, _, body := postAs(t, s, olga, tc.path, tc.form)
		if code != tc.status || !strings.Contains(body, `id="alias-error"`) || !strings.Contains(body, tc.want) {
			t.Errorf("%s %v: %d, want %d with %q on the model page:\n%s", tc.path, tc.form, code, tc.status, tc.want, body)
		}
	}
	// Pages that are not there.
	for _, path := range []string{"/w/default/models/digits/aliases/nope", "/w/default/models/digits/versions/9", "/w/default/models/digits/versions/x", "/w/default/models/nope/aliases/champion"} {
		if code, _ := getAs(t, s, rita, path); code != 404 {
			t.Errorf("%s: %d, want 404", path, code)
		}
	}

	// Deleting.
	if code, loc, _ := postAs(t, s, carl, "/w/default/models/digits/aliases/champion/delete", nil); code != 303 || loc != "/w/default/models/digits" {
		t.Fatalf("deleting @champion: %d %s", code, loc)
	}
	if a := aliasesOf(t, s); len(a) != 1 || a["shadow"] != 1 {
		t.Fatalf("aliases after deleting champion: %v", a)
	}
}

// TestModelAliasesInBrowser: a Contributor sets an alias with the model page's form in
// Chromium (with the session's CSRF token), lands on the version by its alias, downloads a file
// of the version, and deletes the alias; a Reader sees no forms and a post made anyway is 403.
func TestModelAliasesInBrowser(t *testing.T) {
	b := newBrowser(t)
	s := newAliasStack(t)
	tb := b.tab(s.URL)
	tb.open("/w/default/models/digits")
	tb.login("carl", password)
	tb.run("setting @champion on version 1", chromedp.SendKeys("#alias-name", "champion", chromedp.ByQuery),
		chromedp.SetValue("#alias-version", "1", chromedp.ByQuery), chromedp.Click("#set-alias-submit", chromedp.ByQuery))
	tb.waitJS("the version by its alias", `!!document.getElementById("resolved-by") && document.querySelector("h1").textContent.includes("version 1")`)
	if loc := tb.location(); !strings.HasSuffix(loc, "/w/default/models/digits/aliases/champion") {
		t.Fatalf("after setting the alias the page is %s", loc)
	}
	if a := aliasesOf(t, s); a["champion"] != 1 {
		t.Fatalf("aliases: %v", a)
	}
	var dl struct {
		Status int    `json:"status"`
		Text   string `json:"text"`
	}
	tb.await(`(async () => { const r = await fetch(document.querySelector("#version-files a.file-download").href); return {status: r.status, text: await r.text()}; })()`, &dl)
	if dl.Status != 200 || dl.Text != "weights v1" {
		t.Fatalf("the version's file download: %+v", dl)
	}
	tb.screenshot("model-version")
	tb.run("deleting @champion", chromedp.Click(`#version-aliases form.delete-alias button`, chromedp.ByQuery))
	tb.waitJS("the model page without aliases", `!!document.getElementById("aliases") && document.querySelector("#aliases").textContent.includes("No aliases.")`)
	if a := aliasesOf(t, s); len(a) != 0 {
		t.Fatalf("aliases after deleting: %v", a)
	}

	rita := b.tab(s.URL)
	rita.open("/w/default/models/digits")
	rita.login("rita", password)
	var forms int
	rita.eval(`document.querySelectorAll("main form").length`, &forms)
	if forms != 0 {
		t.Fatalf("a Reader sees %d forms on the model page", forms)
	}
	var st int
	rita.await(`(async () => (await fetch("/w/default/models/digits/aliases", {method: "POST", headers: {"Content-Type": "application/x-www-form-urlencoded"}, body: "alias=mine&version=1&csrf_token=" + document.body.dataset.csrf})).status)()`, &st)
	if st != 403 {
		t.Fatalf("a Reader's post: %d, want 403", st)
	}
	if a := aliasesOf(t, s); len(a) != 0 {
		t.Fatalf("aliases after the Reader's post: %v", a)
	}
}
