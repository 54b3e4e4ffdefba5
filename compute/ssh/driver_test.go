package ssh

import (
	"os/exec"
	"runtime"
	"testing"
)

// What the driver quotes reaches a real shell unchanged: secrets' values go through it.
func TestQuote(t *testing.T) {
	for _, s := range []string{"", "plain", "it's", `"$HOME" $(id) ` + "`id`", "new\nline", `back\slash '' '\''`} {
		out, err := exec.Command("sh", "-c", "printf %s "+quote(s)).Output()
		if err != nil {
			t.Fatal(err)
		}
		if string(out) != s {
			t.Errorf("quote(%q) reached the shell as %q", s, out)
		}
	}
}

func TestParseStat(t *testing.T) {
	line := "4242 (a (weird) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 100\n"
	start, state, err := parseStat(line)
	if err != nil || start != 987654 || state != 'S' {
		t.Errorf("parseStat = %d, %c, %v; want 987654, S", start, state, err)
	}
	if _, _, err := parseStat("4242 (x) S 1"); err == nil {
		t.Error("parseStat of a short line: no error")
	}
}

func TestSameMachineKind(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("uname -sm is compared on Linux servers")
	}
	out, err := exec.Command("uname", "-sm").Output()
	if err != nil {
		t.Skip("no uname")
	}
	if !sameMachineKind(string(out)) {
		t.Errorf("this machine's %q is not taken for %s/%s", out, runtime.GOOS, runtime.GOARCH)
	}
	if sameMachineKind("Darwin arm64") && sameMachineKind("Linux x86_64") {
		t.Error("two kinds of machines both match")
	}
}

func TestParseHandle(t *testing.T) {
	d := &Driver{}
	for _, bad := range []string{"", "garbage", "{}", `{"pid": -1}`,
		`{"target":"box","host":"h","user":"u","pid":1,"start":1,"dir":"relative/jobs/r"}`,
		`{"target":"box","host":"h","user":"u","pid":1,"start":1,"dir":"/home/u/.cache/atelier/jobs/../../x"}`} {
		if _, err := d.parse(bad); err == nil {
			t.Errorf("parse(%q): no error", bad)
		}
	}
	if _, err := d.parse(`{"workspace":"default","target":"box","host":"h","port":22,"user":"u","pid":1,"start":1,"dir":"/home/u/.cache/atelier/jobs/r"}`); err != nil {
		t.Error(err)
	}
}
