package main

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/service"
)

func TestPrintable(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"plain name", "plain name"},
		{"diabetes ridge (v2) é 日本 😀", "diabetes ridge (v2) é 日本 😀"},
		{"a\x1b[2Jb", `a\x1b[2Jb`},
		{"\x00\a\b\n\r\v\f\x7f", `\x00\a\b\n\r\v\f\x7f`},
		{"c1 \u0085 \u009b2J", `c1 \u0085 \u009b2J`},
		{"abc\u202edcba\u2066x\u200f", `abc\u202edcba\u2066x\u200f`},
		{"line\u2028sep\u2029", `line\u2028sep\u2029`},
		{"bad \xff\xc3 byte", `bad \xff\xc3 byte`},
		{"a real \ufffd stays", "a real \ufffd stays"},
		{`C:\path\x1b`, `C:\path\x1b`},
	} {
		if got := printable(tt.in); got != tt.want {
			t.Errorf("printable(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	if got := printableLines("first\x1b[H\nsecond\r"); got != "first\\x1b[H\nsecond\\r" {
		t.Errorf("printableLines = %q", got)
	}
}

// TestTableEscapesControlCharacters: every cell of a table, whatever its type, is printable;
// the columns stay aligned.
func TestTableEscapesControlCharacters(t *testing.T) {
	var buf bytes.Buffer
	tab := newTable(&buf, "NAME", "STATUS", "TAGS")
	tab.row("evil\x1b[2J\x1b[1;1Hname", atelier.RunStatus("Run\u009bning"), kvString(map[string]string{"k": "v\u202e\n"}))
	tab.row("ok", atelier.StatusCompleted, "-")
	tab.flush()
	got := buf.String()
	want := "NAME                      STATUS         TAGS\n" +
		`evil\x1b[2J\x1b[1;1Hname  Run\u009bning  k=v\u202e\n` + "\n" +
		"ok                        Completed      -\n"
	if got != want {
		t.Errorf("table:\n%s\nwant:\n%s", got, want)
	}
}

// TestCLIEscapesServerText: what anyone may write on the server, a run's name or the path of
// a refused request the audit log keeps, reaches the administrator's terminal escaped, and
// -o json keeps it exact.
func TestCLIEscapesServerText(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the real binary")
	}
	ctx := context.Background()
	dataDir := t.TempDir()
	srv := startServer(t, dataDir, freeAddr(t))
	const name = "evil\x1b[2J\x1b[1;1Hname\u202e"
	if _, err := srv.client.CreateRun(ctx, "default", atelier.RunCreate{Experiment: "e", Name: name}); err != nil {
		t.Fatal(err)
	}
	token, err := service.ReadTokenFile(filepath.Join(dataDir, adminTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("POST", srv.url+"/api/v1/workspaces/default/runs/nope/logs/%1B%5B2J%1B%5B1;1Hforged", strings.NewReader("x"))
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode < 400 {
		t.Fatalf("the append to a missing run answered %s", resp.Status)
	}

	bin, err := buildBinary()
	if err != nil {
		t.Fatal(err)
	}
	atelierCLI := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), "ATELIER_SERVER="+srv.url, "ATELIER_TOKEN="+token)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("atelier %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"run", "list"}, `evil\x1b[2J\x1b[1;1Hname\u202e`},
		{[]string{"audit", "list"}, `/logs/\x1b[2J\x1b[1;1Hforged`},
	} {
		out := atelierCLI(tt.args...)
		if !strings.Contains(out, tt.want) || strings.ContainsAny(out, "\x1b\u202e") {
			t.Errorf("atelier %s printed %q, want %q escaped", strings.Join(tt.args, " "), out, tt.want)
		}
	}
	if out := atelierCLI("run", "list", "-o", "json"); !strings.Contains(out, `"name": "evil\u001b[2J\u001b[1;1Hname`+"\u202e\"") {
		t.Errorf("atelier run list -o json printed %q, want the name exact", out)
	}
}

// TestFormatMetric: the precision of metrics in every table (issue 25).
func TestFormatMetric(t *testing.T) {
	for _, tt := range []struct {
		in   float64
		want string
	}{
		{70, "70"}, {-3, "-3"}, {0, "0"}, {1234567, "1234567"}, {50.1, "50.1"},
		{50.123456789, "50.1235"}, {0.98765432, "0.987654"}, {0.000123456789, "0.000123457"},
		{1.5e-7, "1.5e-07"}, {1234567.891, "1234568"}, {-9876543.21, "-9876543"}, {2.5e20, "2.5e+20"},
		{math.NaN(), "NaN"}, {math.Inf(1), "+Inf"}, {math.Inf(-1), "-Inf"},
	} {
		if got := formatMetric(tt.in); got != tt.want {
			t.Errorf("formatMetric(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
	if got := kvString(map[string]atelier.Float{"rmse": 50.123456789, "epochs": 12}); got != "epochs=12 rmse=50.1235" {
		t.Errorf("kvString of metrics = %q", got)
	}
}

// TestRunTree: children right under their parent, grandchildren deeper, runs whose parent is
// not listed at the top level in their order; a cycle loses no run.
func TestRunTree(t *testing.T) {
	runs := []*atelier.Run{{ID: "c1", ParentID: "p"}, {ID: "x", ParentID: "elsewhere"}, {ID: "p"},
		{ID: "g", ParentID: "c1"}, {ID: "c2", ParentID: "p"}, {ID: "a", ParentID: "b"}, {ID: "b", ParentID: "a"}}
	ordered, depths := runTree(runs)
	var got []string
	for i, r := range ordered {
		got = append(got, fmt.Sprintf("%s:%d", r.ID, depths[i]))
	}
	if s := strings.Join(got, " "); s != "x:0 p:0 c1:1 g:2 c2:1 a:0 b:1" {
		t.Errorf("runTree = %s", s)
	}
}
