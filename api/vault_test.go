package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/api"
	"github.com/atelier-ml/atelier/compute/local"
	"github.com/atelier-ml/atelier/service"
	"golang.org/x/crypto/bcrypt"
)

const vaultValue = "sk-live-0123456789abcdef"

// mustUserClient creates a user with a role in workspace (none when role is "") and returns a
// client with their token.
func mustUserClient(t *testing.T, s *Stack, user, workspace string, role atelier.Role) (*api.Client, string) {
	t.Helper()
	ctx := Ctx(t)
	if err := s.Client.CreateUser(ctx, &atelier.User{Name: user}, "a long password"); err != nil {
		t.Fatal(err)
	}
	if role != "" {
		if _, err := s.Client.ShareWorkspace(ctx, workspace, user, role); err != nil {
			t.Fatal(err)
		}
	}
	tok, err := s.Client.CreateToken(ctx, &atelier.Token{Name: "test", Owner: user})
	if err != nil {
		t.Fatal(err)
	}
	return api.NewClient(s.Server.URL, tok.Secret), tok.Secret
}

func TestSecretsAPI(t *testing.T) {
	logs := &syncBuffer{}
	s := MustStackLog(t, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	s.Service.PasswordCost = bcrypt.MinCost
	ctx := Ctx(t)
	if err := s.Client.CreateWorkspace(ctx, &atelier.Workspace{Name: "team"}); err != nil {
		t.Fatal(err)
	}
	contrib, contribToken := mustUserClient(t, s, "contrib", "team", atelier.RoleContributor)
	reader, _ := mustUserClient(t, s, "reader", "team", atelier.RoleReader)
	outsider, _ := mustUserClient(t, s, "outsider", "", "")

	// A Contributor sets a secret: the answer names it, never echoes the value.
	sec, err := contrib.SetSecret(ctx, "team", "API_KEY", vaultValue)
	if err != nil {
		t.Fatal(err)
	}
	if sec.Name != "API_KEY" || sec.Workspace != "team" || sec.CreatedBy != "contrib" || sec.CreatedAt.IsZero() {
		t.Errorf("SetSecret = %+v", sec)
	}
	var bodies [][]byte
	resp := s.MustDo(t, Request{Method: "PUT", Path: "/api/v1/workspaces/team/secrets/API_KEY", Body: `{"value":"` + vaultValue + `"}`, Token: &contribToken})
	if resp.Status != http.StatusOK {
		t.Fatalf("PUT: %d %s", resp.Status, resp.Body)
	}
	bodies = append(bodies, resp.Body)

	// Readers list names and dates; the list never holds values.
	list, err := reader.ListSecrets(ctx, "team")
	if err != nil || len(list) != 1 || list[0].Name != "API_KEY" || list[0].UpdatedAt.Before(list[0].CreatedAt) {
		t.Fatalf("ListSecrets as a Reader = %+v, %v", list, err)
	}
	resp = s.MustDo(t, Request{Method: "GET", Path: "/api/v1/workspaces/team/secrets"})
	if resp.Status != http.StatusOK || !strings.Contains(string(resp.Body), `"name":"API_KEY"`) {
		t.Errorf("GET secrets: %d %s", resp.Status, resp.Body)
	}
	bodies = append(bodies, resp.Body)

	// A Reader may not set or delete; someone outside the workspace does not see it at all.
	if _, err := reader.SetSecret(ctx, "team", "API_KEY", "overwritten"); atelier.ErrorCode(err) != atelier.EFORBIDDEN {
		t.Errorf("SetSecret as a Reader: %v, want EFORBIDDEN", err)
	}
	if err := reader.DeleteSecret(ctx, "team", "API_KEY"); atelier.ErrorCode(err) != atelier.EFORBIDDEN {
		t.Errorf("DeleteSecret as a Reader: %v, want EFORBIDDEN", err)
	}
	if _, err := outsider.ListSecrets(ctx, "team"); atelier.ErrorCode(err) != atelier.ENOTFOUND {
		t.Errorf("ListSecrets by a non-member: %v, want ENOTFOUND", err)
	}
	if _, err := outsider.SetSecret(ctx, "team", "API_KEY", "x"); atelier.ErrorCode(err) != atelier.ENOTFOUND {
		t.Errorf("SetSecret by a non-member: %v, want ENOTFOUND", err)
	}

	// A run's token gets neither names nor values.
	run, err := s.Client.CreateRun(ctx, "team", atelier.RunCreate{Experiment: "exp", Status: atelier.StatusRunning})
	if err != nil {
		t.Fatal(err)
	}
	runSecret := "atl_vault_" + run.ID
	if err := s.DB.CreateToken(ctx, &atelier.Token{ID: "tok_" + run.ID, Name: "run", Kind: atelier.PrincipalRun, Owner: "contrib",
		Workspace: "team", RunID: run.ID, Hash: Sum([]byte(runSecret)), CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	runClient := api.NewClient(s.Server.URL, runSecret)
	if _, err := runClient.ListSecrets(ctx, "team"); atelier.ErrorCode(err) != atelier.EFORBIDDEN {
		t.Errorf("ListSecrets with a run's token: %v, want EFORBIDDEN", err)
	}
	if _, err := runClient.SetSecret(ctx, "team", "OTHER", "x"); atelier.ErrorCode(err) != atelier.EFORBIDDEN {
		t.Errorf("SetSecret with a run's token: %v, want EFORBIDDEN", err)
	}

	// Bad names and values.
	for _, tc := range []struct{ path, body, want string }{
		{"1BAD", `{"value":"x"}`, "invalid secret name"},
		{"ATELIER_TOKEN", `{"value":"x"}`, "ATELIER_"},
		{"has-dash", `{"value":"x"}`, "invalid secret name"},
		{"EMPTY", `{"value":""}`, "empty"},
		{"NUL", `{"value":"a\u0000b"}`, "NUL"},
		{"BIG", `{"value":"` + strings.Repeat("x", atelier.MaxSecretValue+1) + `"}`, "at most"},
		{"UNKNOWN_FIELD", `{"value":"x","extra":1}`, ""},
	} {
		resp := s.MustDo(t, Request{Method: "PUT", Path: "/api/v1/workspaces/team/secrets/" + tc.path, Body: tc.body})
		if tc.want == "" {
			MustAPIError(t, resp, http.StatusBadRequest)
		} else {
			MustAPIError(t, resp, http.StatusBadRequest, tc.want)
		}
	}

	// Deleted by a Contributor; a second delete finds nothing.
	if err := contrib.DeleteSecret(ctx, "team", "API_KEY"); err != nil {
		t.Fatal(err)
	}
	if err := contrib.DeleteSecret(ctx, "team", "API_KEY"); atelier.ErrorCode(err) != atelier.ENOTFOUND {
		t.Errorf("second DeleteSecret: %v, want ENOTFOUND", err)
	}
	if list, err := reader.ListSecrets(ctx, "team"); err != nil || len(list) != 0 {
		t.Errorf("ListSecrets after delete = %+v, %v", list, err)
	}

	for _, b := range bodies {
		if bytes.Contains(b, []byte(vaultValue)) {
			t.Errorf("a response holds the secret's value: %s", b)
		}
	}
	if strings.Contains(logs.String(), vaultValue) {
		t.Errorf("the server's log holds the secret's value")
	}
	// At rest the value is sealed: the database file never holds it.
	s.DB.Close()
	for _, name := range []string{"atelier.db", "atelier.db-wal"} {
		if b, err := os.ReadFile(filepath.Join(s.Dir, name)); err == nil && bytes.Contains(b, []byte(vaultValue)) {
			t.Errorf("%s holds the secret's value in clear", name)
		}
	}
}

// TestSecretsReachARun: a submitted run names a secret; its script sees the value, its log
// shows ***, and neither the run's record, the API's answers nor the server's log hold it.
func TestSecretsReachARun(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 is not on PATH")
	}
	logs := &syncBuffer{}
	s := MustStackLog(t, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	ctx := Ctx(t)
	s.Service.ServerURL = s.Server.URL
	s.Service.AddComputeTarget(&service.Target{Name: "local", Kind: "local", MaxConcurrentRuns: 2,
		Executor: &local.Executor{WorkDir: t.TempDir(), Envs: &local.EnvCache{Dir: t.TempDir()}, CancelGrace: 300 * time.Millisecond}})
	if _, err := s.Client.SetSecret(ctx, "default", "API_KEY", vaultValue); err != nil {
		t.Fatal(err)
	}
	script := "import os\nv = os.environ['API_KEY']\nprint('key=' + v)\nprint('ok', v == '" + vaultValue + "')\n"
	snap, err := s.Client.UploadSnapshotZip(ctx, "default", bytes.NewReader(MustZip(t, [2]string{"train.py", script})))
	if err != nil {
		t.Fatal(err)
	}

	// Before the scheduler runs: a run queued with a secret that is deleted before it starts.
	if _, err := s.Client.SetSecret(ctx, "default", "GONE", "soon deleted"); err != nil {
		t.Fatal(err)
	}
	gone, err := s.Client.SubmitRun(ctx, "default", atelier.RunSubmit{Experiment: "exp", SnapshotID: snap.ID,
		Config: atelier.RunConfig{Script: "train.py", Secrets: []string{"GONE"}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Client.DeleteSecret(ctx, "default", "GONE"); err != nil {
		t.Fatal(err)
	}

	schedCtx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Service.RunScheduler(schedCtx); close(done) }()
	t.Cleanup(func() { stop(); <-done })

	// A missing secret is refused at submission, by name.
	_, err = s.Client.SubmitRun(ctx, "default", atelier.RunSubmit{Experiment: "exp", SnapshotID: snap.ID,
		Config: atelier.RunConfig{Script: "train.py", Secrets: []string{"API_KEY", "NOT_THERE"}}})
	if atelier.ErrorCode(err) != atelier.EINVALID || !strings.Contains(atelier.ErrorMessage(err), `"NOT_THERE"`) {
		t.Errorf("SubmitRun with a missing secret: %v, want EINVALID naming NOT_THERE", err)
	}

	run, err := s.Client.SubmitRun(ctx, "default", atelier.RunSubmit{Experiment: "exp", SnapshotID: snap.ID,
		Config: atelier.RunConfig{Script: "train.py", Secrets: []string{"API_KEY"}}})
	if err != nil {
		t.Fatal(err)
	}
	for !run.Status.Terminal() {
		if ctx.Err() != nil {
			t.Fatalf("the run did not end: %+v", run)
		}
		time.Sleep(20 * time.Millisecond)
		if run, err = s.Client.FindRun(ctx, "default", run.ID); err != nil {
			t.Fatal(err)
		}
	}
	if run.Status != atelier.StatusCompleted {
		t.Fatalf("run %s: %s", run.Status, run.Error)
	}
	chunk, err := s.Client.ReadLog(ctx, "default", run.ID, local.StdLogPath, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(chunk.Data); got != "key=***\nok True\n" {
		t.Errorf("std_log = %q, want the value masked", got)
	}
	var config atelier.RunConfig
	if err := json.Unmarshal(run.Config, &config); err != nil || len(config.Secrets) != 1 || config.Secrets[0] != "API_KEY" {
		t.Errorf("the run's config = %s, want the secret's name", run.Config)
	}
	for _, path := range []string{"/api/v1/workspaces/default/runs/" + run.ID, "/api/v1/workspaces/default/runs?experiment=exp",
		"/api/v1/workspaces/default/runs/" + run.ID + "/logs/" + local.StdLogPath, "/api/v1/workspaces/default/activities/" + run.ID,
		"/api/v1/workspaces/default/secrets"} {
		resp := s.MustDo(t, Request{Method: "GET", Path: path})
		if resp.Status != http.StatusOK {
			t.Errorf("GET %s: %d %s", path, resp.Status, resp.Body)
		}
		if bytes.Contains(resp.Body, []byte(vaultValue)) {
			t.Errorf("GET %s holds the secret's value", path)
		}
	}
	if strings.Contains(logs.String(), vaultValue) {
		t.Errorf("the server's log holds the secret's value:\n%s", logs.String())
	}

	// The run submitted with a secret deleted before it started failed, naming the secret.
	gone, err = s.Client.FindRun(ctx, "default", gone.ID)
	if err != nil || gone.Status != atelier.StatusFailed || !strings.Contains(gone.Error, `secret "GONE" was deleted`) {
		t.Errorf("the run whose secret was deleted = %s, %q, %v; want Failed naming the secret", gone.Status, gone.Error, err)
	}
}
