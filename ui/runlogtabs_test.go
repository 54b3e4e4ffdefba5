package ui_test

import (
	"context"
	"html"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/server/servertest"
)

// TestRunLogTabs: each log tab of the run page opens its log, whatever its path holds (a
// folder, a space); the tab's link was once escaped twice and opened nothing.
func TestRunLogTabs(t *testing.T) {
	s := servertest.New(t, servertest.WithoutScheduler())
	ctx := context.Background()
	run, err := s.Client.CreateRun(ctx, "default", atelier.RunCreate{Experiment: "tabs", Status: atelier.StatusRunning})
	if err != nil {
		t.Fatal(err)
	}
	logs := map[string]string{"logs/std_log.txt": "the standard log", "logs/sub dir/a b.log": "the nested log"}
	for path, text := range logs {
		if err := s.Client.AppendLog(ctx, "default", run.ID, path, []byte(text+"\n")); err != nil {
			t.Fatal(err)
		}
	}
	get := func(path string) string {
		req, _ := http.NewRequest("GET", s.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+s.Token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d\n%s", path, resp.StatusCode, b)
		}
		return string(b)
	}
	page := "/w/default/runs/" + run.ID
	tabs := regexp.MustCompile(`<a href="(\?log=[^"#]*)#h-log"[^>]*>([^<]*)</a>`).FindAllStringSubmatch(get(page), -1)
	if len(tabs) != len(logs) {
		t.Fatalf("%d log tabs, want %d: %v", len(tabs), len(logs), tabs)
	}
	for _, tab := range tabs {
		path := html.UnescapeString(tab[2])
		want, ok := logs[path]
		if !ok {
			t.Fatalf("a tab names %q, not one of the run's logs", path)
		}
		if body := get(page + html.UnescapeString(tab[1])); !strings.Contains(body, want) {
			t.Errorf("the tab of %s (%s) does not open its log (%q not in the page)", path, tab[1], want)
		}
	}
}
