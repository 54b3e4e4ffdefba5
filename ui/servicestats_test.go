package ui_test

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/server"
	"github.com/atelier-ml/atelier/server/servertest"
	"github.com/atelier-ml/atelier/service"
	"github.com/atelier-ml/atelier/ui"
	"github.com/chromedp/chromedp"
)

// growingMetrics is the service layer with the gateway's counters of service "diabetes"
// growing by 10 requests each read (one a 503; half within 5 ms, all within 10 ms, 4 ms mean),
// beside a service of a similar name that must not be counted with it.
type growingMetrics struct {
	*service.Service
	reads atomic.Int64
}

func (g *growingMetrics) WriteServiceMetrics(ctx context.Context, w io.Writer) error {
	n := 10 * g.reads.Add(1)
	l := `workspace="default",service="diabetes"`
	o := `workspace="default",service="diabetes-2"`
	_, err := fmt.Fprintf(w, `# HELP atelier_service_requests_total Scoring requests answered, by HTTP status.
# TYPE atelier_service_requests_total counter
atelier_service_requests_total{%[1]s,code="200"} %[2]d
atelier_service_requests_total{%[1]s,code="503"} %[3]d
atelier_service_requests_total{%[4]s,code="200"} 999999
# TYPE atelier_service_request_duration_seconds histogram
atelier_service_request_duration_seconds_bucket{%[1]s,le="0.001"} 0
atelier_service_request_duration_seconds_bucket{%[1]s,le="0.005"} %[5]d
atelier_service_request_duration_seconds_bucket{%[1]s,le="0.01"} %[6]d
atelier_service_request_duration_seconds_bucket{%[1]s,le="+Inf"} %[6]d
atelier_service_request_duration_seconds_sum{%[1]s} %[7]g
atelier_service_request_duration_seconds_count{%[1]s} %[6]d
atelier_service_request_duration_seconds_count{%[4]s} 999999
atelier_service_replicas{%[1]s,state="busy"} 1
atelier_service_replicas{%[1]s,state="ready"} 2
atelier_service_replicas{%[1]s,state="desired"} 2
atelier_service_queue_depth{%[1]s} 0
`, l, n-n/10, n/10, o, n/2, n, float64(n)*0.004)
	return err
}

func newServiceStack(t *testing.T) (*servertest.Stack, *growingMetrics) {
	t.Helper()
	var g *growingMetrics
	s := servertest.New(t, servertest.WithoutScheduler(), servertest.Tune(func(srv *server.Server) {
		g = &growingMetrics{Service: srv.Service}
		secure := srv.UI.SecureCookie
		srv.UI = ui.New(g, srv.Service, srv.Service, srv.Service, nil)
		srv.UI.SecureCookie = secure
	}))
	ctx := context.Background()
	if err := s.DB.CreateImage(ctx, "default", &atelier.Image{Name: "svc", Models: []atelier.ImageModel{}, EntryScript: "score.py", SnapshotID: "none"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DB.EndImageBuild(ctx, "default", atelier.ImageRef{Name: "svc", Version: 1}, &atelier.ImageBuildResult{Digest: "sha256:" + strings.Repeat("ab", 32), Size: 1 << 20}, ""); err != nil {
		t.Fatal(err)
	}
	cfg := atelier.WebServiceConfig{}
	cfg.Fill()
	for _, name := range []string{"diabetes", "idle"} {
		if err := s.DB.CreateWebService(ctx, "default", &atelier.WebService{Name: name, Target: "local",
			Images: []atelier.ServiceImage{{Image: "svc:1", Percent: 100}}, Config: cfg, State: atelier.ServiceHealthy}, nil); err != nil {
			t.Fatal(err)
		}
	}
	return s, g
}

// TestServiceStats: a service's page shows its gateway counters (requests by status, mean
// latency), and its stats endpoint answers them as JSON for the charts: only that service's
// lines, the histogram's buckets in order; a service without replicas here says so; an unknown
// service is a 404.
func TestServiceStats(t *testing.T) {
	s, _ := newServiceStack(t)
	code, body := getAs(t, s, s.Token, "/w/default/services/diabetes/stats") // read 1: 10 requests
	if code != 200 {
		t.Fatalf("stats: %d %s", code, body)
	}
	var st struct {
		Running      bool           `json:"running"`
		Requests     int            `json:"requests"`
		Errors       int            `json:"errors"`
		ByStatus     map[string]int `json:"by_status"`
		LatencySum   float64        `json:"latency_sum"`
		LatencyCount int            `json:"latency_count"`
		Buckets      []struct {
			LE    float64
			Count int
		} `json:"buckets"`
		Replicas struct{ Busy, Ready, Desired int } `json:"replicas"`
	}
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatal(err)
	}
	if !st.Running || st.Requests != 10 || st.Errors != 1 || st.ByStatus["200"] != 9 || st.ByStatus["503"] != 1 ||
		st.LatencyCount != 10 || st.LatencySum != 0.04 || len(st.Buckets) != 3 || st.Buckets[1].LE != 0.005 || st.Buckets[1].Count != 5 ||
		st.Replicas.Ready != 2 || st.Replicas.Busy != 1 {
		t.Fatalf("stats: %+v", st)
	}
	_, page := getAs(t, s, s.Token, "/w/default/services/diabetes") // read 2: 20 requests
	if !strings.Contains(page, "20 requests answered since the service started on this server (200 × 18, 503 × 2); mean latency 4.0 ms.") ||
		!strings.Contains(page, `id="rate-chart"`) {
		t.Fatalf("the service page's traffic:\n%s", page)
	}
	_, page = getAs(t, s, s.Token, "/w/default/services/idle")
	if !strings.Contains(page, "no replicas on this server") || strings.Contains(page, `id="rate-chart"`) {
		t.Fatal("a service without replicas here shows traffic")
	}
	if code, body := getAs(t, s, s.Token, "/w/default/services/nosuch/stats"); code != 404 || !strings.Contains(body, `"code":404`) {
		t.Fatalf("an unknown service's stats: %d %s", code, body)
	}
}

// TestServiceChartsInBrowser: the service page's charts poll the counters and draw the request
// rate and the latency of each interval (mean 4 ms, p95 within the 10 ms bucket).
func TestServiceChartsInBrowser(t *testing.T) {
	b := newBrowser(t)
	s, _ := newServiceStack(t)
	tb := b.tab(s.URL)
	tb.open("/login")
	tb.run("pasting the administrator's token", chromedp.SendKeys("#token", s.Token, chromedp.ByQuery),
		chromedp.Click("#login-submit", chromedp.ByQuery), chromedp.WaitVisible("#logout", chromedp.ByQuery))
	tb.open("/w/default/services/diabetes")
	tb.eval(`atelier.serviceInterval = 200`, nil)
	tb.waitJS("three intervals drawn", `+document.getElementById("rate-chart").getAttribute("data-points") >= 3 && +document.getElementById("latency-chart").getAttribute("data-points") >= 3`)
	var got struct {
		Rate, Errors, Mean, P95 float64
		Text                    string
	}
	tb.eval(`(() => { const r = atelier.servicePlots.rate.data, l = atelier.servicePlots.latency.data, n = r[0].length - 1;
		return {rate: r[1][n], errors: r[2][n], mean: l[1][n], p95: l[2][n], text: document.getElementById("service-rate").textContent}; })()`, &got)
	tb.screenshot("service-traffic")
	if got.Rate <= 0 || got.Errors <= 0 || got.Errors >= got.Rate || got.Mean < 3.99 || got.Mean > 4.01 || got.P95 != 10 || !strings.Contains(got.Text, "mean 4.0 ms") {
		t.Fatalf("the charts' last interval: %+v", got)
	}
}

// TestServiceStatsOfARealService deploys an image on the local target (bubblewrap and the
// CPython base image of scripts/build-python-base.sh; skipped without them), scores it, and
// reads the counters the gateway kept through the service page and its stats: the studio reads
// the service layer's own Prometheus text, so this is where a change of its format shows.
func TestServiceStatsOfARealService(t *testing.T) {
	if testing.Short() {
		t.Skip("builds an image and runs a replica")
	}
	if _, err := exec.LookPath("bwrap"); err != nil {
		t.Skip("bubblewrap is not installed (apt install bubblewrap)")
	}
	base := os.Getenv("ATELIER_PYTHON_BASE")
	if base == "" {
		home, _ := os.UserHomeDir()
		base = filepath.Join(home, ".cache", "atelier-test", "python-base", "current")
	}
	if _, err := os.Stat(filepath.Join(base, "index.json")); err != nil {
		t.Skipf("no CPython base image in %s: run scripts/build-python-base.sh", base)
	}
	s := servertest.New(t, servertest.WithConfig(func(c *server.Config) { c.ImageBase = base }))
	ctx := context.Background()
	c := s.Client
	run, err := c.CreateRun(ctx, "default", atelier.RunCreate{Experiment: "svc"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.UploadFile(ctx, "default", run.ID, "outputs/model.json", strings.NewReader(`{"scale": 2}`), ""); err != nil {
		t.Fatal(err)
	}
	if _, err := c.RegisterModel(ctx, "default", atelier.ModelRegister{Name: "doubler", RunID: run.ID, Path: "outputs/model.json"}); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, _ := zw.Create("score.py")
	io.WriteString(w, "import json\ndef init():\n    pass\ndef run(raw):\n    return {\"result\": [x * 2 for x in json.loads(raw)[\"data\"]]}\n")
	zw.Close()
	snap, err := c.UploadSnapshotZip(ctx, "default", &buf)
	if err != nil {
		t.Fatal(err)
	}
	img, err := c.CreateImage(ctx, "default", atelier.ImageCreate{Name: "doubler-svc", Models: []string{"doubler"}, EntryScript: "score.py", SnapshotID: snap.ID})
	if err != nil {
		t.Fatal(err)
	}
	ref := atelier.ImageRef{Name: img.Name, Version: img.Version}
	waitUntil(t, "the image built", func() bool {
		img, err = c.FindImage(ctx, "default", ref)
		return err == nil && img.Status.Ended()
	})
	if img.Status != atelier.ImageSucceeded {
		log, _ := c.ImageLog(ctx, "default", ref, 0)
		t.Fatalf("image %s (%s)\n%s", img.Status, img.Error, log)
	}
	if _, err := c.DeployWebService(ctx, "default", atelier.WebServiceDeploy{Name: "doubler", Image: "doubler-svc:1"}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the service healthy", func() bool {
		svc, err := c.FindWebService(ctx, "default", "doubler")
		return err == nil && svc.State == atelier.ServiceHealthy
	})
	svc, _ := c.FindWebService(ctx, "default", "doubler")
	auth := ""
	if svc.Config.AuthEnabled {
		keys, err := c.WebServiceKeys(ctx, "default", "doubler", "")
		if err != nil {
			t.Fatal(err)
		}
		auth = "Bearer " + keys.Primary
	}
	for range 3 {
		resp, err := c.Score(ctx, "default", "doubler", "/score", auth, strings.NewReader(`{"data": [1, 2]}`))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(b), "[2, 4]") {
			t.Fatalf("score: %d %s", resp.StatusCode, b)
		}
	}
	// The gateway counts a request once its answer is written: the last may be counted just
	// after the client read it.
	var code int
	var body string
	waitUntil(t, "the 3 requests counted", func() bool {
		code, body = getAs(t, s, s.Token, "/w/default/services/doubler/stats")
		return code != 200 || strings.Contains(body, `"requests":3,`)
	})
	var st struct {
		Running      bool           `json:"running"`
		Requests     int            `json:"requests"`
		ByStatus     map[string]int `json:"by_status"`
		LatencyCount int            `json:"latency_count"`
		LatencySum   float64        `json:"latency_sum"`
		Buckets      []struct {
			LE    float64 `json:"le"`
			Count int     `json:"count"`
		} `json:"buckets"`
		Replicas struct{ Ready int } `json:"replicas"`
	}
	if code != 200 || json.Unmarshal([]byte(body), &st) != nil {
		t.Fatalf("stats: %d %s", code, body)
	}
	if !st.Running || st.Requests != 3 || st.ByStatus["200"] != 3 || st.LatencyCount != 3 || st.LatencySum <= 0 ||
		len(st.Buckets) == 0 || st.Buckets[len(st.Buckets)-1].Count != 3 || st.Replicas.Ready < 1 {
		t.Fatalf("the stats of a service scored 3 times: %s", body)
	}
	if _, page := getAs(t, s, s.Token, "/w/default/services/doubler"); !strings.Contains(page, "3 requests answered since the service started on this server (200 × 3)") {
		t.Fatal("the service page does not show its 3 requests")
	}
}

// waitUntil polls cond until it holds (a build or a deployment), failing after 3 minutes.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waiting until %s: timed out", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
