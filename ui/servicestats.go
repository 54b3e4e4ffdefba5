package ui

import (
	"bufio"
	"context"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
)

// serviceStats is a web service's gateway counters on this server, as the service layer keeps
// them for Prometheus (/metrics): the service's page shows them and its charts poll them
// (GET /w/{ws}/services/{name}/stats) to draw the request rate and latency.
type serviceStats struct {
	Time    int64 `json:"time"` // when they were read, ms since the epoch
	Running bool  `json:"running"`
	// Requests are the scoring requests answered since the service started on this server,
	// ByStatus by HTTP status, Errors the 5xx among them.
	Requests uint64            `json:"requests"`
	ByStatus map[string]uint64 `json:"by_status"`
	Errors   uint64            `json:"errors"`
	// LatencySum (seconds) and LatencyCount are the histogram's; Buckets its cumulative counts
	// by upper bound (seconds; the +Inf bucket is LatencyCount).
	LatencySum   float64  `json:"latency_sum"`
	LatencyCount uint64   `json:"latency_count"`
	Buckets      []bucket `json:"buckets"`
	Replicas     struct {
		Busy    uint64 `json:"busy"`
		Ready   uint64 `json:"ready"`
		Desired uint64 `json:"desired"`
	} `json:"replicas"`
	Queued uint64 `json:"queued"`
}

type bucket struct {
	LE    float64 `json:"le"`
	Count uint64  `json:"count"`
}

// MeanMs is the mean latency in milliseconds, "" without requests.
func (s *serviceStats) MeanMs() string {
	if s.LatencyCount == 0 {
		return ""
	}
	return strconv.FormatFloat(s.LatencySum/float64(s.LatencyCount)*1000, 'f', 1, 64)
}

// Statuses are the answered statuses in order, with their counts.
func (s *serviceStats) Statuses() []string {
	codes := make([]string, 0, len(s.ByStatus))
	for c := range s.ByStatus {
		codes = append(codes, c)
	}
	sort.Strings(codes)
	for i, c := range codes {
		codes[i] = c + " × " + strconv.FormatUint(s.ByStatus[c], 10)
	}
	return codes
}

// serviceMetricsWriter is how the studio reads the gateway's counters: the service layer's
// Prometheus text (*service.Service implements it; Services without it show no traffic).
type serviceMetricsWriter interface {
	WriteServiceMetrics(ctx context.Context, w io.Writer) error
}

// readServiceStats reads one service's counters out of the service layer's Prometheus text:
// its lines are the services of the workspaces the caller may read, labelled
// workspace="…",service="…".
func (h *Handler) readServiceStats(ctx context.Context, ws, name string) (*serviceStats, error) {
	st := &serviceStats{Time: time.Now().UnixMilli(), ByStatus: map[string]uint64{}, Buckets: []bucket{}}
	mw, ok := h.svc.(serviceMetricsWriter)
	if !ok {
		return st, nil
	}
	var b strings.Builder
	if err := mw.WriteServiceMetrics(ctx, &b); err != nil {
		return nil, err
	}
	prefix := "workspace=" + strconv.Quote(ws) + ",service=" + strconv.Quote(name)
	sc := bufio.NewScanner(strings.NewReader(b.String()))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i, j := strings.IndexByte(line, '{'), strings.LastIndexByte(line, '}')
		if i < 0 || j < i {
			continue
		}
		metric, labels, value := line[:i], line[i+1:j], strings.TrimSpace(line[j+1:])
		extra, ok := strings.CutPrefix(labels, prefix)
		if !ok || (extra != "" && extra[0] != ',') {
			continue
		}
		st.Running = true
		key, val := "", ""
		if extra != "" {
			k, v, _ := strings.Cut(extra[1:], "=")
			uq, err := strconv.Unquote(v)
			if err != nil {
				continue
			}
			key, val = k, uq
		}
		f, err := strconv.ParseFloat(value, 64)
		if err != nil || math.IsNaN(f) {
			continue
		}
		n := uint64(max(0, f))
		switch {
		case metric == "atelier_service_requests_total" && key == "code":
			st.ByStatus[val] += n
			st.Requests += n
			if strings.HasPrefix(val, "5") {
				st.Errors += n
			}
		case metric == "atelier_service_request_duration_seconds_bucket" && key == "le" && val != "+Inf":
			if le, err := strconv.ParseFloat(val, 64); err == nil {
				st.Buckets = append(st.Buckets, bucket{LE: le, Count: n})
			}
		case metric == "atelier_service_request_duration_seconds_sum" && key == "":
			st.LatencySum = f
		case metric == "atelier_service_request_duration_seconds_count" && key == "":
			st.LatencyCount = n
		case metric == "atelier_service_replicas" && key == "state":
			switch val {
			case "busy":
				st.Replicas.Busy = n
			case "ready":
				st.Replicas.Ready = n
			case "desired":
				st.Replicas.Desired = n
			}
		case metric == "atelier_service_queue_depth" && key == "":
			st.Queued = n
		}
	}
	sort.Slice(st.Buckets, func(a, b int) bool { return st.Buckets[a].LE < st.Buckets[b].LE })
	return st, sc.Err()
}

// serviceStatsData answers a service's counters (GET /w/{ws}/services/{name}/stats); a service
// the caller may not read, or that does not exist, is a 404.
func (h *Handler) serviceStatsData(q *request) (any, error) {
	name := q.r.PathValue("service")
	if _, err := h.svc.FindWebService(q.ctx(), q.ws(), name); err != nil {
		return nil, err
	}
	return h.readServiceStats(q.ctx(), q.ws(), name)
}
