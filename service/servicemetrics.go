package service

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/atelier-ml/atelier"
)

// latencyBuckets are the upper bounds (seconds) of the scoring latency histogram.
var latencyBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}

// serviceMetrics counts a service's requests for Prometheus.
type serviceMetrics struct {
	mu         sync.Mutex
	byStatus   map[int]uint64
	buckets    []uint64 // per latencyBuckets, then +Inf
	sum        float64
	count      uint64
	coldStarts uint64
	scaleUp    uint64
	scaleDown  uint64
}

func newServiceMetrics() *serviceMetrics {
	return &serviceMetrics{byStatus: map[int]uint64{}, buckets: make([]uint64, len(latencyBuckets)+1)}
}

func (m *serviceMetrics) request(status int, took time.Duration) {
	sec := took.Seconds()
	i := sort.SearchFloat64s(latencyBuckets, sec)
	m.mu.Lock()
	m.byStatus[status]++
	m.buckets[i]++
	m.sum += sec
	m.count++
	m.mu.Unlock()
}

func (m *serviceMetrics) event(kind, msg string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case kind == "replica.started":
		m.coldStarts++
	case kind == "scale" && strings.HasPrefix(msg, "scaling down"):
		m.scaleDown++
	case kind == "scale":
		m.scaleUp++
	}
}

// WriteServiceMetrics writes the metrics of the web services this server runs, of the
// workspaces the caller may read, in Prometheus' text format: requests by status, latency,
// queue depth, replicas busy / ready / desired, cold starts and scale events.
func (s *WebServices) WriteServiceMetrics(ctx context.Context, w io.Writer) error {
	if atelier.PrincipalFromContext(ctx) == nil {
		return atelier.Errorf(atelier.EUNAUTHORIZED, "authentication required")
	}
	s.deploys.mu.Lock()
	list := make([]*deployment, 0, len(s.deploys.running))
	for _, d := range s.deploys.running {
		list = append(list, d)
	}
	s.deploys.mu.Unlock()
	slices.SortFunc(list, func(a, b *deployment) int {
		return strings.Compare(a.workspace+"/"+a.name, b.workspace+"/"+b.name)
	})
	readable := map[string]bool{}
	var b strings.Builder
	header := func(name, kind, help string) {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, kind)
	}
	var shown []*deployment
	for _, d := range list {
		ok, seen := readable[d.workspace]
		if !seen {
			ok = s.authorize(ctx, d.workspace) == nil
			readable[d.workspace] = ok
		}
		if ok {
			shown = append(shown, d)
		}
	}
	labels := func(d *deployment) string {
		return "workspace=" + strconv.Quote(d.workspace) + ",service=" + strconv.Quote(d.name)
	}
	header("atelier_service_requests_total", "counter", "Scoring requests answered, by HTTP status.")
	for _, d := range shown {
		d.metrics.mu.Lock()
		codes := make([]int, 0, len(d.metrics.byStatus))
		for c := range d.metrics.byStatus {
			codes = append(codes, c)
		}
		sort.Ints(codes)
		for _, c := range codes {
			fmt.Fprintf(&b, "atelier_service_requests_total{%s,code=\"%d\"} %d\n", labels(d), c, d.metrics.byStatus[c])
		}
		d.metrics.mu.Unlock()
	}
	header("atelier_service_request_duration_seconds", "histogram", "Scoring latency at the gateway.")
	for _, d := range shown {
		d.metrics.mu.Lock()
		var cum uint64
		for i, le := range latencyBuckets {
			cum += d.metrics.buckets[i]
			fmt.Fprintf(&b, "atelier_service_request_duration_seconds_bucket{%s,le=\"%g\"} %d\n", labels(d), le, cum)
		}
		cum += d.metrics.buckets[len(latencyBuckets)]
		fmt.Fprintf(&b, "atelier_service_request_duration_seconds_bucket{%s,le=\"+Inf\"} %d\n", labels(d), cum)
		fmt.Fprintf(&b, "atelier_service_request_duration_seconds_sum{%s} %g\n", labels(d), d.metrics.sum)
		fmt.Fprintf(&b, "atelier_service_request_duration_seconds_count{%s} %d\n", labels(d), d.metrics.count)
		d.metrics.mu.Unlock()
	}
	header("atelier_service_replicas", "gauge", "Replicas by state: busy, ready, desired.")
	for _, d := range shown {
		c := d.counts()
		fmt.Fprintf(&b, "atelier_service_replicas{%s,state=\"busy\"} %d\n", labels(d), c.Busy)
		fmt.Fprintf(&b, "atelier_service_replicas{%s,state=\"ready\"} %d\n", labels(d), c.Ready)
		fmt.Fprintf(&b, "atelier_service_replicas{%s,state=\"desired\"} %d\n", labels(d), c.Desired)
	}
	header("atelier_service_queue_depth", "gauge", "Requests waiting for a free replica.")
	for _, d := range shown {
		fmt.Fprintf(&b, "atelier_service_queue_depth{%s} %d\n", labels(d), d.counts().Queued)
	}
	header("atelier_service_cold_starts_total", "counter", "Replicas started (process start to ready).")
	for _, d := range shown {
		d.metrics.mu.Lock()
		fmt.Fprintf(&b, "atelier_service_cold_starts_total{%s} %d\n", labels(d), d.metrics.coldStarts)
		d.metrics.mu.Unlock()
	}
	header("atelier_service_scale_events_total", "counter", "Autoscaler decisions, by direction.")
	for _, d := range shown {
		d.metrics.mu.Lock()
		fmt.Fprintf(&b, "atelier_service_scale_events_total{%s,direction=\"up\"} %d\n", labels(d), d.metrics.scaleUp)
		fmt.Fprintf(&b, "atelier_service_scale_events_total{%s,direction=\"down\"} %d\n", labels(d), d.metrics.scaleDown)
		d.metrics.mu.Unlock()
	}
	_, err := io.WriteString(w, b.String())
	return err
}
