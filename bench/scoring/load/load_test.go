package load

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

func TestRunCountsEveryAnswer(t *testing.T) {
	var n, conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if string(b) != `{"data": [1]}` || r.Header.Get("X-Key") != "k" {
			w.WriteHeader(400)
			return
		}
		if n.Add(1)%10 == 0 {
			w.WriteHeader(500)
			return
		}
		w.Write([]byte("[2]"))
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	res := Run(context.Background(), srv.URL, []byte(`{"data": [1]}`), http.Header{"X-Key": {"k"}}, 4, 300*time.Millisecond)
	// The requests in flight when the time is up are answered but not counted: at most one per worker.
	if res.Requests == 0 || n.Load()-int64(res.Requests) < 0 || n.Load()-int64(res.Requests) > 4 {
		t.Fatalf("%d requests reported, the server answered %d", res.Requests, n.Load())
	}
	if res.Status[400] != 0 || res.Status[500] == 0 || res.OK != res.Requests-res.Status[500] {
		t.Fatalf("statuses %v of %d", res.Status, res.Requests)
	}
	if res.Errors != 0 || res.P50 <= 0 || res.P99 < res.P50 || res.Max < res.P99 || res.RPS <= 0 {
		t.Fatalf("%+v", res)
	}
	// Keep-alive: one connection per worker, not one per request.
	if c := conns.Load(); c > 4 {
		t.Fatalf("%d connections for 4 workers", c)
	}
}

func TestRunOverUnixSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "s.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("Healthy")) })}
	go srv.Serve(l)
	defer srv.Close()
	res := RunConfig(context.Background(), Config{URL: "http://unix/", Concurrency: 2, Duration: 200 * time.Millisecond, Client: NewClient(2, sock)})
	if res.Requests == 0 || res.OK != res.Requests || res.Errors != 0 {
		t.Fatalf("%+v", res)
	}
}

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i))
	}
	if Percentile(d, 50) != 50 || Percentile(d, 99) != 99 || Percentile(d, 100) != 100 || Percentile(nil, 50) != 0 {
		t.Fatal(Percentile(d, 50), Percentile(d, 99))
	}
}
