// Package serving runs web services: pools of replicas of an image, the requests the gateway
// hands them (balanced over ready replicas, queued while all are busy, timed out), and the
// autoscaler that sizes each pool by its utilization, as Azure ML's router does.
package serving

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"
)

// Replica is one running replica of an image: a scoring runtime reached over HTTP.
type Replica interface {
	// Dial opens a connection to the replica's HTTP server (the pool keeps them alive).
	Dial(ctx context.Context) (net.Conn, error)
	// Done is closed when the replica's process has exited; Err then says how.
	Done() <-chan struct{}
	Err() error
	// Stop ends the replica (SIGTERM, then SIGKILL after a grace) and waits for it.
	Stop()
}

// StartFunc starts replica n of a pool and returns once it is ready to serve (its init() ran),
// or with an error that says why it could not start (the replica's log tail included).
type StartFunc func(ctx context.Context, n int) (Replica, error)

// Config sizes a pool and bounds its requests.
type Config struct {
	// Replicas is the fixed size when Autoscale is off.
	Replicas  int
	Autoscale bool
	Min, Max  int
	// TargetUtilization is in percent of the replicas' capacity.
	TargetUtilization int
	Refresh           time.Duration
	ScaleDownDelay    time.Duration
	// MaxConcurrent is how many requests a replica gets at once.
	MaxConcurrent int
	// MaxWait bounds the wait for a free replica (then 503); Timeout bounds a request's
	// scoring (then 504, and the replica is recycled).
	MaxWait time.Duration
	Timeout time.Duration
	// ColdStart bounds the wait of a request that finds no replica ready at all (one is
	// starting, or the pool scales from zero); default DefaultColdStart.
	ColdStart time.Duration
}

// DefaultColdStart is how long a request waits for a pool's first replica by default.
const DefaultColdStart = 2 * time.Minute

// Event is something a pool did: a replica started, failed or exited, a scale decision.
type Event struct {
	Kind    string // replica.started, replica.failed, replica.exited, scale
	Message string
}

// Pool runs the replicas of one image of a service.
type Pool struct {
	cfg    Config
	start  StartFunc
	now    func() time.Time
	events func(Event)

	mu       sync.Mutex
	ready    []*slot
	starting int
	next     int // number of the next replica
	desired  int
	waiters  []*job
	inflight int
	// utilization: the integral of (in flight + queued) over time since the last refresh.
	load      float64
	loadSince time.Time
	// windowStart is when the autoscaler's current window began.
	windowStart time.Time
	belowFrom   time.Time // since when the load asks for fewer replicas (zero: it does not)
	closed      bool
	lastErr     string
	// initFailed: the last replica failed in its init(), so the next would too.
	initFailed bool
	// failures in a row of starting replicas: the pool backs off, and reports Failed.
	failures int
	wake     chan struct{}
	wg       sync.WaitGroup
	cancel   context.CancelFunc
}

type slot struct {
	n    int
	r    Replica
	busy int
	gone bool

	cmu   sync.Mutex
	idle  []*replicaConn // kept-alive connections to the replica
	close bool           // the replica is gone: connections are closed, not kept
}

// replicaConn is a kept-alive HTTP/1.1 connection to a replica, used by one request at a time
// in the request's own goroutine (no transport goroutines between the gateway and the replica).
type replicaConn struct {
	c  net.Conn
	br *bufio.Reader
}

func (s *slot) conn(ctx context.Context) (*replicaConn, error) {
	s.cmu.Lock()
	if n := len(s.idle); n > 0 {
		c := s.idle[n-1]
		s.idle = s.idle[:n-1]
		s.cmu.Unlock()
		return c, nil
	}
	s.cmu.Unlock()
	c, err := s.r.Dial(ctx)
	if err != nil {
		return nil, err
	}
	return &replicaConn{c: c, br: bufio.NewReaderSize(c, 32<<10)}, nil
}

func (s *slot) keep(c *replicaConn) {
	s.cmu.Lock()
	defer s.cmu.Unlock()
	if s.close {
		c.c.Close()
		return
	}
	c.c.SetDeadline(time.Time{})
	s.idle = append(s.idle, c)
}

// closeConns closes the kept connections of a replica that is gone.
func (s *slot) closeConns() {
	s.cmu.Lock()
	defer s.cmu.Unlock()
	s.close = true
	for _, c := range s.idle {
		c.c.Close()
	}
	s.idle = nil
}

// Stats is a pool's state.
type Stats struct {
	Desired, Ready, Starting, Busy, Queued int
	// LastError is the last replica failure ("" when none).
	LastError string
	// Failing is true while replicas fail to start one after another, or at once when a
	// replica's init() failed.
	Failing bool
}

// NewPool starts a pool; it starts its replicas at once and keeps their number where the
// configuration (and the autoscaler) wants it until Close. now may be nil (the wall clock);
// events may be nil.
func NewPool(cfg Config, start StartFunc, now func() time.Time, events func(Event)) *Pool {
	if now == nil {
		now = time.Now
	}
	if events == nil {
		events = func(Event) {}
	}
	if cfg.MaxConcurrent < 1 {
		cfg.MaxConcurrent = 1
	}
	if cfg.Refresh <= 0 {
		cfg.Refresh = time.Second
	}
	if cfg.ColdStart <= 0 {
		cfg.ColdStart = DefaultColdStart
	}
	p := &Pool{cfg: cfg, start: start, now: now, events: events, wake: make(chan struct{}, 1)}
	p.desired = cfg.Replicas
	if cfg.Autoscale {
		p.desired = cfg.Min
	}
	p.loadSince = now()
	p.windowStart = p.loadSince
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	p.wg.Add(1)
	go p.run(ctx)
	return p
}

// Stats returns the pool's state.
func (p *Pool) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := Stats{Desired: p.desired, Ready: len(p.ready), Starting: p.starting, Queued: len(p.waiters), LastError: p.lastErr, Failing: p.failures >= 3 || p.initFailed}
	for _, s := range p.ready {
		if s.busy > 0 {
			st.Busy++
		}
	}
	return st
}

// WaitReady waits until the pool has n ready replicas, or its replicas fail to start three
// times in a row (the error then says why), or ctx ends.
func (p *Pool) WaitReady(ctx context.Context, n int) error {
	for {
		st := p.Stats()
		if st.Ready >= n {
			return nil
		}
		if st.Failing {
			return errors.New(st.LastError)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (p *Pool) poke() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// account adds the load since the last change to the integral; called with mu held.
func (p *Pool) account() {
	now := p.now()
	p.load += float64(p.inflight+len(p.waiters)) * now.Sub(p.loadSince).Seconds()
	p.loadSince = now
}

// ErrBusy is returned by Acquire when no replica became free within MaxWait.
var ErrBusy = errors.New("every replica is busy")

// ErrClosed is returned by Acquire when the pool is closing.
var ErrClosed = errors.New("the service is being stopped")

// job is a request waiting for a replica. It is served either by its own handler, handed a
// replica (slot), or by the request that just finished on a replica, which sends it to the
// replica at once and answers it from a goroutine of its own (done): the replica does not wait
// for the waiting handler to be scheduled.
type job struct {
	w     http.ResponseWriter
	r     *http.Request
	path  string
	slot  chan *slot  // a replica to serve the request on (nil: the pool closed)
	done  chan Result // the request was served for it
	taken bool        // out of the queue (guarded by Pool.mu)
}

// acquire returns a replica with room for one more request, waiting for one up to MaxWait
// (or, with no replica ready at all, while one starts, up to ColdStart). When the request was
// served meanwhile by the pipeline, it returns that result instead (slot nil).
func (p *Pool) acquire(j *job) (*slot, *Result, error) {
	ctx := j.r.Context()
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, nil, ErrClosed
	}
	p.account()
	if s := p.free(); s != nil {
		s.busy++
		p.inflight++
		p.mu.Unlock()
		return s, nil, nil
	}
	p.waiters = append(p.waiters, j)
	wait := p.cfg.MaxWait
	if len(p.ready) == 0 {
		wait = p.cfg.ColdStart
		if p.desired == 0 {
			p.desired = 1 // scale from zero
			p.events(Event{"scale", "scaling from 0 to 1 replica: a request arrived"})
			p.poke()
		}
	}
	p.mu.Unlock()
	if p.cfg.Autoscale {
		p.poke() // the autoscaler sees the queue at once
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case s := <-j.slot:
		return p.handed(s)
	case res := <-j.done:
		return nil, &res, nil
	case <-timer.C:
	case <-ctx.Done():
	}
	p.mu.Lock()
	if !j.taken {
		for i, w := range p.waiters {
			if w == j {
				p.account()
				p.waiters = append(p.waiters[:i], p.waiters[i+1:]...)
				break
			}
		}
		p.mu.Unlock()
		if ctx.Err() != nil {
			return nil, nil, ctx.Err()
		}
		return nil, nil, ErrBusy
	}
	p.mu.Unlock()
	// Taken meanwhile: handed a replica, or being served.
	select {
	case s := <-j.slot:
		return p.handed(s)
	case res := <-j.done:
		return nil, &res, nil
	}
}

func (p *Pool) handed(s *slot) (*slot, *Result, error) {
	if s == nil {
		return nil, nil, ErrClosed
	}
	return s, nil, nil
}

// free returns the least busy ready replica with room; called with mu held.
func (p *Pool) free() *slot {
	var best *slot
	for _, s := range p.ready {
		if s.busy < p.cfg.MaxConcurrent && (best == nil || s.busy < best.busy) {
			best = s
		}
	}
	return best
}

// handOff gives free replicas to waiters; called with mu held.
func (p *Pool) handOff() {
	for len(p.waiters) > 0 {
		s := p.free()
		if s == nil {
			return
		}
		s.busy++
		p.inflight++
		j := p.waiters[0]
		p.waiters = p.waiters[1:]
		j.taken = true
		j.slot <- s
	}
}

// serveNext serves the queue's next request on replica s, whose request just ended, or gives the
// replica's place back. The next request is sent to the replica before next returns; its answer
// is read and written by a goroutine, which then serves the one after it.
func (p *Pool) serveNext(s *slot) {
	for {
		p.mu.Lock()
		p.account()
		if s.gone || p.closed || len(p.waiters) == 0 {
			s.busy--
			p.inflight--
			p.handOff()
			p.mu.Unlock()
			return
		}
		j := p.waiters[0]
		p.waiters = p.waiters[1:]
		j.taken = true
		p.mu.Unlock() // the replica's place passes from the ended request to j: busy and inflight stay
		x, res := p.send(s, j)
		if x == nil {
			j.done <- res
			continue
		}
		go func() { j.done <- p.receive(x) }()
		return
	}
}

// Response errors the gateway answers with.
var (
	ErrTimeout      = errors.New("scoring timed out")
	ErrReplicaLost  = errors.New("the replica serving the request exited")
	ErrReplicaError = errors.New("the replica could not be reached")
)

// Result describes how a request was served.
type Result struct {
	Replica int
	Status  int
	Err     error
}

// Serve hands the request to a replica and writes its answer to w. The request's path is the
// replica's path (the gateway strips its prefix). It returns how the request was served; when
// Err is set, the caller writes the error answer (nothing was written yet).
func (p *Pool) Serve(w http.ResponseWriter, r *http.Request, path string) Result {
	j := &job{w: w, r: r, path: path, slot: make(chan *slot, 1), done: make(chan Result, 1)}
	s, served, err := p.acquire(j)
	if err != nil {
		return Result{Replica: -1, Err: err}
	}
	if served != nil {
		return *served
	}
	x, res := p.send(s, j)
	if x == nil {
		p.serveNext(s)
		return res
	}
	return p.receive(x)
}

// exchange is a request sent to a replica, its answer not yet read.
type exchange struct {
	s       *slot
	j       *job
	rc      *replicaConn
	out     *http.Request
	ctx     context.Context
	cancel  context.CancelFunc
	unblock func() bool
}

// send writes j's request to a connection of replica s. It returns the exchange, or (nil and)
// the result of a request that could not be sent.
func (p *Pool) send(s *slot, j *job) (*exchange, Result) {
	r := j.r
	ctx, cancel := context.WithTimeout(r.Context(), p.cfg.Timeout)
	body := &bodyReader{r: r.Body}
	out, err := http.NewRequestWithContext(ctx, r.Method, "http://replica"+j.path, body)
	if err != nil {
		cancel()
		return nil, Result{Replica: s.n, Err: err}
	}
	out.ContentLength = r.ContentLength
	for k, v := range r.Header {
		switch k {
		case "Authorization", "Connection", "Keep-Alive", "Te", "Trailer", "Transfer-Encoding", "Upgrade", "Proxy-Authorization":
			continue
		}
		out.Header[k] = v
	}
	rc, err := s.conn(ctx)
	if err != nil {
		cancel()
		return nil, Result{Replica: s.n, Err: p.failed(s, ctx, r.Context(), err)}
	}
	if dl, ok := ctx.Deadline(); ok {
		rc.c.SetDeadline(dl)
	}
	// A client that leaves (or the timeout) unblocks the exchange at once.
	unblock := context.AfterFunc(ctx, func() { rc.c.SetDeadline(time.Unix(1, 0)) })
	if err := out.Write(rc.c); err != nil {
		unblock()
		cancel()
		rc.c.Close()
		if body.err != nil {
			return nil, Result{Replica: s.n, Err: body.err} // the client's body, not the replica
		}
		return nil, Result{Replica: s.n, Err: p.failed(s, ctx, r.Context(), err)}
	}
	return &exchange{s: s, j: j, rc: rc, out: out, ctx: ctx, cancel: cancel, unblock: unblock}, Result{}
}

// receive reads a replica's answer to an exchange and writes it to the request's client.
//
// An answer of up to earlyAnswer bytes is read whole before it is written to its client, and
// the replica's next queued request is sent first: the replica works on it while this answer
// travels. receive hands the replica on (serveNext) exactly once.
func (p *Pool) receive(x *exchange) Result {
	defer x.cancel()
	s, rc, w := x.s, x.rc, x.j.w
	resp, err := http.ReadResponse(rc.br, x.out)
	if err != nil {
		x.unblock()
		rc.c.Close()
		res := Result{Replica: s.n, Err: p.failed(s, x.ctx, x.j.r.Context(), err)}
		p.serveNext(s)
		return res
	}
	h := w.Header()
	for k, v := range resp.Header {
		switch k {
		case "Connection", "Keep-Alive", "Transfer-Encoding":
			continue
		}
		h[k] = v
	}
	if resp.ContentLength >= 0 && resp.ContentLength <= earlyAnswer {
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.Close || !x.unblock() {
			rc.c.Close()
		} else {
			s.keep(rc)
		}
		if err != nil {
			for k := range resp.Header {
				h.Del(k)
			}
			res := Result{Replica: s.n, Err: p.failed(s, x.ctx, x.j.r.Context(), err)}
			p.serveNext(s)
			return res
		}
		p.serveNext(s)
		w.WriteHeader(resp.StatusCode)
		w.Write(body)
		flush(w)
		return Result{Replica: s.n, Status: resp.StatusCode}
	}
	w.WriteHeader(resp.StatusCode)
	_, err = io.Copy(w, resp.Body)
	resp.Body.Close()
	if err != nil || resp.Close || !x.unblock() {
		rc.c.Close()
		if err != nil {
			p.failed(s, x.ctx, x.j.r.Context(), err)
		}
	} else {
		s.keep(rc)
	}
	flush(w)
	p.serveNext(s)
	return Result{Replica: s.n, Status: resp.StatusCode}
}

// earlyAnswer bounds the answers read whole before they are written (see receive).
const earlyAnswer = 1 << 20

func flush(w http.ResponseWriter) {
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
}

// bodyReader keeps the error of reading a request's body (the client left, or sent too much).
type bodyReader struct {
	r   io.Reader
	err error
}

func (b *bodyReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF {
		b.err = err
	}
	return n, err
}

// failed classifies a failed exchange with a replica; a replica that timed out is recycled.
func (p *Pool) failed(s *slot, ctx, client context.Context, err error) error {
	select {
	case <-s.r.Done():
		return fmt.Errorf("%w (replica %d: %v)", ErrReplicaLost, s.n, s.r.Err())
	default:
	}
	if client.Err() != nil {
		return client.Err()
	}
	if ctx.Err() != nil || errors.Is(err, os.ErrDeadlineExceeded) {
		// Out of the rotation before it stops: it is still busy with the request that timed
		// out, and a request handed to it would wait behind that one and time out too.
		p.mu.Lock()
		p.retire(s)
		p.mu.Unlock()
		p.events(Event{"replica.recycled", fmt.Sprintf("replica %d did not answer within %s: recycled", s.n, p.cfg.Timeout)})
		p.poke()
		go s.r.Stop()
		return ErrTimeout
	}
	// The process may be exiting: give it a moment to be seen as such.
	select {
	case <-s.r.Done():
		return fmt.Errorf("%w (replica %d: %v)", ErrReplicaLost, s.n, s.r.Err())
	case <-time.After(100 * time.Millisecond):
	}
	return fmt.Errorf("%w: %v", ErrReplicaError, err)
}

// run keeps the pool's replicas at the desired number and refreshes the autoscaler.
func (p *Pool) run(ctx context.Context) {
	defer p.wg.Done()
	tick := time.NewTicker(p.cfg.Refresh)
	defer tick.Stop()
	for {
		p.reconcile(ctx)
		select {
		case <-ctx.Done():
			return
		case <-p.wake:
		case <-tick.C:
			p.autoscale()
		}
	}
}

// autoscale sets the desired number of replicas from the load since the last refresh.
func (p *Pool) autoscale() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.cfg.Autoscale || p.closed {
		return
	}
	now := p.now()
	p.account()
	window := max(now.Sub(p.windowStart).Seconds(), 1e-3)
	p.windowStart = now
	avg := p.load / window // average requests in flight or queued
	p.load = 0
	want := int(math.Ceil(avg * 100 / float64(p.cfg.TargetUtilization*p.cfg.MaxConcurrent)))
	if len(p.waiters) > 0 {
		want = max(want, len(p.ready)+p.starting+1)
	}
	want = min(max(want, p.cfg.Min), p.cfg.Max)
	switch {
	case want > p.desired:
		p.events(Event{"scale", fmt.Sprintf("scaling up from %d to %d replicas: utilization %.0f%% of %d ready (target %d%%)",
			p.desired, want, p.utilization(avg), len(p.ready), p.cfg.TargetUtilization)})
		p.desired = want
		p.belowFrom = time.Time{}
	case want < p.desired:
		if p.belowFrom.IsZero() {
			p.belowFrom = now
		} else if now.Sub(p.belowFrom) >= p.cfg.ScaleDownDelay {
			p.events(Event{"scale", fmt.Sprintf("scaling down from %d to %d replicas: utilization below %d%% for %s",
				p.desired, want, p.cfg.TargetUtilization, p.cfg.ScaleDownDelay)})
			p.desired = want
			p.belowFrom = time.Time{}
		}
	default:
		p.belowFrom = time.Time{}
	}
}

func (p *Pool) utilization(avg float64) float64 {
	if len(p.ready) == 0 {
		return 100
	}
	return avg * 100 / float64(len(p.ready)*p.cfg.MaxConcurrent)
}

// reconcile starts or stops replicas to reach the desired number.
func (p *Pool) reconcile(ctx context.Context) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	// After failures in a row, replicas start one at a time, backing off 1 s, 2 s, ... 30 s.
	for len(p.ready)+p.starting < p.desired && (p.failures == 0 || p.starting == 0) {
		p.starting++
		n := p.next
		p.next++
		delay := time.Duration(0)
		if p.failures > 0 {
			delay = min(time.Duration(p.failures)*time.Second, 30*time.Second)
		}
		p.wg.Add(1)
		go p.startReplica(ctx, n, delay)
	}
	// Stop idle replicas beyond the desired number (the newest first).
	for i := len(p.ready) - 1; i >= 0 && len(p.ready) > p.desired; i-- {
		s := p.ready[i]
		if s.busy > 0 {
			continue
		}
		p.retire(s)
		p.events(Event{"replica.stopped", fmt.Sprintf("replica %d stopped (scaled down)", s.n)})
		go s.r.Stop()
	}
}

func (p *Pool) startReplica(ctx context.Context, n int, delay time.Duration) {
	defer p.wg.Done()
	if delay > 0 {
		select {
		case <-ctx.Done():
		case <-time.After(delay):
		}
	}
	var r Replica
	err := ctx.Err()
	if err == nil {
		t0 := time.Now()
		r, err = p.start(ctx, n)
		if err == nil {
			p.events(Event{"replica.started", fmt.Sprintf("replica %d ready in %s", n, time.Since(t0).Round(time.Millisecond))})
		}
	}
	p.mu.Lock()
	p.starting--
	if err != nil {
		if ctx.Err() == nil {
			p.failures++
			p.lastErr = err.Error()
			p.initFailed = errors.Is(err, ErrInitFailed)
			p.events(Event{"replica.failed", fmt.Sprintf("replica %d failed to start: %v", n, err)})
		}
		p.mu.Unlock()
		p.poke()
		return
	}
	if p.closed {
		p.mu.Unlock()
		r.Stop()
		return
	}
	p.failures, p.initFailed = 0, false
	s := &slot{n: n, r: r}
	p.account()
	p.ready = append(p.ready, s)
	p.handOff()
	p.mu.Unlock()
	p.poke()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		select {
		case <-r.Done():
		case <-ctx.Done():
			return
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		if s.gone {
			return
		}
		p.retire(s)
		p.lastErr = fmt.Sprintf("replica %d exited: %v", n, r.Err())
		p.events(Event{"replica.exited", p.lastErr + "; starting another"})
		p.poke()
	}()
}

// retire takes a replica out of the rotation: no request is given to it any more, and its
// kept-alive connections close. Called with mu held.
func (p *Pool) retire(s *slot) {
	s.gone = true
	s.closeConns()
	for i, x := range p.ready {
		if x == s {
			p.ready = append(p.ready[:i], p.ready[i+1:]...)
			break
		}
	}
}

// Close stops taking requests, waits for those in flight (up to ctx), and stops every replica.
func (p *Pool) Close(ctx context.Context) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	for _, j := range p.waiters {
		j.taken = true
		j.slot <- nil
	}
	p.waiters = nil
	p.mu.Unlock()
	for {
		p.mu.Lock()
		n := p.inflight
		p.mu.Unlock()
		if n == 0 || ctx.Err() != nil {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(10 * time.Millisecond):
		}
	}
	p.cancel()
	p.mu.Lock()
	ready := p.ready
	p.ready = nil
	for _, s := range ready {
		s.gone = true
		s.closeConns()
	}
	p.mu.Unlock()
	var wg sync.WaitGroup
	for _, s := range ready {
		wg.Add(1)
		go func() { defer wg.Done(); s.r.Stop() }()
	}
	wg.Wait()
	p.wg.Wait()
}

// RetryAfter is the Retry-After header's value for a 503 of a busy pool, in seconds.
func (p *Pool) RetryAfter() string {
	return strconv.Itoa(max(1, int(p.cfg.Refresh.Seconds())))
}
