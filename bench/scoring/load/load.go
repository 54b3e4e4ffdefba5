// Package load is a closed-loop HTTP load generator: a fixed number of workers, each sending
// one request at a time over its own keep-alive connection for a fixed time, as a scoring
// service's clients do. It reports throughput and latency percentiles.
//
//	res := load.Run(ctx, "http://127.0.0.1:5001/score", body, hdr, 8, 10*time.Second)
//	fmt.Println(res)
package load

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"
)

// Result is what a run measured. Latencies are of completed requests, whatever their status.
type Result struct {
	Concurrency int
	Duration    time.Duration // measured wall time
	Requests    int           // completed (any status)
	OK          int           // 2xx
	Status      map[int]int   // count per status code
	Errors      int           // transport errors (no response)
	FirstError  string
	RPS         float64 // completed requests per second
	P50, P90    time.Duration
	P99, Max    time.Duration
}

func (r Result) String() string {
	return fmt.Sprintf("c=%d %.0f req/s p50 %s p99 %s max %s (%d requests, %d non-2xx, %d errors)",
		r.Concurrency, r.RPS, ms(r.P50), ms(r.P99), ms(r.Max), r.Requests, r.Requests-r.OK, r.Errors)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond)) }

// Config is a run; Run fills in a client and POST when they are zero.
type Config struct {
	URL         string
	Method      string // POST when empty (GET when Body is nil)
	Body        []byte
	Header      http.Header
	Concurrency int
	Duration    time.Duration
	// Client sends the requests; by default one with a keep-alive connection per worker.
	Client *http.Client
}

// Run sends requests to url with concurrency workers for duration (or until ctx ends).
func Run(ctx context.Context, url string, body []byte, header http.Header, concurrency int, duration time.Duration) Result {
	return RunConfig(ctx, Config{URL: url, Body: body, Header: header, Concurrency: concurrency, Duration: duration})
}

// NewClient is an HTTP client keeping up to conns keep-alive connections. With socketPath set,
// every connection goes to that Unix socket whatever the URL's host (use http://unix/...).
func NewClient(conns int, socketPath string) *http.Client {
	tr := &http.Transport{
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		MaxConnsPerHost:     conns,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	if socketPath != "" {
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socketPath)
		}
	}
	return &http.Client{Transport: tr}
}

// RunConfig is Run with every knob.
func RunConfig(ctx context.Context, c Config) Result {
	if c.Concurrency < 1 {
		c.Concurrency = 1
	}
	if c.Method == "" {
		c.Method = http.MethodPost
		if c.Body == nil {
			c.Method = http.MethodGet
		}
	}
	client := c.Client
	if client == nil {
		client = NewClient(c.Concurrency, "")
		defer client.CloseIdleConnections()
	}
	ctx, cancel := context.WithTimeout(ctx, c.Duration)
	defer cancel()

	type worker struct {
		lat    []time.Duration
		status map[int]int
		errs   int
		first  string
	}
	workers := make([]*worker, c.Concurrency)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range workers {
		w := &worker{status: map[int]int{}, lat: make([]time.Duration, 0, 4096)}
		workers[i] = w
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				req, err := http.NewRequestWithContext(ctx, c.Method, c.URL, bytes.NewReader(c.Body))
				if err != nil {
					w.errs++
					w.first = err.Error()
					return
				}
				if c.Body == nil {
					req.Body, req.ContentLength = nil, 0
				}
				for k, v := range c.Header {
					req.Header[k] = v
				}
				if req.Header.Get("Content-Type") == "" && c.Body != nil {
					req.Header.Set("Content-Type", "application/json")
				}
				t0 := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					if ctx.Err() != nil {
						return // the run ended mid-request: not an error of the server
					}
					w.errs++
					if w.first == "" {
						w.first = err.Error()
					}
					continue
				}
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err != nil && ctx.Err() != nil {
					return
				}
				w.lat = append(w.lat, time.Since(t0))
				w.status[resp.StatusCode]++
			}
		}()
	}
	wg.Wait()
	res := Result{Concurrency: c.Concurrency, Duration: time.Since(start), Status: map[int]int{}}
	var all []time.Duration
	for _, w := range workers {
		all = append(all, w.lat...)
		for s, n := range w.status {
			res.Status[s] += n
			if s >= 200 && s < 300 {
				res.OK += n
			}
		}
		res.Errors += w.errs
		if res.FirstError == "" {
			res.FirstError = w.first
		}
	}
	res.Requests = len(all)
	if res.Duration > 0 {
		res.RPS = float64(res.Requests) / res.Duration.Seconds()
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	res.P50, res.P90, res.P99 = Percentile(all, 50), Percentile(all, 90), Percentile(all, 99)
	if len(all) > 0 {
		res.Max = all[len(all)-1]
	}
	return res
}

// Percentile of sorted latencies (nearest rank); 0 when there are none.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p/100*float64(len(sorted))+0.5) - 1
	if i < 0 {
		i = 0
	}
	if i >= len(sorted) {
		i = len(sorted) - 1
	}
	return sorted[i]
}

// StatusSummary is "200×1234 500×2", for reports.
func (r Result) StatusSummary() string {
	codes := make([]int, 0, len(r.Status))
	for s := range r.Status {
		codes = append(codes, s)
	}
	sort.Ints(codes)
	parts := make([]string, len(codes))
	for i, s := range codes {
		parts[i] = fmt.Sprintf("%d×%d", s, r.Status[s])
	}
	return strings.Join(parts, " ")
}
