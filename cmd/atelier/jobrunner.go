package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/atelier-ml/atelier/compute/local"
	"github.com/atelier-ml/atelier/sandbox"
)

// waitingTransport lets a job runner outlive a server restart: a request the server could not
// receive (the connection was refused, the socket is gone) is sent again until wait has passed;
// a GET, which changes nothing, also after the connection broke mid-way. While it waits it
// reads the server's address again from urlFile, where a restarted server may have written
// another one.
type waitingTransport struct {
	base    http.RoundTripper
	wait    time.Duration
	urlFile string
	stderr  io.Writer

	mu   sync.Mutex
	host string // the server's host:port when it moved
}

func (t *waitingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	deadline := time.Now().Add(t.wait)
	said := false
	for attempt := 0; ; attempt++ {
		r := req
		t.mu.Lock()
		host := t.host
		t.mu.Unlock()
		if host != "" && req.URL.Host != host && req.URL.Scheme != "" {
			r = req.Clone(req.Context())
			r.URL.Host, r.Host = host, host
		}
		if attempt > 0 && req.Body != nil && req.Body != http.NoBody {
			if req.GetBody == nil {
				return nil, errors.New("the server could not be reached, and the request cannot be sent again")
			}
			body, err := req.GetBody()
			if err != nil {
				return nil, err
			}
			if r == req {
				r = req.Clone(req.Context())
			}
			r.Body = body
		}
		resp, err := t.base.RoundTrip(r)
		if err == nil || !t.retryable(req, err) || time.Now().After(deadline) {
			if err == nil && said {
				fmt.Fprintf(t.stderr, "job exec: the server answers again\n")
			}
			return resp, err
		}
		if !said {
			fmt.Fprintf(t.stderr, "job exec: cannot reach the server (%v); retrying for up to %s\n", err, time.Until(deadline).Round(time.Second))
			said = true
		}
		delay := min(100*time.Millisecond<<min(attempt, 5), 2*time.Second)
		select {
		case <-req.Context().Done():
			return nil, req.Context().Err()
		case <-time.After(delay):
		}
		t.reread()
	}
}

func (t *waitingTransport) retryable(req *http.Request, err error) bool {
	if req.Context().Err() != nil {
		return false
	}
	if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT) {
		return true
	}
	return req.Method == http.MethodGet && (errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF))
}

// reread takes the server's address from urlFile, when there is one.
func (t *waitingTransport) reread() {
	if t.urlFile == "" {
		return
	}
	b, err := os.ReadFile(t.urlFile)
	if err != nil {
		return
	}
	u := strings.TrimSpace(string(b))
	host, ok := strings.CutPrefix(u, "http://")
	if !ok || host == "" || strings.Contains(host, "/") {
		return
	}
	t.mu.Lock()
	t.host = host
	t.mu.Unlock()
}

// jobIsolation is how the server's local compute target tells its job runners to confine
// scripts (the runner's --isolation file): the sandbox's user and what to hide and grant.
type jobIsolation struct {
	RunAs        string            `json:"run_as"`
	Hide         []string          `json:"hide"`
	ReadOnly     []string          `json:"read_only"`
	Interpreters map[string]string `json:"interpreters,omitempty"`
}

func writeJobIsolation(path string, iso runIsolation, runAs string) error {
	j := jobIsolation{RunAs: runAs, Interpreters: iso.interpreters}
	if iso.Isolation != nil {
		j.Hide, j.ReadOnly = iso.Hide, iso.ReadOnly
	}
	b, err := json.MarshalIndent(j, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o600)
}

func readJobIsolation(path string) (*local.Isolation, map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("reading the isolation file: %w", err)
	}
	var j jobIsolation
	if err := json.Unmarshal(b, &j); err != nil {
		return nil, nil, fmt.Errorf("isolation file %s: %w", path, err)
	}
	self, err := os.Executable()
	if err != nil {
		return nil, nil, err
	}
	launcher, err := sandbox.New(self, os.Args[0], j.RunAs)
	if err != nil {
		return nil, nil, err
	}
	return &local.Isolation{Launcher: launcher, Hide: j.Hide, ReadOnly: j.ReadOnly}, j.Interpreters, nil
}

// runnerEnviron is the job runners' environment: the server's, without atelier's own settings
// (its token, its addresses), as scripts have always had it.
func runnerEnviron() []string {
	var list []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ATELIER_") && !strings.HasPrefix(kv, "XDG_") {
			list = append(list, kv)
		}
	}
	return list
}

// leaseOwner names this server process on the leases of runs (host/pid/start time) and tells
// whether another owner on this machine is dead, so a restarted server takes its runs over at
// once instead of waiting for their leases to expire.
func leaseOwner() (string, func(string) bool) {
	host, _ := os.Hostname()
	start, _ := local.ProcessStart(os.Getpid())
	owner := fmt.Sprintf("%s/%d/%d", host, os.Getpid(), start)
	return owner, func(o string) bool {
		parts := strings.Split(o, "/")
		if len(parts) != 3 || parts[0] != host {
			return false
		}
		pid, err1 := strconv.Atoi(parts[1])
		st, err2 := strconv.ParseUint(parts[2], 10, 64)
		return err1 == nil && err2 == nil && !local.ProcessAlive(pid, st)
	}
}
