package serving_test

import (
	"context"
	"errors"
	"fmt"
	"io"

	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/atelier-ml/atelier/python"
	"github.com/atelier-ml/atelier/serving"
)

// A score.py whose run() takes as long as the request asks: the load of a test is known.
const sleepyScore = `import json, time
def init():
    pass
def run(raw):
    req = json.loads(raw)
    time.sleep(req.get("sleep", 0))
    return {"ok": True}
`

// starter starts real scoring runtimes (oci/build/runtime) with score, on Unix sockets, as the
// local target does but without an image's filesystem.
func starter(t testing.TB, score string) (serving.StartFunc, *atomic.Int32) {
	t.Helper()
	py, _, err := python.Resolve(context.Background(), "python3")
	if err != nil {
		t.Skipf("no python3: %v", err)
	}
	_, file, _, _ := runtime.Caller(0)
	rt := filepath.Join(filepath.Dir(file), "..", "oci", "build", "runtime", "atelier_runtime.py")
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "score.py"), []byte(score), 0o644); err != nil {
		t.Fatal(err)
	}
	var started atomic.Int32
	var mu sync.Mutex
	var all []serving.Replica
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, r := range all {
			r.Stop()
		}
	})
	return func(ctx context.Context, n int) (serving.Replica, error) {
		sock := filepath.Join(dir, fmt.Sprintf("r%d.sock", n))
		cmd := exec.Command(py, rt)
		cmd.Env = append(os.Environ(), "AZUREML_ENTRY_SCRIPT="+filepath.Join(dir, "score.py"), "AZUREML_MODEL_DIR="+dir,
			"ATELIER_SCORE_SOCKET="+sock, "ATELIER_ACCESS_LOG=0")
		r, err := serving.StartProcess(ctx, cmd, sock, nil)
		if err == nil {
			started.Add(1)
			mu.Lock()
			all = append(all, r)
			mu.Unlock()
		}
		return r, err
	}, &started
}

func post(t *testing.T, pool *serving.Pool, body string) (int, string, error) {
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("POST", "/score", strings.NewReader(body))
	res := pool.Serve(rec, req, "/score")
	if res.Err != nil {
		return 0, "", res.Err
	}
	b, _ := io.ReadAll(rec.Result().Body)
	return rec.Code, string(b), nil
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("still waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestAutoscale: under a step of load the pool grows from 1 replica toward the load (at once),
// and after the load stops it shrinks back to its minimum once the scale-down delay passed.
func TestAutoscale(t *testing.T) {
	start, _ := starter(t, sleepyScore)
	var events []string
	var emu sync.Mutex
	pool := serving.NewPool(serving.Config{Autoscale: true, Min: 1, Max: 4, TargetUtilization: 70, Refresh: 100 * time.Millisecond,
		ScaleDownDelay: 300 * time.Millisecond, MaxConcurrent: 1, MaxWait: time.Minute, Timeout: time.Minute}, start, nil,
		func(e serving.Event) { emu.Lock(); events = append(events, e.Message); emu.Unlock() })
	defer pool.Close(context.Background())
	if err := pool.WaitReady(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	// 6 clients keep every replica busy: utilization stays at 100 % until 4 replicas (the
	// maximum) are ready.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var failures atomic.Int32
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if code, body, err := post(t, pool, `{"sleep": 0.05}`); err != nil || code != 200 {
					failures.Add(1)
					t.Logf("request: %d %s %v", code, body, err)
				}
			}
		}()
	}
	waitFor(t, "4 ready replicas under load", func() bool { return pool.Stats().Ready == 4 })
	close(stop)
	wg.Wait()
	if n := failures.Load(); n > 0 {
		t.Fatalf("%d requests failed while scaling up", n)
	}
	waitFor(t, "the scale down to 1 replica", func() bool { st := pool.Stats(); return st.Desired == 1 && st.Ready == 1 })
	emu.Lock()
	log := strings.Join(events, "\n")
	emu.Unlock()
	if !strings.Contains(log, "scaling up") || !strings.Contains(log, "scaling down from 4 to 1") {
		t.Fatalf("scale events:\n%s", log)
	}
}

// TestScaleToZero: with a minimum of 0 the pool stops its last replica after the delay; the
// next request waits for a replica to start (a cold start) and is answered.
func TestScaleToZero(t *testing.T) {
	start, started := starter(t, sleepyScore)
	pool := serving.NewPool(serving.Config{Autoscale: true, Min: 0, Max: 2, TargetUtilization: 70, Refresh: 50 * time.Millisecond,
		ScaleDownDelay: 200 * time.Millisecond, MaxConcurrent: 1, MaxWait: 100 * time.Millisecond, Timeout: time.Minute}, start, nil, nil)
	defer pool.Close(context.Background())
	if st := pool.Stats(); st.Desired != 0 {
		t.Fatalf("a pool of minimum 0 starts with %d replicas wanted", st.Desired)
	}
	if code, _, err := post(t, pool, `{}`); err != nil || code != 200 {
		t.Fatalf("cold start: %d %v", code, err)
	}
	// (The autoscaler may add a second while the first starts: one request queued on no ready
	// replica is over the 70 % target.)
	if n := started.Load(); n < 1 || n > 2 {
		t.Fatalf("%d replicas started for the first request", n)
	}
	waitFor(t, "the scale to zero", func() bool { st := pool.Stats(); return st.Desired == 0 && st.Ready == 0 })
	if code, _, err := post(t, pool, `{}`); err != nil || code != 200 {
		t.Fatalf("second cold start: %d %v", code, err)
	}
}

// TestQueueTimeout: with every replica busy, a request waits max_request_wait_time, then is
// refused with ErrBusy (the gateway's 503); a request that finds a replica freed in time is
// served.
func TestQueueTimeout(t *testing.T) {
	start, _ := starter(t, sleepyScore)
	pool := serving.NewPool(serving.Config{Replicas: 1, MaxConcurrent: 1, MaxWait: 100 * time.Millisecond, Timeout: time.Minute, Refresh: time.Second}, start, nil, nil)
	defer pool.Close(context.Background())
	if err := pool.WaitReady(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	slow := make(chan error)
	go func() { _, _, err := post(t, pool, `{"sleep": 2}`); slow <- err }()
	waitFor(t, "the slow request to hold the replica", func() bool { return pool.Stats().Busy == 1 })
	if _, _, err := post(t, pool, `{}`); !errors.Is(err, serving.ErrBusy) {
		t.Fatalf("a request while the only replica is busy: %v", err)
	}
	if err := <-slow; err != nil {
		t.Fatal(err)
	}
	if code, _, err := post(t, pool, `{}`); err != nil || code != 200 {
		t.Fatalf("after the replica is free: %d %v", code, err)
	}
}

// TestScoringTimeout: a run() that takes longer than the timeout gives ErrTimeout and its
// replica is replaced.
func TestScoringTimeout(t *testing.T) {
	start, started := starter(t, sleepyScore)
	pool := serving.NewPool(serving.Config{Replicas: 1, MaxConcurrent: 1, MaxWait: time.Minute, Timeout: 300 * time.Millisecond, Refresh: time.Second}, start, nil, nil)
	defer pool.Close(context.Background())
	if _, _, err := post(t, pool, `{"sleep": 30}`); !errors.Is(err, serving.ErrTimeout) {
		t.Fatalf("a hanging run(): %v", err)
	}
	waitFor(t, "a new replica", func() bool { return started.Load() == 2 && pool.Stats().Ready == 1 })
	if code, _, err := post(t, pool, `{}`); err != nil || code != 200 {
		t.Fatalf("after the replica was recycled: %d %v", code, err)
	}
}

// TestTimedOutReplicaLeavesAtOnce: a replica whose request timed out is still busy with it, so
// it leaves the rotation when the timeout is answered, before it is stopped: the requests after
// it go to the other replica and succeed (they were once handed to it and timed out too).
func TestTimedOutReplicaLeavesAtOnce(t *testing.T) {
	start, _ := starter(t, sleepyScore)
	// A timeout long enough for a loaded machine to answer {} well within it.
	pool := serving.NewPool(serving.Config{Replicas: 2, MaxConcurrent: 1, MaxWait: time.Minute, Timeout: 3 * time.Second, Refresh: time.Minute}, start, nil, nil)
	defer pool.Close(context.Background())
	if err := pool.WaitReady(context.Background(), 2); err != nil {
		t.Fatal(err)
	}
	if _, _, err := post(t, pool, `{"sleep": 30}`); !errors.Is(err, serving.ErrTimeout) {
		t.Fatalf("a hanging run(): %v", err)
	}
	if st := pool.Stats(); st.Ready != 1 {
		t.Fatalf("right after the timeout: %d replicas ready, want 1 (the timed-out one out of the rotation)", st.Ready)
	}
	for i := range 5 {
		if code, _, err := post(t, pool, `{}`); err != nil || code != 200 {
			t.Fatalf("request %d after the timeout: %d %v", i, code, err)
		}
	}
}

// TestInitFailure: a score.py whose init() raises fails WaitReady at once with its traceback.
func TestInitFailure(t *testing.T) {
	start, _ := starter(t, "def init():\n    raise ValueError('no model here')\ndef run(raw):\n    return raw\n")
	pool := serving.NewPool(serving.Config{Replicas: 2, MaxConcurrent: 1, MaxWait: time.Second, Timeout: time.Second, Refresh: time.Second}, start, nil, nil)
	defer pool.Close(context.Background())
	err := pool.WaitReady(context.Background(), 2)
	if err == nil || !strings.Contains(err.Error(), "no model here") || !strings.Contains(err.Error(), "init()") {
		t.Fatalf("WaitReady: %v", err)
	}
}

// TestEachAnswerReachesItsClient: under a queue (16 clients, 2 replicas of one request at a
// time), requests are handed from one to the next on each replica; every client gets the answer
// to its own request.
func TestEachAnswerReachesItsClient(t *testing.T) {
	start, _ := starter(t, "import json\ndef init():\n    pass\ndef run(raw):\n    return json.loads(raw)\n")
	pool := serving.NewPool(serving.Config{Replicas: 2, MaxConcurrent: 1, MaxWait: time.Minute, Timeout: time.Minute, Refresh: time.Second}, start, nil, nil)
	defer pool.Close(context.Background())
	if err := pool.WaitReady(context.Background(), 2); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan string, 16*40)
	for c := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 40 {
				want := fmt.Sprintf(`{"client": %d, "i": %d}`, c, i)
				code, body, err := post(t, pool, want)
				if err != nil || code != 200 || strings.TrimSpace(body) != want {
					errs <- fmt.Sprintf("client %d request %d: %d %q %v", c, i, code, body, err)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

// TestRequestSentAhead: with the only replica busy, the next request is sent to it to wait
// there (not in the pool's queue), and is answered once the first one is.
func TestRequestSentAhead(t *testing.T) {
	start, _ := starter(t, sleepyScore)
	pool := serving.NewPool(serving.Config{Replicas: 1, MaxConcurrent: 1, MaxWait: time.Minute, Timeout: time.Minute, Refresh: time.Second}, start, nil, nil)
	defer pool.Close(context.Background())
	if err := pool.WaitReady(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	slow := make(chan error, 1)
	go func() { _, _, err := post(t, pool, `{"sleep": 1}`); slow <- err }()
	waitFor(t, "the slow request to hold the replica", func() bool { return pool.Stats().Busy == 1 })
	next := make(chan string, 1)
	go func() {
		code, body, err := post(t, pool, `{}`)
		next <- fmt.Sprint(code, " ", strings.TrimSpace(body), " ", err)
	}()
	waitFor(t, "the next request sent ahead", func() bool { return pool.Stats().Ahead == 1 })
	if st := pool.Stats(); st.Queued != 0 {
		t.Fatalf("a request sent ahead is also queued: %+v", st)
	}
	if err := <-slow; err != nil {
		t.Fatal(err)
	}
	if got := <-next; got != `200 {"ok": true} <nil>` {
		t.Fatalf("the request sent ahead: %s", got)
	}
	if st := pool.Stats(); st.Ahead != 0 || st.Busy != 0 {
		t.Fatalf("after both: %+v", st)
	}
}

// TestAheadRequeuedWhenReplicaTimesOut: a request waiting ahead at a replica whose current
// request times out has not started; it goes to another replica (here the one started in place
// of the recycled one) and is answered, not failed with the replica.
func TestAheadRequeuedWhenReplicaTimesOut(t *testing.T) {
	start, started := starter(t, sleepyScore)
	pool := serving.NewPool(serving.Config{Replicas: 1, MaxConcurrent: 1, MaxWait: time.Minute, Timeout: 5 * time.Second, Refresh: time.Second}, start, nil, nil)
	defer pool.Close(context.Background())
	if err := pool.WaitReady(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	hung := make(chan error, 1)
	go func() { _, _, err := post(t, pool, `{"sleep": 60}`); hung <- err }()
	waitFor(t, "the hanging request to hold the replica", func() bool { return pool.Stats().Busy == 1 })
	next := make(chan string, 1)
	go func() {
		code, body, err := post(t, pool, `{}`)
		next <- fmt.Sprint(code, " ", strings.TrimSpace(body), " ", err)
	}()
	waitFor(t, "the next request sent ahead", func() bool { return pool.Stats().Ahead == 1 })
	select {
	case err := <-hung:
		t.Fatalf("the hanging request ended before the next one was sent ahead: %v", err)
	default:
	}
	if err := <-hung; !errors.Is(err, serving.ErrTimeout) {
		t.Fatalf("the hanging request: %v", err)
	}
	if got := <-next; got != `200 {"ok": true} <nil>` {
		t.Fatalf("the request sent ahead to the recycled replica: %s", got)
	}
	if n := started.Load(); n != 2 {
		t.Fatalf("%d replicas started, want 2", n)
	}
}

// TestAheadTimeoutStartsWhenItStarts: the scoring timeout of a request sent ahead counts from
// the end of the request before it, not from when it was sent.
func TestAheadTimeoutStartsWhenItStarts(t *testing.T) {
	start, _ := starter(t, sleepyScore)
	// Each run takes 2.5 s of a 4 s timeout; from the second one's sending it is 5 s.
	pool := serving.NewPool(serving.Config{Replicas: 1, MaxConcurrent: 1, MaxWait: time.Minute, Timeout: 4 * time.Second, Refresh: time.Second}, start, nil, nil)
	defer pool.Close(context.Background())
	if err := pool.WaitReady(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	first := make(chan string, 1)
	go func() { code, _, err := post(t, pool, `{"sleep": 2.5}`); first <- fmt.Sprint(code, err) }()
	waitFor(t, "the first request to hold the replica", func() bool { return pool.Stats().Busy == 1 })
	second := make(chan string, 1)
	go func() { code, _, err := post(t, pool, `{"sleep": 2.5}`); second <- fmt.Sprint(code, err) }()
	waitFor(t, "the second request sent ahead", func() bool { return pool.Stats().Ahead == 1 })
	for i, ch := range []chan string{first, second} {
		if got := <-ch; got != "200 <nil>" {
			t.Fatalf("request %d: %s", i+1, got)
		}
	}
}

// TestWithdrawnRequestIsNotScored: a request sent ahead that waited max_request_wait_time is
// answered ErrBusy, and the replica does not score it when it comes to it.
func TestWithdrawnRequestIsNotScored(t *testing.T) {
	calls := filepath.Join(t.TempDir(), "calls")
	start, _ := starter(t, fmt.Sprintf(`import json, time
def init():
    pass
def run(raw):
    req = json.loads(raw)
    with open(%q, "a") as f:
        f.write(req["name"] + "\n")
    time.sleep(req.get("sleep", 0))
    return {"ok": True}
`, calls))
	pool := serving.NewPool(serving.Config{Replicas: 1, MaxConcurrent: 1, MaxWait: 200 * time.Millisecond, Timeout: time.Minute, Refresh: time.Second}, start, nil, nil)
	defer pool.Close(context.Background())
	if err := pool.WaitReady(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	slow := make(chan error, 1)
	go func() { _, _, err := post(t, pool, `{"name": "slow", "sleep": 2}`); slow <- err }()
	waitFor(t, "the slow request to start", func() bool { b, _ := os.ReadFile(calls); return string(b) == "slow\n" })
	if _, _, err := post(t, pool, `{"name": "withdrawn"}`); !errors.Is(err, serving.ErrBusy) {
		t.Fatalf("a request that waited behind the slow one: %v", err)
	}
	if err := <-slow; err != nil {
		t.Fatal(err)
	}
	if code, _, err := post(t, pool, `{"name": "after"}`); err != nil || code != 200 {
		t.Fatalf("after the slow one: %d %v", code, err)
	}
	if b, _ := os.ReadFile(calls); string(b) != "slow\nafter\n" {
		t.Fatalf("the replica scored:\n%s", b)
	}
}

// A pool that closed (a rolling update's retired revision) refuses a request with ErrClosed
// before any replica saw it and gives its body back, so the gateway sends the same request to
// the pool now served.
func TestClosedPoolGivesTheRequestBack(t *testing.T) {
	start, _ := starter(t, "import json\ndef init():\n    pass\ndef run(raw):\n    return {\"got\": json.loads(raw)}\n")
	ctx := context.Background()
	cfg := serving.Config{Replicas: 1, MaxConcurrent: 1, MaxWait: time.Second, Timeout: time.Minute, Refresh: time.Second}
	retired, served := serving.NewPool(cfg, start, nil, nil), serving.NewPool(cfg, start, nil, nil)
	defer served.Close(ctx)
	if err := served.WaitReady(ctx, 1); err != nil {
		t.Fatal(err)
	}
	retired.Close(ctx)
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("POST", "/score", strings.NewReader(`{"x": 41}`))
	if res := retired.Serve(rec, req, "/score"); !errors.Is(res.Err, serving.ErrClosed) {
		t.Fatalf("a closed pool: %+v, want ErrClosed", res)
	}
	if res := served.Serve(rec, req, "/score"); res.Err != nil || rec.Code != 200 {
		t.Fatalf("the same request to the open pool: %+v, status %d", res, rec.Code)
	}
	if b, _ := io.ReadAll(rec.Result().Body); !strings.Contains(string(b), `"got": {"x": 41}`) {
		t.Errorf("the replica got %s, want the request's body", b)
	}
}
