// Package servertest starts the real server stack for tests, wired by package server as the
// binary wires it (SQLite, the artifact store, the vault, the service, REST and MLflow on one
// listener, the scheduler), in a test's temporary directory.
package servertest

import (
	"context"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"

	"github.com/atelier-ml/atelier/api"
	"github.com/atelier-ml/atelier/server"
	"github.com/atelier-ml/atelier/service"
)

// Stack is a running server.
type Stack struct {
	*server.Server
	Client *api.Client // with the administrator's token
	Token  string      // the administrator's token
	Dir    string      // the data directory

	stopOnce, closeOnce sync.Once
	stop                func()
}

// Option tunes the server a stack starts.
type Option func(*options)

type options struct {
	cfg  server.Config
	tune []func(*server.Server)
}

// WithLog makes the server log to log.
func WithLog(log *slog.Logger) Option { return func(o *options) { o.cfg.Log = log } }

// WithDir puts the data directory at dir (a server started again over the same store).
func WithDir(dir string) Option { return func(o *options) { o.cfg.DataDir = dir } }

// WithLocalCompute gives the server a compute target of this machine (see server.Config).
func WithLocalCompute(f func(context.Context, server.Machine) (*service.Target, error)) Option {
	return func(o *options) { o.cfg.LocalCompute = f }
}

// WithoutScheduler leaves runs to the test to claim.
func WithoutScheduler() Option { return func(o *options) { o.cfg.NoScheduler = true } }

// WithConfig changes the server's configuration before it is wired.
func WithConfig(f func(*server.Config)) Option { return func(o *options) { f(&o.cfg) } }

// Tune changes the wired server before it serves.
func Tune(f func(*server.Server)) Option { return func(o *options) { o.tune = append(o.tune, f) } }

// New starts a server that is stopped and closed when tb ends.
func New(tb testing.TB, opts ...Option) *Stack {
	tb.Helper()
	o := &options{cfg: server.Config{Addr: "127.0.0.1:0", Socket: "off"}}
	for _, opt := range opts {
		opt(o)
	}
	if o.cfg.DataDir == "" {
		o.cfg.DataDir = tb.TempDir()
	}
	ctx := context.Background()
	srv, err := server.New(ctx, o.cfg)
	if err != nil {
		tb.Fatalf("starting the server: %v", err)
	}
	s := &Stack{Server: srv, Dir: srv.DataDir, Token: srv.AdminToken}
	if s.Token == "" { // a server started again: the token of the first
		if s.Token, err = service.ReadTokenFile(filepath.Join(s.Dir, server.AdminTokenFile)); err != nil {
			srv.Close()
			tb.Fatalf("reading the admin token: %v", err)
		}
	}
	for _, f := range o.tune {
		f(srv)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- srv.Run(runCtx) }()
	s.stop = func() {
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("the server stopped with: %v", err)
		}
	}
	s.Client = api.NewClient(srv.URL, s.Token)
	tb.Cleanup(s.Close)
	return s
}

// Stop stops serving and the scheduler, as a stopping server does; the stores stay open.
func (s *Stack) Stop() { s.stopOnce.Do(s.stop) }

// Close stops the server and closes its stores (once; also when the test ends).
func (s *Stack) Close() {
	s.closeOnce.Do(func() {
		s.Stop()
		s.Server.Close()
	})
}
