package ui_test

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/server/servertest"
	"github.com/chromedp/chromedp"
)

// tokenFor makes an API token of a user.
func tokenFor(t *testing.T, s *servertest.Stack, user string) string {
	t.Helper()
	tok, err := s.Client.CreateToken(context.Background(), &atelier.Token{Name: "t", Owner: user})
	if err != nil {
		t.Fatal(err)
	}
	return tok.Secret
}

// postAs posts a form with a bearer token (no CSRF token: bearer tokens are not cookies), not
// following redirects.
func postAs(t *testing.T, s *servertest.Stack, token, path string, form url.Values) (int, string, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", s.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Location"), string(b)
}

func membersOf(t *testing.T, s *servertest.Stack) map[string]atelier.Role {
	t.Helper()
	list, err := s.Client.ListMembers(context.Background(), "default")
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]atelier.Role{}
	for _, x := range list {
		m[x.User] = x.Role
	}
	return m
}

func newMembersStack(t *testing.T) *servertest.Stack {
	t.Helper()
	s := servertest.New(t, servertest.WithoutScheduler())
	ctx := context.Background()
	for _, u := range []struct {
		name string
		role atelier.Role
	}{{"olga", atelier.RoleOwner}, {"carl", atelier.RoleContributor}, {"rita", atelier.RoleReader}, {"bob", ""}} {
		if err := s.Client.CreateUser(ctx, &atelier.User{Name: u.name}, password); err != nil {
			t.Fatal(err)
		}
		if u.role != "" {
			if _, err := s.Client.ShareWorkspace(ctx, "default", u.name, u.role); err != nil {
				t.Fatal(err)
			}
		}
	}
	return s
}

// TestMembersForms: an Owner adds a member with a role, changes the role and removes the
// member through the members page's forms (the service's ShareWorkspace and
// UnshareWorkspace); refusals of bad input are said on the page with their status; Readers and
// Contributors see no forms and their posts are 403.
func TestMembersForms(t *testing.T) {
	s := newMembersStack(t)
	olga, carl, rita := tokenFor(t, s, "olga"), tokenFor(t, s, "carl"), tokenFor(t, s, "rita")

	code, body := getAs(t, s, olga, "/w/default/members")
	if code != 200 || !strings.Contains(body, `id="add-member"`) || strings.Count(body, `class="inline remove-form"`) != 3 {
		t.Fatalf("an Owner's members page (%d) lacks its forms:\n%s", code, body)
	}
	for name, tok := range map[string]string{"a Contributor": carl, "a Reader": rita} {
		code, body := getAs(t, s, tok, "/w/default/members")
		if code != 200 || strings.Contains(body, `method="post" action="/w/default/members`) || !strings.Contains(body, "olga") {
			t.Fatalf("%s's members page (%d) offers forms or lacks members:\n%s", name, code, body)
		}
		for path, form := range map[string]url.Values{
			"/w/default/members":             {"user": {"bob"}, "role": {"Owner"}},
			"/w/default/members/rita":        {"role": {"Owner"}},
			"/w/default/members/olga/remove": nil,
		} {
			if code, _, _ := postAs(t, s, tok, path, form); code != 403 {
				t.Fatalf("%s's post to %s: %d, want 403", name, path, code)
			}
		}
	}
	if m := membersOf(t, s); len(m) != 3 || m["olga"] != atelier.RoleOwner || m["rita"] != atelier.RoleReader {
		t.Fatalf("refused posts changed the members: %v", m)
	}

	// The Owner's changes.
	if code, loc, body := postAs(t, s, olga, "/w/default/members", url.Values{"user": {"bob"}, "role": {"Contributor"}}); code != 303 || loc != "/w/default/members" {
		t.Fatalf("adding bob: %d %s\n%s", code, loc, body)
	}
	if m := membersOf(t, s); m["bob"] != atelier.RoleContributor {
		t.Fatalf("bob is %q after being added as a Contributor", m["bob"])
	}
	if code, _, _ := postAs(t, s, olga, "/w/default/members/bob", url.Values{"role": {"Reader"}}); code != 303 {
		t.Fatalf("changing bob's role: %d", code)
	}
	if m := membersOf(t, s); m["bob"] != atelier.RoleReader {
		t.Fatalf("bob is %q after being made a Reader", m["bob"])
	}
	if code, _, _ := postAs(t, s, olga, "/w/default/members/bob/remove", nil); code != 303 {
		t.Fatalf("removing bob: %d", code)
	}
	if _, ok := membersOf(t, s)["bob"]; ok {
		t.Fatal("bob is still a member after being removed")
	}

	// Refusals are shown on the page, with the field kept.
	for _, tc := range []struct {
		path   string
		form   url.Values
		status int
		want   string
	}{
		{"/w/default/members", url.Values{"user": {"bob"}, "role": {"Boss"}}, 400, "Boss"},
		{"/w/default/members", url.Values{"user": {""}, "role": {"Reader"}}, 400, "name the user to add"},
		{"/w/default/members/olga", url.Values{"role": {"Reader"}}, 409, "last Owner"},
		{"/w/default/members/olga/remove", nil, 409, "last Owner"},
	} {
		code, _, body := postAs(t, s, olga, tc.path, tc.form)
		if code != tc.status || !strings.Contains(body, `id="members-error"`) || !strings.Contains(body, tc.want) {
			t.Errorf("%s %v: %d, want %d with %q on the members page:\n%s", tc.path, tc.form, code, tc.status, tc.want, body)
		}
	}
	// A workspace the caller is not in is a 404, as for reading.
	bob := tokenFor(t, s, "bob")
	if code, _, _ := postAs(t, s, bob, "/w/default/members", url.Values{"user": {"bob"}, "role": {"Owner"}}); code != 404 {
		t.Fatalf("a non-member's post: %d, want 404", code)
	}
}

// TestMembersPageInBrowser: an Owner adds, changes and removes a member with the page's forms
// in Chromium (with the session's CSRF token); a Reader sees no forms and a post made anyway is
// refused.
func TestMembersPageInBrowser(t *testing.T) {
	b := newBrowser(t)
	s := newMembersStack(t)
	tb := b.tab(s.URL)
	tb.open("/w/default/members")
	tb.login("olga", password)
	tb.run("adding bob as a Contributor", chromedp.SendKeys("#member-user", "bob", chromedp.ByQuery),
		chromedp.SetValue("#member-role", "Contributor", chromedp.ByQuery), chromedp.Click("#add-member-submit", chromedp.ByQuery))
	tb.waitJS("bob's row", `(() => { const r = document.querySelector('#members tr[data-user="bob"]'); return r && r.querySelector("select").value === "Contributor"; })()`)
	if m := membersOf(t, s); m["bob"] != atelier.RoleContributor {
		t.Fatalf("bob is %q", m["bob"])
	}
	tb.screenshot("members")
	tb.eval(`window.__old = true`, nil) // gone once the form's answer is loaded
	tb.run("making bob a Reader", chromedp.SetValue(`#members tr[data-user="bob"] select`, "Reader", chromedp.ByQuery),
		chromedp.Click(`#members tr[data-user="bob"] button.change-role`, chromedp.ByQuery))
	tb.waitJS("bob a Reader", `!window.__old && (() => { const r = document.querySelector('#members tr[data-user="bob"]'); return r && r.querySelector("select").value === "Reader" && !document.getElementById("members-error"); })()`)
	if m := membersOf(t, s); m["bob"] != atelier.RoleReader {
		t.Fatalf("bob is %q after the change", m["bob"])
	}
	tb.run("removing bob", chromedp.Click(`#members tr[data-user="bob"] button.remove-member`, chromedp.ByQuery))
	tb.waitJS("bob gone", `document.getElementById("members") && !document.querySelector('#members tr[data-user="bob"]')`)
	if _, ok := membersOf(t, s)["bob"]; ok {
		t.Fatal("bob is still a member")
	}

	rita := b.tab(s.URL)
	rita.open("/w/default/members")
	rita.login("rita", password)
	var forms int
	rita.eval(`document.querySelectorAll("main form").length`, &forms)
	if forms != 0 {
		t.Fatalf("a Reader sees %d forms on the members page", forms)
	}
	var st int
	rita.await(`(async () => (await fetch("/w/default/members", {method: "POST", headers: {"Content-Type": "application/x-www-form-urlencoded"}, body: "user=rita&role=Owner&csrf_token=" + document.body.dataset.csrf})).status)()`, &st)
	if st != 403 {
		t.Fatalf("a Reader's post: %d, want 403", st)
	}
	if m := membersOf(t, s); m["rita"] != atelier.RoleReader {
		t.Fatalf("rita is %q after her refused post", m["rita"])
	}
}
