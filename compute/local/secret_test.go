package local_test

import (
	"strings"
	"testing"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/compute/local"
)

// TestSecretsReachTheScriptMasked: a secret is in the script's environment under its name, and
// its value never reaches the captured log or the failed run's error, even on a line longer
// than the capture's buffer and line by line for a multi-line value.
func TestSecretsReachTheScriptMasked(t *testing.T) {
	t.Parallel()
	const value = "s3cr3t-Value-42"
	pem := "-----BEGIN KEY-----\nMIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9Cnzj4p4WGeKLs1Pt8Qu\n-----END KEY-----"
	script := `import os, sys
v = os.environ["API_KEY"]
print("the key is " + v + ", twice: " + v)
print("length", len(v), "matches", v == "` + value + `")
print("x" * 65530 + v + "y" * 10)
print(os.environ["PEM"])
print("the key again:", v, file=sys.stderr)
sys.exit(1)
`
	h, job := MustJob(t, map[string]string{"train.py": script}, atelier.RunConfig{Script: "train.py", Secrets: []string{"API_KEY", "PEM"}})
	job.Secrets = map[string]string{"API_KEY": value, "PEM": pem}
	res := MustExecutor(t).Run(t.Context(), h, job)
	MustResult(t, res, atelier.StatusFailed, "1")
	log := h.Log(local.StdLogPath)
	for _, want := range []string{"the key is ***, twice: ***\n", "length 15 matches True\n", strings.Repeat("x", 100) + "***" + "yyyyyyyyyy\n",
		"***\n***\n***\n", "the key again: ***\n"} {
		if !strings.Contains(log, want) {
			t.Errorf("std_log lacks %q; it is:\n%.2000s", want, log)
		}
	}
	for _, leak := range []string{value, "MIIBOgIBAAJBAKj34", "BEGIN KEY"} {
		if strings.Contains(log, leak) {
			t.Errorf("std_log holds the secret %q", leak)
		}
		if strings.Contains(res.Error, leak) {
			t.Errorf("the run's error holds the secret %q: %q", leak, res.Error)
		}
	}
	if !strings.Contains(res.Error, "the key again: ***") {
		t.Errorf("Error = %q, want the masked last lines", res.Error)
	}
}
