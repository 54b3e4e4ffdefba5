// Package serving runs web services: pools of replicas of an image, the requests the gateway
// hands them (balanced over ready replicas, queued while all are busy, timed out), and the
// autoscaler that sizes each pool by its utilization, as Azure ML's router does.
package serving

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
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
	onClose  []func()
}

type slot struct {
	n    int
	r    Replica
	busy int
	gone bool
	// ahead is the request sent to the replica behind the one it scores (guarded by Pool.mu).
	ahead *exchange
	last  *exchange // the last request given a place at the replica (guarded by Pool.mu)

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
	// (No deadline to clear: a connection kept is one whose exchange ended before its
	// context did, so its deadline was never set; see send.)
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
	// Ahead counts the requests sent to a busy replica to wait there (see place).
	Ahead int
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
		if s.ahead != nil {
			st.Ahead++
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

// A replica scores one request at a time, and between two requests it would wait for its
// answer to reach the gateway and the next request to come back: at a scoring time of a few
// hundred microseconds, that turnaround is a third of a replica's time. So, when every replica
// is busy, the next request may be sent to a replica ahead, to wait in its socket behind the
// one it scores (one such request a replica, and only when a replica takes one request at a
// time: with more, requests already wait inside it). A request sent ahead has not started:
//   - its scoring timeout starts when the request before it ends;
//   - it is withdrawn when it waited max_request_wait_time (the 503 of a full queue), and
//     the replica skips it (its connection is closed, and the runtime does not score a
//     request marked as sent ahead whose connection is closed);
//   - it goes back to the head of the queue when its replica leaves (the request before it
//     timed out, or the process died): its body is kept for that, so only requests of up to
//     aheadBody bytes are sent ahead.
// The one exception is a request that the replica starts in the instant the gateway withdraws
// it or sees its replica time out: it may then be scored and answered 503, or scored twice.

// aheadBody bounds the bodies of the requests that may be sent to a replica ahead.
const aheadBody = 64 << 10

// aheadHeader marks a request sent ahead for the replica.
const aheadHeader = "X-Atelier-Ahead"

// maxRequeues bounds how often one request goes back to the queue because its replica left.
const maxRequeues = 3

// errRequeued ends an exchange sent ahead to a replica that left before starting it.
var errRequeued = errors.New("the replica left before it started the request")

// job is a request for a replica. It is served either by its own handler, handed a place at a
// replica (an exchange), or by the request that just ended on a replica, which sends it to the
// replica at once and then hands it the exchange to read the answer (or the failure, done): the
// replica does not wait for the waiting handler to be scheduled.
type job struct {
	w       http.ResponseWriter
	r       *http.Request
	path    string
	body    []byte // the body, read whole, when the request may be sent ahead (replay is set)
	replay  bool
	arrived time.Time
	handed  chan *exchange // a place at a replica (nil: the pool closed)
	done    chan Result    // the request was served for it
	taken   bool           // out of the queue (guarded by Pool.mu)
	front   bool           // it goes back to the head of the queue (guarded by Pool.mu)
}

// acquire returns a place for the request at a replica with room for it, waiting for one up
// to MaxWait (or, with no replica ready at all, while one starts, up to ColdStart). When the
// request was served meanwhile by the pipeline, it returns that result instead (nil place).
func (p *Pool) acquire(j *job) (*exchange, *Result, error) {
	ctx := j.r.Context()
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, nil, ErrClosed
	}
	p.account()
	if x := p.place(j); x != nil {
		p.mu.Unlock()
		return x, nil, nil
	}
	if j.front {
		p.waiters = append([]*job{j}, p.waiters...)
	} else {
		p.waiters = append(p.waiters, j)
	}
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
	case x := <-j.handed:
		return p.handed(x)
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
	// Taken meanwhile: handed a place, or being served.
	select {
	case x := <-j.handed:
		return p.handed(x)
	case res := <-j.done:
		return nil, &res, nil
	}
}

func (p *Pool) handed(x *exchange) (*exchange, *Result, error) {
	if x == nil {
		return nil, nil, ErrClosed
	}
	return x, nil, nil
}

// place gives j a place at the least busy ready replica with room, or ahead at one (see
// above); nil when there is none. Called with mu held.
func (p *Pool) place(j *job) *exchange {
	var best *slot
	for _, s := range p.ready {
		if s.busy < p.cfg.MaxConcurrent && (best == nil || s.busy < best.busy) {
			best = s
		}
	}
	if best == nil {
		for _, s := range p.ready {
			if p.mayWaitAt(s, j) {
				best = s
				break
			}
		}
	}
	if best == nil {
		return nil
	}
	return p.newExchange(best, j)
}

// mayWaitAt says whether j may be sent ahead to replica s, busy with another request. Called
// with mu held.
func (p *Pool) mayWaitAt(s *slot, j *job) bool {
	return p.cfg.MaxConcurrent == 1 && s.busy == 1 && s.ahead == nil && !s.gone && j.replay &&
		time.Since(j.arrived) < p.cfg.MaxWait
}

// newExchange takes a place at s for j (ahead when s is full) and starts its clock: the
// scoring timeout, or for a request sent ahead the rest of its wait. Called with mu held.
func (p *Pool) newExchange(s *slot, j *job) *exchange {
	s.busy++
	p.inflight++
	ctx, cancel := context.WithCancelCause(j.r.Context())
	x := &exchange{s: s, j: j, ctx: ctx, cancel: cancel, written: make(chan struct{})}
	if s.busy > p.cfg.MaxConcurrent {
		x.ahead, x.sentAhead = true, true
		x.after = s.last
		s.ahead = x
		x.timer = time.AfterFunc(p.cfg.MaxWait-time.Since(j.arrived), func() { p.withdraw(x) })
	} else {
		x.startTimeout(p.cfg.Timeout)
	}
	s.last = x
	return x
}

// withdraw takes back a request that waited ahead at a replica for its whole wait.
func (p *Pool) withdraw(x *exchange) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if x.ahead {
		x.cancel(ErrBusy)
	}
}

// handOff gives places at replicas with room to waiters; called with mu held.
func (p *Pool) handOff() {
	for len(p.waiters) > 0 {
		j := p.waiters[0]
		x := p.place(j)
		if x == nil {
			return
		}
		p.waiters = p.waiters[1:]
		j.taken = true
		j.handed <- x
	}
}

// serveNext ends exchange x, which was answered or failed, on its replica: the request sent
// ahead there (if any) is now the replica's current one, and the queue's next requests take
// the free places at once. They are sent to the replica before serveNext returns, and handed
// to their own handlers, which read and write their answers and then serve the ones after them.
func (p *Pool) serveNext(x *exchange) {
	s := x.s
	p.mu.Lock()
	p.account()
	x.timer.Stop()
	if x.ahead { // answered before the end of the request before it was seen
		x.ahead = false
		s.ahead = nil
	} else if a := s.ahead; a != nil && !s.gone { // (on a replica gone, it waits again)
		a.ahead = false
		s.ahead = nil
		a.timer.Stop()
		a.startTimeout(p.cfg.Timeout)
	}
	s.busy--
	p.inflight--
	var next []*exchange
	for len(p.waiters) > 0 && !s.gone && !p.closed {
		j := p.waiters[0]
		if s.busy >= p.cfg.MaxConcurrent && !p.mayWaitAt(s, j) {
			break
		}
		p.waiters = p.waiters[1:]
		j.taken = true
		next = append(next, p.newExchange(s, j))
	}
	p.handOff()
	p.mu.Unlock()
	for _, y := range next {
		if err := p.send(y); err != nil {
			y.j.done <- p.end(y, err)
			continue
		}
		y.sent = true
		y.j.handed <- y // its own handler reads the answer (no goroutine between)
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
// Err is set, the caller writes the error answer (nothing was written yet). With ErrClosed the
// request reached no replica and r can be served by another pool.
func (p *Pool) Serve(w http.ResponseWriter, r *http.Request, path string) Result {
	j := &job{w: w, r: r, path: path, arrived: time.Now(), handed: make(chan *exchange, 1), done: make(chan Result, 1)}
	if p.cfg.MaxConcurrent == 1 && p.cfg.MaxWait > 0 && r.ContentLength >= 0 && r.ContentLength <= aheadBody {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return Result{Replica: -1, Err: err}
		}
		j.body, j.replay = body, true
	}
	for requeues := 0; ; requeues++ {
		res := p.serve(j)
		if errors.Is(res.Err, ErrClosed) && j.replay {
			// Nothing reached a replica: the body goes back, for the caller to send the request
			// to another pool (a rolling update's new one).
			r.Body = io.NopCloser(bytes.NewReader(j.body))
		}
		if !errors.Is(res.Err, errRequeued) {
			return res
		}
		if requeues == maxRequeues {
			return Result{Replica: res.Replica, Err: fmt.Errorf("%w: %d replicas left while the request waited for them", ErrReplicaError, requeues+1)}
		}
		p.mu.Lock()
		j.taken, j.front = false, true
		p.mu.Unlock()
	}
}

func (p *Pool) serve(j *job) Result {
	x, served, err := p.acquire(j)
	if err != nil {
		return Result{Replica: -1, Err: err}
	}
	if served != nil {
		return *served
	}
	if !x.sent {
		if err := p.send(x); err != nil {
			return p.end(x, err)
		}
	}
	return p.receive(x)
}

// exchange is a request's place at a replica: the request, once sent, and its answer.
type exchange struct {
	s      *slot
	j      *job
	ctx    context.Context // ends with the client, the timeout (ErrTimeout), a withdrawal (ErrBusy) or a requeue
	cancel context.CancelCauseFunc
	// ahead: sent behind another request and not started; timer: the withdrawal, then the
	// scoring timeout (both guarded by Pool.mu).
	ahead bool
	timer *time.Timer
	// sentAhead: the request is marked for the replica, which skips it when the gateway
	// withdrew it (closed its connection) before the replica came to it.
	sentAhead bool
	// after is the request a request sent ahead goes behind: it is written to the replica
	// after that one is (written is closed then), so that the replica reads it first.
	after   *exchange
	written chan struct{}
	// sent: the request was sent to the replica by the request that ended before it (see
	// serveNext); its handler reads the answer.
	sent bool

	rc      *replicaConn
	out     *http.Request
	body    *bodyReader // the client's body when it is not kept
	unblock func() bool
}

func (x *exchange) startTimeout(d time.Duration) {
	x.timer = time.AfterFunc(d, func() { x.cancel(ErrTimeout) })
}

// send writes x's request to a connection of its replica.
func (p *Pool) send(x *exchange) error {
	defer close(x.written)
	if x.after != nil {
		select {
		case <-x.after.written:
		case <-x.ctx.Done():
		}
		x.after = nil // (a chain of requests each sent ahead would otherwise stay reachable)
	}
	if x.ctx.Err() != nil {
		return context.Cause(x.ctx)
	}
	r := x.j.r
	var out *http.Request
	var head *[]byte
	if x.j.replay && r.Method != http.MethodHead && plainPath(x.j.path) && plainQuery(r.URL.RawQuery) {
		head = writeHead(x, r)
	} else {
		var body io.Reader
		if x.j.replay {
			body = bytes.NewReader(x.j.body)
		} else {
			x.body = &bodyReader{r: r.Body}
			body = x.body
		}
		var err error
		out, err = http.NewRequestWithContext(x.ctx, r.Method, "http://replica"+x.j.path, body)
		if err != nil {
			return err
		}
		out.URL.RawQuery = r.URL.RawQuery
		out.ContentLength = r.ContentLength
		for k, v := range r.Header {
			if !forwarded(k) {
				continue
			}
			out.Header[k] = v
		}
		if x.sentAhead {
			out.Header.Set(aheadHeader, "1")
		}
	}
	rc, err := x.s.conn(x.ctx)
	if err != nil {
		if head != nil {
			heads.Put(head)
		}
		return err
	}
	x.rc = rc
	// A client that leaves, the timeout or a withdrawal unblock the exchange at once.
	x.unblock = context.AfterFunc(x.ctx, func() { rc.c.SetDeadline(time.Unix(1, 0)) })
	if head != nil {
		_, err = rc.c.Write(*head)
		heads.Put(head)
		return err
	}
	if err := out.Write(rc.c); err != nil {
		return err
	}
	x.out = out
	return nil
}

// forwarded says whether a client's request header goes on to the replica: not the hop-by-hop
// ones, nor the credentials the gateway checked, nor Expect (the gateway reads the body itself).
func forwarded(k string) bool {
	switch k {
	case "Authorization", "Connection", "Keep-Alive", "Te", "Trailer", "Transfer-Encoding", "Upgrade", "Proxy-Authorization", "Expect", aheadHeader:
		return false
	}
	return true
}

// heads are the buffers requests are written in (see writeHead).
var heads = sync.Pool{New: func() any { b := make([]byte, 0, 4<<10); return &b }}

// writeHead writes the request of x, whose body is kept whole, into one buffer (head and body):
// what http.Request.Write writes, without its allocations, sent in one write. Its path and
// query need no escaping (plainPath, plainQuery); the header values were checked by the
// server that read them.
func writeHead(x *exchange, r *http.Request) *[]byte {
	bp := heads.Get().(*[]byte)
	b := append((*bp)[:0], r.Method...)
	b = append(b, ' ')
	b = append(b, x.j.path...)
	if r.URL.RawQuery != "" {
		b = append(b, '?')
		b = append(b, r.URL.RawQuery...)
	}
	b = append(b, " HTTP/1.1\r\nHost: replica\r\n"...)
	if _, ok := r.Header["User-Agent"]; !ok {
		b = append(b, "User-Agent: Go-http-client/1.1\r\n"...)
	}
	b = append(b, "Content-Length: "...)
	b = strconv.AppendInt(b, int64(len(x.j.body)), 10)
	b = append(b, "\r\n"...)
	for k, vs := range r.Header {
		if !forwarded(k) || k == "Host" || k == "Content-Length" {
			continue
		}
		for _, v := range vs {
			b = append(b, k...)
			b = append(b, ": "...)
			b = append(b, v...)
			b = append(b, "\r\n"...)
		}
	}
	if x.sentAhead {
		b = append(b, aheadHeader+": 1\r\n"...)
	}
	b = append(b, "\r\n"...)
	b = append(b, x.j.body...)
	*bp = b
	return bp
}

// plainPath says whether a path is written as it is in a request's first line.
func plainPath(p string) bool {
	if p == "" || p[0] != '/' {
		return false
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '/' || c == '-' || c == '_' || c == '.' || c == '~') {
			return false
		}
	}
	return true
}

// plainQuery says whether a raw query (as the client sent it) can be written as it is.
func plainQuery(q string) bool {
	for i := 0; i < len(q); i++ {
		if c := q[i]; c <= ' ' || c >= 0x7f || c == '#' {
			return false
		}
	}
	return true
}

// end ends an exchange that failed with err and says how the request was served.
func (p *Pool) end(x *exchange, err error) Result {
	s, client := x.s, x.j.r.Context()
	if x.rc != nil {
		x.unblock()
		x.rc.c.Close()
	}
	defer x.cancel(nil)
	p.mu.Lock()
	if x.ahead { // not started: its place is given up, and the request waits again or fails
		x.ahead = false
		if s.ahead == x {
			s.ahead = nil
		}
		x.timer.Stop()
		p.account()
		s.busy--
		p.inflight--
		p.handOff()
		gone := s.gone
		p.mu.Unlock()
		switch {
		case client.Err() != nil:
			return Result{Replica: s.n, Err: client.Err()}
		case context.Cause(x.ctx) == ErrBusy:
			return Result{Replica: -1, Err: ErrBusy}
		}
		if !gone { // the replica failed: give it a moment to be seen as gone before the request waits again
			select {
			case <-s.r.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
		return Result{Replica: s.n, Err: errRequeued}
	}
	p.mu.Unlock()
	if x.body != nil && x.body.err != nil {
		err = x.body.err // the client's body, not the replica
	} else {
		err = p.failed(x, err)
	}
	p.serveNext(x)
	return Result{Replica: s.n, Err: err}
}

// receive reads a replica's answer to an exchange and writes it to the request's client.
//
// An answer of up to earlyAnswer bytes is read whole before it is written to its client, and
// the replica's next queued requests are sent first: the replica works on them while this
// answer travels. receive hands the replica on (serveNext) exactly once.
func (p *Pool) receive(x *exchange) Result {
	s, rc, w := x.s, x.rc, x.j.w
	var a answer
	err := a.read(rc.br, x.out)
	if err != nil {
		return p.end(x, err)
	}
	defer x.cancel(nil)
	h := w.Header()
	if a.length >= 0 && a.length <= earlyAnswer {
		bp := answers.Get().(*[]byte)
		if int64(cap(*bp)) < a.length {
			*bp = make([]byte, a.length)
		}
		body := (*bp)[:a.length]
		var err error
		if a.resp != nil {
			_, err = io.ReadFull(a.resp.Body, body)
			a.resp.Body.Close()
		} else {
			_, err = io.ReadFull(rc.br, body)
		}
		if err != nil {
			answers.Put(bp)
			return p.end(x, err)
		}
		a.copyHeader(h)
		if a.close || !x.unblock() {
			rc.c.Close()
		} else {
			s.keep(rc)
		}
		p.serveNext(x)
		w.WriteHeader(a.status)
		w.Write(body)
		flush(w)
		if cap(body) <= 64<<10 { // (the larger ones are left to the collector)
			answers.Put(bp)
		}
		return Result{Replica: s.n, Status: a.status}
	}
	a.copyHeader(h)
	w.WriteHeader(a.status)
	if a.resp != nil {
		_, err = io.Copy(w, a.resp.Body)
		a.resp.Body.Close()
	} else {
		_, err = io.CopyN(w, rc.br, a.length)
	}
	if err != nil || a.close || !x.unblock() {
		rc.c.Close()
		if err != nil {
			p.failed(x, err)
		}
	} else {
		s.keep(rc)
	}
	flush(w)
	p.serveNext(x)
	return Result{Replica: s.n, Status: a.status}
}

// answers are the buffers answers are read in before they are written (see receive).
var answers = sync.Pool{New: func() any { b := make([]byte, 0, 4<<10); return &b }}

// answer is a replica's answer as receive reads it: its head parsed by readPlain when it is
// plain (the runtime's answers are: HTTP/1.1, a Content-Length, a few headers), else by
// http.ReadResponse.
type answer struct {
	status int
	length int64            // -1: until the connection closes
	close  bool             // the replica closes the connection after it
	resp   *http.Response   // read by http.ReadResponse
	names  [maxPlain]string // read by readPlain: its headers (canonical names)
	values [maxPlain]string
	n      int
}

// maxPlain bounds the headers of an answer readPlain reads.
const maxPlain = 24

func (a *answer) read(br *bufio.Reader, req *http.Request) error {
	if req == nil { // (a request written by writeHead: not HEAD)
		ok, err := a.readPlain(br)
		if ok || err != nil {
			return err
		}
	}
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		return err
	}
	a.resp, a.status, a.length, a.close = resp, resp.StatusCode, resp.ContentLength, resp.Close
	return nil
}

// copyHeader sets the answer's headers on h, the client's answer.
func (a *answer) copyHeader(h http.Header) {
	if a.resp != nil {
		for k, v := range a.resp.Header {
			switch k {
			case "Connection", "Keep-Alive", "Transfer-Encoding":
				continue
			}
			h[k] = v
		}
		return
	}
	for i := 0; i < a.n; i++ {
		k := a.names[i]
		if slices.Contains(a.names[:i], k) {
			h[k] = append(h[k], a.values[i])
		} else {
			h[k] = []string{a.values[i]}
		}
	}
}

// readPlain reads the head of a plain answer (see answer); when the answer is not plain
// (ok false), nothing was consumed of br.
func (a *answer) readPlain(br *bufio.Reader) (ok bool, err error) {
	for {
		n := br.Buffered()
		if n == 0 {
			if _, err := br.Peek(1); err != nil {
				return false, err
			}
			n = br.Buffered()
		}
		var b []byte
		end := -1
		for {
			b, _ = br.Peek(n)
			if end = bytes.Index(b, []byte("\r\n\r\n")); end >= 0 || n >= br.Size() {
				break
			}
			if _, err := br.Peek(n + 1); err != nil {
				return false, err
			}
			n = br.Buffered()
		}
		if end < 0 {
			return false, nil
		}
		head := b[:end+2]
		line, rest, _ := bytes.Cut(head, []byte("\r\n"))
		// HTTP/1.1 200 OK
		if len(line) < 12 || string(line[:9]) != "HTTP/1.1 " || (len(line) > 12 && line[12] != ' ') {
			return false, nil
		}
		status := 0
		for _, c := range line[9:12] {
			if c < '0' || c > '9' {
				return false, nil
			}
			status = status*10 + int(c-'0')
		}
		if status == http.StatusContinue { // (the request was sent whole: skip it)
			br.Discard(end + 4)
			continue
		}
		if status < 200 || status == http.StatusNoContent || status == http.StatusNotModified {
			return false, nil
		}
		text := string(rest) // one string for the whole head
		a.n, a.length, a.close = 0, -1, false
		for text != "" {
			var line string
			line, text, _ = strings.Cut(text, "\r\n")
			k, v, found := strings.Cut(line, ":")
			if !found || k == "" || a.n == maxPlain-1 || strings.ContainsAny(k, " \t") {
				return false, nil
			}
			v = strings.Trim(v, " \t")
			k = textproto.CanonicalMIMEHeaderKey(k)
			switch k {
			case "Content-Length":
				l, err := strconv.ParseInt(v, 10, 64)
				if err != nil || l < 0 || a.length >= 0 && l != a.length {
					return false, nil
				}
				a.length = l
				continue
			case "Transfer-Encoding", "Trailer":
				return false, nil
			case "Connection":
				if strings.Contains(strings.ToLower(v), "close") {
					a.close = true
				}
				continue
			case "Keep-Alive":
				continue
			}
			a.names[a.n], a.values[a.n] = k, v
			a.n++
		}
		if a.length < 0 {
			return false, nil
		}
		// Content-Length is set on the client's answer as net/http would from the replica's.
		a.names[a.n], a.values[a.n] = "Content-Length", strconv.FormatInt(a.length, 10)
		a.n++
		br.Discard(end + 4)
		a.status = status
		return true, nil
	}
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
func (p *Pool) failed(x *exchange, err error) error {
	s, client := x.s, x.j.r.Context()
	select {
	case <-s.r.Done():
		return fmt.Errorf("%w (replica %d: %v)", ErrReplicaLost, s.n, s.r.Err())
	default:
	}
	if client.Err() != nil {
		return client.Err()
	}
	if context.Cause(x.ctx) == ErrTimeout {
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

// retire takes a replica out of the rotation: no request is given to it any more, its
// kept-alive connections close, and the request sent ahead to it waits again. Called with mu held.
func (p *Pool) retire(s *slot) {
	s.gone = true
	s.closeConns()
	if a := s.ahead; a != nil {
		a.cancel(errRequeued) // not started: it waits again for another replica
	}
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
		j.handed <- nil
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
	p.mu.Lock()
	after := p.onClose
	p.onClose = nil
	p.mu.Unlock()
	for _, f := range after {
		f()
	}
}

// OnClose has f run at the end of Close, once every replica stopped (the template they were
// forked from stops then); at once if the pool is closed already.
func (p *Pool) OnClose(f func()) {
	p.mu.Lock()
	if !p.closed {
		p.onClose = append(p.onClose, f)
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	f()
}

// RetryAfter is the Retry-After header's value for a 503 of a busy pool, in seconds.
func (p *Pool) RetryAfter() string {
	return strconv.Itoa(max(1, int(p.cfg.Refresh.Seconds())))
}
