package service

import (
	"strings"
	"testing"

	"github.com/atelier-ml/atelier"
)

// A capacity_error is one line of at most 500 bytes without any credential's value: a
// driver's message that quotes one (a token echoed by a proxy, a kubeconfig's token) is
// redacted.
func TestCapacityErrorLine(t *testing.T) {
	creds := atelier.ComputeCredentials{Token: "eyJhbGciOi.payload.signature",
		Kubeconfig: "apiVersion: v1\nclusters: []\nusers:\n- name: u\n  user:\n    token: \"k8s-secret-token\"\n    client-key-data: QUJDREVGRw==\n"}
	msg := oneLine("compute target hpc: slurmrestd said:\n  bad token eyJhbGciOi.payload.signature\tfor k8s-secret-token and QUJDREVGRw==", creds)
	if strings.ContainsAny(msg, "\n\t") || strings.Contains(msg, "signature") || strings.Contains(msg, "k8s-secret-token") || strings.Contains(msg, "QUJDREVGRw==") {
		t.Errorf("oneLine = %q", msg)
	}
	if want := "compute target hpc: slurmrestd said: bad token [redacted] for [redacted] and [redacted]"; msg != want {
		t.Errorf("oneLine = %q, want %q", msg, want)
	}
	if long := oneLine(strings.Repeat("é", 400), creds); len(long) > 500 || !strings.HasSuffix(long, "...") {
		t.Errorf("a long message is %d bytes: %q", len(long), long)
	}
}
