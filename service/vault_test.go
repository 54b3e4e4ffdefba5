package service_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/secret"
)

// logScript appends to its run's log and to a child run's log through the REST API with its
// run token, writing its secret and its token.
const logScript = `import json, os, urllib.request
server, ws, run, token = os.environ["ATELIER_SERVER"], os.environ["ATELIER_WORKSPACE"], os.environ["ATELIER_RUN_ID"], os.environ["ATELIER_TOKEN"]
def call(path, body, ctype):
    req = urllib.request.Request("%s/api/v1/workspaces/%s/%s" % (server, ws, path), data=body, method="POST",
        headers={"Authorization": "Bearer " + token, "Content-Type": ctype})
    with urllib.request.urlopen(req) as resp:
        return resp.read()
child = json.loads(call("runs", json.dumps({"parent_id": run, "name": "child"}).encode(), "application/json"))["id"]
line = "key=%s token=%s\n" % (os.environ["API_KEY"], token)
for r in (run, child):
    call("runs/%s/logs/logs/extra.txt" % r, line.encode(), "text/plain")
print("child=" + child)
`

// TestLogAppendMasksSecrets: what a script appends to a log through the API is masked as its
// printed output is: its secret and its token, in its own log and its child's; and a log
// appended to the run after it ended, by its configuration's secrets.
func TestLogAppendMasksSecrets(t *testing.T) {
	t.Parallel()
	const value = "sk-live-0123456789abcdef"
	s := MustComputeStack(t, "", 1, false)
	var err error
	if s.svc.Secrets, err = secret.New(bytes.Repeat([]byte{0x5e}, secret.KeySize)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.svc.SetSecret(s.ctx, "default", "API_KEY", value); err != nil {
		t.Fatal(err)
	}
	run := s.MustSubmit(t, logScript, atelier.RunConfig{Secrets: []string{"API_KEY"}}, nil)
	if got := s.WaitRun(t, run.ID, 30*time.Second); got.Status != atelier.StatusCompleted {
		t.Fatalf("run = %s %q; output:\n%s", got.Status, got.Error, s.Log(t, run.ID, "logs/std_log.txt"))
	}
	out := s.Log(t, run.ID, "logs/std_log.txt")
	_, child, _ := strings.Cut(strings.TrimSpace(out), "child=")
	if child == "" {
		t.Fatalf("the script did not print its child run; output:\n%s", out)
	}
	for _, id := range []string{run.ID, child} {
		if got := s.Log(t, id, "logs/extra.txt"); got != "key=*** token=***\n" {
			t.Errorf("the log run %s's script appended = %q, want its secret and token masked", id, got)
		}
	}

	// Ended, the run's token is gone; its configuration still names the secret.
	if err := s.svc.AppendLog(s.ctx, "default", run.ID, "logs/late.txt", []byte("late "+value+"\n")); err != nil {
		t.Fatal(err)
	}
	if got := s.Log(t, run.ID, "logs/late.txt"); got != "late ***\n" {
		t.Errorf("a log appended after the run ended = %q, want the secret masked", got)
	}
}
