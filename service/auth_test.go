package service_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/server/servertest"
	"github.com/atelier-ml/atelier/service"
	"golang.org/x/crypto/bcrypt"
)

// MustService returns the service of a server stack (package servertest), logging to log
// (discarded when nil), with the users named in users (password "correct horse").
func MustService(tb testing.TB, log *slog.Logger, users ...string) *service.Service {
	tb.Helper()
	svc := servertest.New(tb, servertest.WithLog(log), servertest.WithoutScheduler()).Service
	svc.PasswordCost = bcrypt.MinCost
	for _, u := range users {
		if err := svc.CreateUser(adminContext(tb), &atelier.User{Name: u}, "correct horse"); err != nil {
			tb.Fatal(err)
		}
	}
	return svc
}

// TestLoginThrottle: failed logins slow down further attempts for the user, whatever the
// address, and from the address, whatever the user; a success clears the user's count.
func TestLoginThrottle(t *testing.T) {
	ctx := context.Background()
	login := func(svc *service.Service, user, password, remote string) error {
		_, err := svc.Login(ctx, user, password, remote)
		return err
	}
	t.Run("per user, from any address", func(t *testing.T) {
		svc := MustService(t, nil, "ana", "bob")
		for i := range 5 {
			MustCode(t, login(svc, "ana", "wrong password", fmt.Sprintf("10.0.0.%d", i)), atelier.EUNAUTHORIZED)
		}
		err := login(svc, "ana", "correct horse", "10.0.0.99")
		MustCode(t, err, atelier.ETOOMANY)
		if !strings.Contains(err.Error(), "try again in") {
			t.Errorf("throttled login: %v, want when to try again", err)
		}
		// Another user from those addresses is not slowed down.
		if err := login(svc, "bob", "correct horse", "10.0.0.1"); err != nil {
			t.Errorf("bob's login: %v", err)
		}
	})
	t.Run("per address, for any user", func(t *testing.T) {
		svc := MustService(t, nil, "ana", "bob")
		for i := range 5 {
			// Unknown users fail like a wrong password, and count against the address.
			MustCode(t, login(svc, fmt.Sprintf("guess%d", i), "wrong password", "10.1.1.1"), atelier.EUNAUTHORIZED)
		}
		MustCode(t, login(svc, "bob", "correct horse", "10.1.1.1"), atelier.ETOOMANY)
		if err := login(svc, "bob", "correct horse", "10.1.1.2"); err != nil {
			t.Errorf("bob's login from another address: %v", err)
		}
	})
	t.Run("a success clears the user's count", func(t *testing.T) {
		svc := MustService(t, nil, "ana")
		for round := range 2 {
			for i := range 4 {
				MustCode(t, login(svc, "ana", "wrong password", fmt.Sprintf("10.2.%d.%d", round, i)), atelier.EUNAUTHORIZED)
			}
			if err := login(svc, "ana", "correct horse", fmt.Sprintf("10.2.%d.9", round)); err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
		}
	})
	t.Run("failures say the same thing, and the log never holds a password", func(t *testing.T) {
		var logs bytes.Buffer
		svc := MustService(t, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})), "ana")
		wrongPassword := login(svc, "ana", "not the password", "10.3.0.1")
		unknownUser := login(svc, "nobody", "not the password", "10.3.0.2")
		if wrongPassword == nil || unknownUser == nil || wrongPassword.Error() != unknownUser.Error() {
			t.Errorf("a wrong password says %v, an unknown user %v: want the same", wrongPassword, unknownUser)
		}
		tok, err := svc.Login(ctx, "ana", "correct horse", "10.3.0.1")
		if err != nil {
			t.Fatal(err)
		}
		for _, secret := range []string{"not the password", "correct horse", tok.Secret} {
			if strings.Contains(logs.String(), secret) || strings.Contains(wrongPassword.Error(), secret) {
				t.Errorf("%q is in the log or an error", secret)
			}
		}
		if !strings.Contains(logs.String(), "failed login") {
			t.Errorf("the failed logins are not logged: %s", logs.String())
		}
	})
}

// TestRunTokenScope: a run's token searches only its run tree, whatever the filter says, and is
// refused the rest with what it may do.
func TestRunTokenScope(t *testing.T) {
	svc := MustService(t, nil)
	admin := adminContext(t)
	mustRun := func(c atelier.RunCreate) *atelier.Run {
		t.Helper()
		run, err := svc.CreateRun(admin, "default", c)
		if err != nil {
			t.Fatal(err)
		}
		return run
	}
	root := mustRun(atelier.RunCreate{Experiment: "exp", Status: atelier.StatusRunning})
	child := mustRun(atelier.RunCreate{ParentID: root.ID, Status: atelier.StatusRunning})
	grandchild := mustRun(atelier.RunCreate{ParentID: child.ID})
	sibling := mustRun(atelier.RunCreate{Experiment: "exp", Status: atelier.StatusRunning})
	elsewhere := mustRun(atelier.RunCreate{Experiment: "other"})
	ctx := atelier.NewContextWithPrincipal(t.Context(), &atelier.Principal{Kind: atelier.PrincipalRun, Name: "ana",
		TokenID: "tok_x", Workspace: "default", RunID: root.ID})
	tree := []string{root.ID, child.ID, grandchild.ID}

	ids := func(q atelier.RunQuery) []string {
		t.Helper()
		page, err := svc.ListRuns(ctx, "default", q)
		if err != nil {
			t.Fatalf("ListRuns(%+v): %v", q, err)
		}
		var out []string
		for _, r := range page.Runs {
			out = append(out, r.ID)
		}
		return out
	}
	for _, tc := range []struct {
		name string
		q    atelier.RunQuery
		want []string
	}{
		{"everything", atelier.RunQuery{OrderBy: "created_at"}, tree},
		{"an or that would reach other runs", atelier.RunQuery{Filter: "status = 'Running' or status = 'NotStarted'", OrderBy: "created_at"}, tree},
		{"the experiment", atelier.RunQuery{Experiment: "exp", OrderBy: "created_at"}, tree},
		{"another experiment", atelier.RunQuery{Experiment: "other"}, nil},
		{"another run by id", atelier.RunQuery{Filter: "id = '" + sibling.ID + "'"}, nil},
		{"top-level runs", atelier.RunQuery{RootOnly: true}, []string{root.ID}},
		{"children of a run of the tree", atelier.RunQuery{ParentID: child.ID}, []string{grandchild.ID}},
		{"a page", atelier.RunQuery{OrderBy: "created_at", Limit: 2}, tree[:2]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ids(tc.q); fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("ListRuns(%+v) = %v, want %v", tc.q, got, tc.want)
			}
		})
	}
	// A bad filter is reported where the caller wrote it, not in the added clause.
	_, err := svc.ListRuns(ctx, "default", atelier.RunQuery{Filter: "status = "})
	MustCode(t, err, atelier.EINVALID)
	if _, want := atelier.ParseFilter("status = "); err.Error() != want.Error() {
		t.Errorf("bad filter: %v, want the error of the caller's filter alone: %v", err, want)
	}

	refused := []struct {
		name string
		call func() error
	}{
		{"children of another run", func() error {
			_, err := svc.ListRuns(ctx, "default", atelier.RunQuery{ParentID: sibling.ID})
			return err
		}},
		{"another run", func() error { _, err := svc.FindRun(ctx, "default", elsewhere.ID); return err }},
		{"a run that does not exist", func() error { _, err := svc.FindRun(ctx, "default", "0123456789abcdef0123456789abcdef"); return err }},
		{"another run's metrics", func() error { _, err := svc.ListMetrics(ctx, "default", sibling.ID); return err }},
		{"another experiment", func() error { _, err := svc.FindExperiment(ctx, "default", "other"); return err }},
		{"a child in another experiment", func() error {
			_, err := svc.CreateRun(ctx, "default", atelier.RunCreate{ParentID: root.ID, Experiment: "other"})
			return err
		}},
		{"a top-level run", func() error {
			_, err := svc.CreateRun(ctx, "default", atelier.RunCreate{Experiment: "exp"})
			return err
		}},
		{"the workspace's events", func() error { _, err := svc.Subscribe(ctx, "default", atelier.EventFilter{}); return err }},
		{"another run's events", func() error {
			_, err := svc.Subscribe(ctx, "default", atelier.EventFilter{RunID: sibling.ID})
			return err
		}},
		{"the activities", func() error { _, err := svc.ListActivities(ctx, "default", atelier.ActivityFilter{}); return err }},
		{"the members", func() error { _, err := svc.ListMembers(ctx, "default"); return err }},
		{"tagging another run", func() error { return svc.SetTags(ctx, "default", sibling.ID, map[string]string{"k": "v"}) }},
	}
	for _, tc := range refused {
		t.Run("refused: "+tc.name, func(t *testing.T) {
			err := tc.call()
			MustCode(t, err, atelier.EFORBIDDEN)
			if !strings.Contains(err.Error(), "a run's token may change only its run and that run's descendants") {
				t.Errorf("the refusal does not say what a run's token may do: %v", err)
			}
		})
	}

	// What it may do.
	exps, err := svc.ListExperiments(ctx, "default", atelier.ExperimentFilter{})
	if err != nil || len(exps) != 1 || exps[0].Name != "exp" {
		t.Errorf("ListExperiments = %v, %v; want exp only", exps, err)
	}
	kid, err := svc.CreateRun(ctx, "default", atelier.RunCreate{ParentID: grandchild.ID})
	if err != nil || kid.Experiment != "exp" {
		t.Errorf("a child of the grandchild: %+v, %v; want it in exp", kid, err)
	}
	if err := svc.SetTags(ctx, "default", grandchild.ID, map[string]string{"k": "v"}); err != nil {
		t.Errorf("tagging a run of the tree: %v", err)
	}
	if _, err := svc.FindActivity(ctx, "default", child.ID); err != nil {
		t.Errorf("the activity of a run of the tree: %v", err)
	}
	// Another workspace does not exist for it.
	if err := svc.CreateWorkspace(admin, &atelier.Workspace{Name: "secret"}); err != nil {
		t.Fatal(err)
	}
	_, err = svc.FindWorkspace(ctx, "secret")
	MustCode(t, err, atelier.ENOTFOUND)
}
