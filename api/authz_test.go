package api_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/api"
	"golang.org/x/crypto/bcrypt"
)

// The authorization matrix: every route of the table × every kind of caller. The expected
// status follows from the route's Policy alone, so a route added without a policy, or whose
// service does not enforce its policy, fails here.

// principal kinds of the matrix.
const (
	pNone        = "no token"
	pRevoked     = "revoked token"
	pReader      = "Reader"
	pContributor = "Contributor"
	pOwner       = "Owner"
	pOther       = "owner of another workspace"
	pRunThis     = "run token of this run"
	pRunOther    = "run token of another run"
	pAdmin       = "admin"
)

var matrixPrincipals = []string{pNone, pRevoked, pReader, pContributor, pOwner, pOther, pRunThis, pRunOther, pAdmin}

// runScopeSays starts what every refusal of a run's token says it may do.
const runScopeSays = "a run's token may change only its run and that run's descendants"

// allowedStatus means: past authorization (2xx, or a 4xx the request itself earned, such as
// 400 or 409, but never 401, 403 or 404).
const allowedStatus = 0

// expectStatus returns what a principal gets from a route of the policy.
func expectStatus(t *testing.T, policy, p string) int {
	t.Helper()
	if policy == api.PolicyPublic {
		return allowedStatus
	}
	if p == pNone || p == pRevoked {
		return http.StatusUnauthorized
	}
	isRun := p == pRunThis || p == pRunOther
	switch policy {
	case api.PolicyAuthenticated:
		return allowedStatus
	case api.PolicyUser:
		if isRun {
			return http.StatusForbidden
		}
		return allowedStatus
	case api.PolicyAdmin:
		if p == pAdmin {
			return allowedStatus
		}
		return http.StatusForbidden
	}
	if p == pOther {
		return http.StatusNotFound // another workspace's things do not exist for them
	}
	switch policy {
	case api.PolicyRead, api.PolicyReadScoped:
		return allowedStatus
	case api.PolicyRunRead:
		if p == pRunOther {
			return http.StatusForbidden
		}
		return allowedStatus
	case api.PolicyMember:
		if isRun {
			return http.StatusForbidden
		}
		return allowedStatus
	case api.PolicyWrite, api.PolicyRun:
		if p == pContributor || p == pOwner || p == pAdmin || (policy == api.PolicyRun && p == pRunThis) {
			return allowedStatus
		}
		return http.StatusForbidden
	case api.PolicyOwner:
		if p == pOwner || p == pAdmin {
			return allowedStatus
		}
		return http.StatusForbidden
	}
	t.Fatalf("unknown policy %q", policy)
	return 0
}

// authzFixture is a server with a workspace "team" holding a run with data (the run every
// request names), another run in another experiment, its members, and a second workspace
// "elsewhere" owned by someone else.
type authzFixture struct {
	*Stack
	tokens   map[string]string // principal → secret
	ownToken map[string]string // principal → the id of another token of theirs
	vars     map[string]string // path parameter → value
	logs     *syncBuffer
}

// syncBuffer is a log destination safe for the server's goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

const matrixPassword = "correct horse battery"

// matrixSecretValue is the value of the fixture's secret, and of the one each PUT sets: no
// response and no log line may hold it.
const matrixSecretValue = "vault-matrix-value-7f3a"

func mustAuthzFixture(t *testing.T) *authzFixture {
	t.Helper()
	logs := &syncBuffer{}
	s := MustStackLog(t, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	s.Service.PasswordCost = bcrypt.MinCost
	f := &authzFixture{Stack: s, tokens: map[string]string{pAdmin: s.Token}, ownToken: map[string]string{}, logs: logs}
	ctx := Ctx(t)
	admin := s.Client
	for _, name := range []string{"reader", "contrib", "owner", "other", "guest"} {
		if err := admin.CreateUser(ctx, &atelier.User{Name: name}, matrixPassword); err != nil {
			t.Fatal(err)
		}
	}
	for _, ws := range []string{"team", "elsewhere"} {
		if err := admin.CreateWorkspace(ctx, &atelier.Workspace{Name: ws}); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range []struct {
		ws, user string
		role     atelier.Role
	}{{"team", "reader", atelier.RoleReader}, {"team", "contrib", atelier.RoleContributor}, {"team", "owner", atelier.RoleOwner},
		{"team", "guest", atelier.RoleReader}, {"elsewhere", "other", atelier.RoleOwner}} {
		if _, err := admin.ShareWorkspace(ctx, m.ws, m.user, m.role); err != nil {
			t.Fatal(err)
		}
	}
	for p, user := range map[string]string{pReader: "reader", pContributor: "contrib", pOwner: "owner", pOther: "other", pRevoked: "contrib"} {
		tok, err := admin.CreateToken(ctx, &atelier.Token{Name: "matrix", Owner: user})
		if err != nil {
			t.Fatal(err)
		}
		f.tokens[p] = tok.Secret
		if p == pRevoked {
			if err := admin.RevokeToken(ctx, tok.ID); err != nil {
				t.Fatal(err)
			}
			continue
		}
		extra, err := admin.CreateToken(ctx, &atelier.Token{Name: "spare", Owner: user})
		if err != nil {
			t.Fatal(err)
		}
		f.ownToken[p] = extra.ID
	}
	spare, err := admin.CreateToken(ctx, &atelier.Token{Name: "spare", Owner: "guest"})
	if err != nil {
		t.Fatal(err)
	}
	f.ownToken[pAdmin] = spare.ID

	snap, err := admin.UploadSnapshotZip(ctx, "team", bytes.NewReader(MustZip(t, [2]string{"train.py", "print(1)\n"})))
	if err != nil {
		t.Fatal(err)
	}
	run, err := admin.CreateRun(ctx, "team", atelier.RunCreate{Experiment: "exp", Status: atelier.StatusRunning, SnapshotID: snap.ID})
	if err != nil {
		t.Fatal(err)
	}
	otherRun, err := admin.CreateRun(ctx, "team", atelier.RunCreate{Experiment: "other-exp", Status: atelier.StatusRunning})
	if err != nil {
		t.Fatal(err)
	}
	for p, r := range map[string]*atelier.Run{pRunThis: run, pRunOther: otherRun} {
		secret := "atl_matrix_" + r.ID
		if err := s.DB.CreateToken(ctx, &atelier.Token{ID: "tok_" + r.ID, Name: "run", Kind: atelier.PrincipalRun, Owner: "contrib",
			Workspace: "team", RunID: r.ID, Hash: Sum([]byte(secret)), CreatedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
		f.tokens[p] = secret
	}
	if err := admin.SetTags(ctx, "team", run.ID, map[string]string{"k": "v"}); err != nil {
		t.Fatal(err)
	}
	if err := admin.LogMetrics(ctx, "team", run.ID, &atelier.MetricBatch{Points: []atelier.MetricPoint{{Name: "m", Timestamp: 1, Value: 1}},
		Records: []atelier.MetricRecord{{Name: "r", Kind: atelier.MetricList, Timestamp: 1, Value: []byte(`[1,2]`)}}}); err != nil {
		t.Fatal(err)
	}
	content := "model weights"
	if _, err := admin.UploadFile(ctx, "team", run.ID, "out.txt", strings.NewReader(content), ""); err != nil {
		t.Fatal(err)
	}
	if err := admin.AppendLog(ctx, "team", run.ID, "logs/x.txt", []byte("hello\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.RegisterModel(ctx, "team", atelier.ModelRegister{Name: "m", RunID: run.ID, Path: "out.txt"}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.SetModelAlias(ctx, "team", "m", "prod", 1); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.WriteDatastoreFile(ctx, "team", atelier.DefaultDatastore, "data/a.csv", strings.NewReader("a,b\n"), "", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.RegisterDataset(ctx, "team", atelier.DatasetRegister{Name: "ds", Type: atelier.DatasetFile,
		Paths: []atelier.DatasetPath{{Datastore: atelier.DefaultDatastore, Path: "data/a.csv"}}}); err != nil {
		t.Fatal(err)
	}
	if err := admin.RecordDatasetRun(ctx, "team", atelier.DatasetRun{Name: "ds", Version: 1, RunID: run.ID}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.RegisterEnvironment(ctx, "team", atelier.EnvironmentRegister{Name: "env", Spec: []byte(`{"python":{}}`)}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.SetSecret(ctx, "team", "MATRIX_SECRET", matrixSecretValue); err != nil {
		t.Fatal(err)
	}
	s.Service.Drivers = map[string]atelier.ComputeDriver{atelier.ComputeLocal: &checkingDriver{}}
	if _, err := admin.CreateComputeTarget(ctx, "team", atelier.ComputeTargetSpec{Name: "cpu4", Kind: atelier.ComputeLocal}); err != nil {
		t.Fatal(err)
	}
	// An image (stored as queued, so no build is needed) for the image routes; the stub
	// builder lets a create through to the store whatever bases this server has.
	s.Service.Builder = stubBuilder{}
	if err := s.DB.CreateImage(ctx, "team", &atelier.Image{Name: "svc", Models: []atelier.ImageModel{{Name: "m", Version: 1}},
		EntryScript: "train.py", SnapshotID: snap.ID}); err != nil {
		t.Fatal(err)
	}
	// A built image (version 2) and a web service serving it, for the service routes; the
	// local target is declared (no scheduler runs here, so nothing is deployed).
	s.Service.Bwrap = "bwrap"
	if err := s.DB.CreateImage(ctx, "team", &atelier.Image{Name: "svc", Models: []atelier.ImageModel{{Name: "m", Version: 1}},
		EntryScript: "train.py", SnapshotID: snap.ID}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DB.EndImageBuild(ctx, "team", atelier.ImageRef{Name: "svc", Version: 2}, &atelier.ImageBuildResult{Digest: "sha256:" + strings.Repeat("0", 64)}, ""); err != nil {
		t.Fatal(err)
	}
	cfg := atelier.WebServiceConfig{AuthEnabled: true}
	cfg.Fill()
	if err := s.DB.CreateWebService(ctx, "team", &atelier.WebService{Name: "scorer", Target: "local",
		Images: []atelier.ServiceImage{{Image: "svc:2", Percent: 100}}, Config: cfg, State: atelier.ServiceHealthy}, nil); err != nil {
		t.Fatal(err)
	}
	f.vars = map[string]string{"image": "svc:1", "service": "scorer", "secret": "MATRIX_SECRET", "compute": "cpu4", "datastore": atelier.DefaultDatastore, "workspace": "team", "experiment": "exp", "run": run.ID, "key": "k", "snapshot": snap.ID,
		"activity": run.ID, "model": "m", "version": "1", "alias": "prod", "user": "guest", "digest": Sum([]byte(content)),
		"otherRun": otherRun.ID, "otherExperiment": otherRun.Experiment, "dataset": "ds", "environment": "env"}
	return f
}

// matrixBodies are request bodies that pass validation, so an allowed caller gets past it.
var matrixBodies = map[string]string{
	"POST /api/v1/login":                               `{"user":"guest","password":"` + matrixPassword + `"}`,
	"POST /api/v1/users":                               `{"name":"newcomer","password":"` + matrixPassword + `"}`,
	"POST /api/v1/tokens":                              `{"name":"laptop"}`,
	"POST /api/v1/workspaces":                          `{"name":"fresh"}`,
	"PATCH {ws}/experiments/{experiment}":              `{"description":"d"}`,
	"POST {ws}/runs":                                   `{"experiment":"exp","parent_id":"{run}"}`,
	"POST {ws}/runs/search":                            `{}`,
	"POST {ws}/runs/submit":                            `{"experiment":"exp","snapshot_id":"{snapshot}","config":{"script":""},"parent_id":"{run}"}`,
	"POST {ws}/runs/{run}/status":                      `{"status":"Running"}`,
	"POST {ws}/runs/{run}/params":                      `{"params":{"a":"1"}}`,
	"POST {ws}/runs/{run}/tags":                        `{"tags":{"a":"1"}}`,
	"POST {ws}/runs/{run}/properties":                  `{"properties":{"a":"1"}}`,
	"POST {ws}/runs/{run}/metrics":                     `{}`,
	"PUT {ws}/runs/{run}/files/{path...}":              `new content`,
	"POST {ws}/runs/{run}/logs/{path...}":              "a line\n",
	"POST {ws}/objects/missing":                        `{"digests":[]}`,
	"PUT {ws}/objects/{digest}":                        `model weights`,
	"POST {ws}/snapshots":                              `{"entries":[]}`,
	"POST {ws}/models":                                 `{"name":"m2","run_id":"{run}","path":"out.txt"}`,
	"POST {ws}/models/search":                          `{}`,
	"PATCH {ws}/models/{model}/versions/{version}":     `{}`,
	"PUT {ws}/models/{model}/aliases/{alias}":          `{"version":1}`,
	"PUT {ws}/members/{user}":                          `{"role":"Reader"}`,
	"POST {ws}/datastores":                             `{"name":"s3","kind":"s3","bucket":"b"}`,
	"PATCH {ws}/datastores/{datastore}":                `{}`,
	"PUT {ws}/datastores/{datastore}/files/{path...}":  `x,y`,
	"PUT {ws}/secrets/{secret}":                        `{"value":"` + matrixSecretValue + `"}`,
	"POST {ws}/compute":                                `{"name":"cpu8","kind":"local"}`,
	"PUT {ws}/image-bases/default":                     `{"base":""}`,
	"POST {ws}/images":                                 `{"name":"svc","models":["m:1"],"entry_script":"train.py","snapshot_id":"{snapshot}"}`,
	"POST {ws}/services":                               `{"name":"scorer2","image":"svc:2"}`,
	"PATCH {ws}/services/{service}":                    `{"description":"d"}`,
	"POST {ws}/services/{service}/keys":                `{"key":"secondary"}`,
	"PATCH {ws}/runs/{run}":                            `{"name":"renamed"}`,
	"POST {ws}/datasets":                               `{"name":"ds2","type":"file","paths":[{"datastore":"default","path":"data"}],"create_new_version":true}`,
	"PATCH {ws}/datasets/{dataset}/versions/{version}": `{"description":"d"}`,
	"POST {ws}/runs/{run}/datasets":                    `{"name":"ds","version":1}`,
	"POST {ws}/environments":                           `{"name":"env2","spec":{"python":{}}}`,

	"POST {ws}/datastores/{datastore}/digests": `{"paths":["data.csv"]}`,
	// Over TCP a batch is refused (400) once the caller is known to have access.
	"POST {ws}/datastores/{datastore}/uploads":   `{"files":[{"path":"data.csv"}]}`,
	"POST {ws}/datastores/{datastore}/downloads": `{"files":[{"path":"data.csv"}]}`,
}

var patternParam = regexp.MustCompile(`\{([a-z]+)(\.\.\.)?\}`)

// matrixRequest turns a route pattern into a request for principal p.
func (f *authzFixture) matrixRequest(pattern, p string) (method, path, body string) {
	method, path, _ = strings.Cut(pattern, " ")
	key := method + " " + strings.Replace(path, "/api/v1/workspaces/{workspace}", "{ws}", 1)
	body = strings.NewReplacer("{run}", f.vars["run"], "{snapshot}", f.vars["snapshot"]).Replace(matrixBodies[key])
	path = patternParam.ReplaceAllStringFunc(path, func(m string) string {
		name := patternParam.FindStringSubmatch(m)[1]
		switch {
		case name == "token" && f.ownToken[p] == "":
			return "tok_unknown"
		case name == "token":
			return f.ownToken[p]
		case name == "path" && strings.Contains(path, "/datastores/"):
			return "data/a.csv"
		case name == "path" && strings.Contains(path, "/logs/"):
			return "logs/x.txt"
		case name == "path":
			return "out.txt"
		}
		return f.vars[name]
	})
	if strings.HasSuffix(path, "/metric-history") {
		path += "?name=m"
	} else if strings.HasSuffix(path, "/metric-records") {
		path += "?name=r"
	} else if strings.HasSuffix(path, "/events") {
		path += "?run_id=" + f.vars["run"]
	}
	return method, path, body
}

func (f *authzFixture) do(t *testing.T, method, path, body, p string) (int, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, f.Server.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if tok := f.tokens[p]; tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	if strings.HasPrefix(body, "{") {
		req.Header.Set("Content-Type", "application/json")
	} else if body != "" {
		req.Header.Set("Content-Type", "application/octet-stream")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		return resp.StatusCode, nil // a stream: the status is the answer
	}
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func TestAuthorizationMatrix(t *testing.T) {
	routes := api.NewServer(nil, nil, nil).Routes()
	for _, rt := range routes {
		if rt.Policy == "" {
			t.Errorf("route %s has no Policy: say who may call it", rt.Pattern)
			continue
		}
		if (rt.Policy == api.PolicyPublic) != rt.Public {
			t.Errorf("route %s: Policy %q but Public %v", rt.Pattern, rt.Policy, rt.Public)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	for _, rt := range routes {
		t.Run(rt.Pattern, func(t *testing.T) {
			t.Parallel()
			// Deleting destroys what the next caller would need: give each caller its own server.
			destructive := strings.HasPrefix(rt.Pattern, "DELETE ") || strings.Contains(rt.Pattern, "/logout")
			var f *authzFixture
			for _, p := range matrixPrincipals {
				if f == nil || destructive {
					f = mustAuthzFixture(t)
				}
				method, path, body := f.matrixRequest(rt.Pattern, p)
				status, respBody := f.do(t, method, path, body, p)
				want := expectStatus(t, rt.Policy, p)
				switch {
				case want == allowedStatus && (status == 401 || status == 403 || status == 404 || status >= 500):
					t.Errorf("%s (policy %s) as %s: status %d, want it allowed; body %s", rt.Pattern, rt.Policy, p, status, respBody)
				case want != allowedStatus && status != want:
					t.Errorf("%s (policy %s) as %s: status %d, want %d; body %s", rt.Pattern, rt.Policy, p, status, want, respBody)
				}
				for _, secret := range f.tokens {
					if secret != "" && bytes.Contains(respBody, []byte(secret)) {
						t.Errorf("%s as %s: the response holds a token secret", rt.Pattern, p)
					}
				}
				if (p == pRunThis || p == pRunOther) && status == http.StatusForbidden && !bytes.Contains(respBody, []byte(runScopeSays)) {
					t.Errorf("%s as %s: the refusal does not say what a run's token may do: %s", rt.Pattern, p, respBody)
				}
				if rt.Policy == api.PolicyReadScoped {
					f.checkScoped(t, rt.Pattern, p, respBody)
				}
				if bytes.Contains(respBody, []byte(matrixPassword)) {
					t.Errorf("%s as %s: the response holds a password", rt.Pattern, p)
				}
				if bytes.Contains(respBody, []byte(matrixSecretValue)) {
					t.Errorf("%s as %s: the response holds a secret's value", rt.Pattern, p)
				}
			}
			logs := f.logs.String()
			for p, secret := range f.tokens {
				if strings.Contains(logs, secret) {
					t.Errorf("the server's log holds the token of %s", p)
				}
			}
			if strings.Contains(logs, matrixPassword) {
				t.Errorf("the server's log holds a password")
			}
			if strings.Contains(logs, matrixSecretValue) {
				t.Errorf("the server's log holds a secret's value")
			}
		})
	}
}

// checkScoped checks a list a run's token gets from a read-scoped route: its own run and
// experiment, nothing of the other run's.
func (f *authzFixture) checkScoped(t *testing.T, pattern, p string, body []byte) {
	t.Helper()
	mine, theirs := map[string][]string{
		pRunThis:  {f.vars["run"], `"` + f.vars["experiment"] + `"`},
		pRunOther: {f.vars["otherRun"], `"` + f.vars["otherExperiment"] + `"`},
	}, map[string]string{pRunThis: pRunOther, pRunOther: pRunThis}
	other, ok := theirs[p]
	if !ok {
		return
	}
	for _, s := range mine[other] {
		if bytes.Contains(body, []byte(s)) {
			t.Errorf("%s as %s: the list holds %s, which is not this token's: %s", pattern, p, s, body)
		}
	}
	if strings.Contains(pattern, "/runs") && !bytes.Contains(body, []byte(mine[p][0])) {
		t.Errorf("%s as %s: the list lacks the token's own run %s: %s", pattern, p, mine[p][0], body)
	}
	if strings.Contains(pattern, "/experiments") && !bytes.Contains(body, []byte(mine[p][1])) {
		t.Errorf("%s as %s: the list lacks the token's own experiment %s: %s", pattern, p, mine[p][1], body)
	}
}

// stubBuilder is an image builder that accepts any base and fails every build: the matrix
// checks who may call the image routes, not what a build makes.
type stubBuilder struct{}

func (stubBuilder) CheckBase(context.Context, string, string) error { return nil }

func (stubBuilder) Build(context.Context, *atelier.ImageBuildJob, io.Writer) (*atelier.ImageBuildResult, error) {
	return nil, atelier.Errorf(atelier.EINVALID, "the authorization matrix builds no images")
}

func (stubBuilder) Export(context.Context, string, atelier.ImageRef, string, io.Writer) error {
	return atelier.Errorf(atelier.ENOTFOUND, "the authorization matrix builds no images")
}

func (stubBuilder) Delete(context.Context, string, atelier.ImageRef) error { return nil }

func (stubBuilder) RemoveUnpacked(string) error { return nil }
func (stubBuilder) Unpack(context.Context, string, atelier.ImageRef, string) (*atelier.ImageRuntime, error) {
	return nil, atelier.Errorf(atelier.EUNAVAILABLE, "not built")
}
