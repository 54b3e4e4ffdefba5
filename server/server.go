// Package server wires the atelier server as the binary runs it: the store, the artifact store,
// the vault, the service, its front doors on one listener and the Unix socket, the scheduler and
// pprof, run as one group that stops together. cmd/atelier serves it; servertest builds the same
// stack for the tests of every package.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/api"
	"github.com/atelier-ml/atelier/blob"
	"github.com/atelier-ml/atelier/datastore"
	"github.com/atelier-ml/atelier/edge"
	"github.com/atelier-ml/atelier/mlflow"
	"github.com/atelier-ml/atelier/oci/registry"
	"github.com/atelier-ml/atelier/secret"
	"github.com/atelier-ml/atelier/service"
	"github.com/atelier-ml/atelier/sqlite"
	"github.com/atelier-ml/atelier/ui"
	"golang.org/x/sync/errgroup"
)

// Files of the data directory.
const (
	AdminTokenFile = "admin-token"
	SocketFile     = "atelier.sock"
	// URLFile holds the address the server listens on while it runs, so clients that read the
	// admin token beside it send it to this server and no other.
	URLFile = "server-url"
)

// shutdownGrace is how long a stopping server waits for the requests in flight.
const shutdownGrace = 10 * time.Second

// Config is what New needs; cmd/atelier fills it from its layered settings.
type Config struct {
	DataDir string
	Addr    string // TCP listen address; port 0 picks one
	// Socket is the Unix socket for clients on this machine: a path, "auto" (<data>/atelier.sock,
	// skipped with a warning where that path is too long for a socket) or "off" ("" too).
	Socket           string
	Log              *slog.Logger // nil logs nothing
	Synchronous      string       // SQLite's synchronous mode
	SnapshotMaxBytes int64        // 0 keeps the service's default
	SnapshotMaxFiles int
	// Artifacts is the artifact store's URL ("" for the data directory). Its credentials come
	// from the environment, which is then cleared of them.
	Artifacts string
	// MasterKey is ATELIER_MASTER_KEY's value: the key datastore and compute credentials are
	// sealed under; "" reads <data>/master.key, made on first start.
	MasterKey    string
	DebugAddr    string // pprof's address; "" for none
	CookieSecure api.CookieSecure
	Version      string
	// TokenNotice is where a new administrator token is shown, the one time it is made.
	TokenNotice func(path, secret string)
	// LocalCompute gives the compute target of this machine (nil: none). It is asked once the
	// data directory, the artifact store and the socket are known; a target with a Driver also
	// runs the workspaces' own targets of its kind.
	LocalCompute func(ctx context.Context, m Machine) (*service.Target, error)
	// Owner names this server on the leases of runs; OwnerDead tells whether another owner is
	// dead, so its runs are recovered at once.
	Owner     string
	OwnerDead func(owner string) bool
	// NoScheduler leaves the runs to be claimed elsewhere (tests claim them as a scheduler would).
	NoScheduler bool
	// ImageBase is the default base of images (an OCI layout, OCI archive or docker archive;
	// "" for none: images then name a base of the workspace registry); ImagePipArgs are added
	// to the pip of image builds (an index URL, --find-links DIR).
	ImageBase    string
	ImagePipArgs []string
	// RegistryGCInterval is how often the workspace image registry's unreferenced blobs are
	// collected (by one of the servers sharing the stores: the one holding the lease); 0 never.
	RegistryGCInterval time.Duration
	// AdvertiseURL is the URL runs (on this machine and remote ones) reach the server at;
	// "" for the TCP listener's address.
	AdvertiseURL string
	// RunnerArgs are added to the command line of the job runners remote drivers start.
	RunnerArgs []string
	// UnreachableAfter is how long a compute target may not answer about a run's job before
	// the run fails (0: service.DefaultUnreachableAfter).
	UnreachableAfter time.Duration
	// Clock and NewID are the domain's time and ids, shared by the store, the service and the
	// MLflow API; nil for the wall clock and atelier.NewID (tests pin them).
	Clock atelier.Clock
	NewID atelier.IDs
}

// Machine is what the compute target of this machine must keep its runs away from, and where
// it keeps its own files.
type Machine struct {
	DataDir      string
	ArtifactsDir string // "" when the artifact store is a bucket
	Socket       string // the Unix socket's path, "" for none
	Log          *slog.Logger
}

// Server is a wired server. Its fields may be tuned between New and Run.
type Server struct {
	Service *service.Service
	DB      *sqlite.DB
	Objects *blob.Store // the artifact store's objects
	API     *api.Server
	MLflow  *mlflow.Handler
	// UI is the studio, the web UI, served at / (every path but the other doors').
	UI *ui.Handler
	// Registry is the workspace image registry, served under /v2/.
	Registry *registry.Registry
	DataDir  string
	URL      string // http://host:port of the TCP listener
	Socket   string // the Unix socket's path, "" for none
	// AdminToken is the administrator token New made, "" when there already was one.
	AdminToken string

	cfg       Config
	log       *slog.Logger
	ln        net.Listener
	unixLn    net.Listener
	http      *http.Server
	artifacts *artifactStore
	closers   []func() error
	// images is the service's image builder, which also collects the registry's garbage.
	images *workspaceImages
}

// New opens the server's stores and wires its parts; Run serves them. The address comes first:
// a server that cannot listen touches nothing (no token made, no store opened).
func New(ctx context.Context, cfg Config) (_ *Server, err error) {
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, log: log}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if s.ln, err = net.Listen("tcp", cfg.Addr); err != nil {
		var op *net.OpError
		if errors.As(err, &op) {
			err = op.Err // "bind: address already in use", without repeating the address
		}
		return nil, fmt.Errorf("listening on %s: %w; choose another address with --addr or ATELIER_ADDR (make run ADDR=HOST:PORT)", cfg.Addr, err)
	}
	s.onClose(s.ln.Close)
	s.URL = "http://" + s.ln.Addr().String()

	if s.DataDir, err = filepath.Abs(cfg.DataDir); err != nil {
		return nil, err
	}
	dataDir := s.DataDir
	for _, dir := range []string{dataDir, filepath.Join(dataDir, "tmp"),
		filepath.Join(dataDir, "work"), filepath.Join(dataDir, "envs"), filepath.Join(dataDir, "sdk")} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("creating the data directory: %w", err)
		}
	}
	// Runs, of another user, read the environments and the SDK where they are granted them
	// (the data directory itself stays the server's only).
	for _, dir := range []string{filepath.Join(dataDir, "envs"), filepath.Join(dataDir, "sdk")} {
		if err := os.Chmod(dir, 0o755); err != nil {
			return nil, fmt.Errorf("creating the data directory: %w", err)
		}
	}
	if s.DB, err = sqlite.Open(ctx, filepath.Join(dataDir, "atelier.db"), sqlite.Options{Synchronous: cfg.Synchronous}); err != nil {
		return nil, err
	}
	s.onClose(s.DB.Close)
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.NewID != nil {
		s.DB.NewID = cfg.NewID
	}
	s.DB.Now = cfg.Clock
	opener := datastore.NewOpener("")
	if s.artifacts, err = openArtifacts(ctx, cfg.Artifacts, dataDir, opener); err != nil {
		return nil, err
	}
	s.Objects = s.artifacts.objects
	s.onClose(s.Objects.Close)

	svc := service.New(s.DB, s.artifacts.objects, log)
	svc.SetClock(cfg.Clock)
	s.Service = svc
	svc.TempDir = filepath.Join(dataDir, "tmp")
	if cfg.SnapshotMaxBytes > 0 {
		svc.SnapshotMaxBytes = cfg.SnapshotMaxBytes
	}
	if cfg.SnapshotMaxFiles > 0 {
		svc.SnapshotMaxFiles = cfg.SnapshotMaxFiles
	}
	masterKey, err := secret.LoadKey(filepath.Join(dataDir, "master.key"), cfg.MasterKey)
	if err != nil {
		return nil, err
	}
	if svc.Secrets, err = secret.New(masterKey); err != nil {
		return nil, err
	}
	svc.Datastores, svc.DataDir = opener, dataDir
	svc.ArtifactDir, svc.BuiltInLocation = s.artifacts.dir, s.artifacts.builtIn()
	if err := svc.Init(ctx); err != nil {
		return nil, err
	}
	tokenPath := filepath.Join(dataDir, AdminTokenFile)
	if s.AdminToken, err = svc.EnsureAdminToken(ctx, tokenPath); err != nil {
		return nil, err
	}
	if s.AdminToken != "" && cfg.TokenNotice != nil {
		cfg.TokenNotice(tokenPath, s.AdminToken)
	}

	if s.unixLn, err = listenSocket(cfg.Socket, dataDir, log); err != nil {
		return nil, err
	}
	if s.unixLn != nil {
		s.Socket = s.unixLn.Addr().String()
		s.onClose(s.unixLn.Close) // removes the socket file, if the server stops before serving
	}
	svc.ServerURL = s.URL
	if cfg.LocalCompute != nil {
		t, err := cfg.LocalCompute(ctx, Machine{DataDir: dataDir, ArtifactsDir: s.artifacts.dir, Socket: s.Socket, Log: log})
		if err != nil {
			return nil, err
		}
		if t != nil {
			svc.AddComputeTarget(t)
			if t.Driver != nil {
				// Workspaces' own targets of this kind (another queue, another concurrency) run on it too.
				svc.Drivers = map[string]atelier.ComputeDriver{t.Kind: t.Driver}
			}
		}
	}
	if err := s.openRemoteCompute(cfg); err != nil {
		return nil, err
	}
	if cfg.AdvertiseURL != "" {
		svc.ServerURL = strings.TrimRight(cfg.AdvertiseURL, "/")
	}
	s.openServices(cfg)
	if err := s.openImages(ctx, cfg); err != nil {
		return nil, fmt.Errorf("opening the image registry: %w", err)
	}
	if cfg.Owner != "" {
		svc.Owner = cfg.Owner
	}
	if cfg.OwnerDead != nil {
		svc.OwnerDead = cfg.OwnerDead
	}
	svc.UnreachableAfter = cfg.UnreachableAfter

	// The MLflow REST API shares the listener: MLflow's paths go to it, the rest to atelier's API
	// (dispatched by prefix, not by a ServeMux, which would redirect non-canonical paths).
	s.API, s.MLflow = api.NewServer(svc, svc, log), mlflow.NewHandler(svc, svc, log)
	s.MLflow.Now = cfg.Clock
	s.API.Version = cfg.Version
	if cfg.CookieSecure != "" {
		s.API.CookieSecure = cfg.CookieSecure
	}
	// Both front doors tell one condition how writes end: a full disk is logged once an
	// episode, and the health check reports it.
	s.API.Storage = edge.NewStorageCondition(log)
	s.MLflow.Storage = s.API.Storage
	s.API.LocalSocket = s.Socket
	s.UI = ui.New(svc, svc, svc, svc, log)
	s.UI.SecureCookie = s.API.SecureCookie
	s.http = &http.Server{
		Handler:           edge.LogRequests(log, s),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	api.AcceptPassedFiles(s.http) // files passed over the Unix socket
	return s, nil
}

// ServeHTTP serves the front doors that share the listener.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/v2" || strings.HasPrefix(r.URL.Path, "/v2/") {
		s.Registry.ServeHTTP(w, r)
		return
	}
	if strings.HasPrefix(r.URL.Path, ServicesPrefix) {
		s.serveScoring(w, r)
		return
	}
	if r.URL.Path == "/metrics" {
		s.serveMetrics(w, r)
		return
	}
	if ui.IsLanding(r) { // a workspace's MLflow tracking URI, opened in a browser
		s.UI.ServeHTTP(w, r)
		return
	}
	if mlflow.Handles(r.URL.Path) {
		s.MLflow.ServeHTTP(w, r)
		return
	}
	if !strings.HasPrefix(r.URL.Path, "/api/") {
		s.UI.ServeHTTP(w, r)
		return
	}
	s.API.ServeHTTP(w, r)
}

// Run serves until ctx ends or a part fails, then stops every part: the listeners first (the
// requests in flight get shutdownGrace), then the scheduler. The runs it launched are not
// canceled: detached job runners outlive the server, and the next one finds them.
func (s *Server) Run(ctx context.Context) error {
	log := s.log
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g, gctx := errgroup.WithContext(ctx)
	// The scheduler outlives ctx until the listeners are shut: runs still report their end. It
	// starts first, as its recovery pass looks for the runs of a previous server before their
	// runners find this one (through the address file).
	schedCtx, stopSched := context.WithCancel(context.WithoutCancel(ctx))
	defer stopSched()
	if !s.cfg.NoScheduler {
		g.Go(func() error { s.Service.RunScheduler(schedCtx); return nil })
	}
	g.Go(func() error { s.artifacts.cleanStaging(gctx, log); return nil })
	if s.cfg.RegistryGCInterval > 0 && s.images != nil {
		g.Go(func() error { s.images.registryGC(gctx, s.cfg.RegistryGCInterval); return nil })
	}
	log.Info("atelier server listening", "addr", s.URL, "data", s.DataDir, "artifacts", s.artifacts.loc.String())
	urlPath := filepath.Join(s.DataDir, URLFile)
	if err := os.WriteFile(urlPath, []byte(s.URL+"\n"), 0o600); err != nil {
		cancel()
		stopSched()
		g.Wait()
		return fmt.Errorf("writing the server's address: %w", err)
	}
	var debug *http.Server
	if s.cfg.DebugAddr != "" {
		debug = &http.Server{Addr: s.cfg.DebugAddr, Handler: pprofMux(), ReadHeaderTimeout: 10 * time.Second}
		g.Go(func() error {
			log.Info("pprof listening", "addr", "http://"+s.cfg.DebugAddr+"/debug/pprof/")
			if err := debug.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("pprof server", "err", err) // profiles are a help, not a part the server needs
			}
			return nil
		})
	}
	g.Go(func() error { return serve(s.http, s.ln) })
	if s.unixLn != nil {
		log.Info("listening for local clients", "socket", api.UnixScheme+s.Socket)
		g.Go(func() error { return serve(s.http, s.unixLn) })
	}
	g.Go(func() error {
		<-gctx.Done()
		if ctx.Err() != nil {
			log.Info("shutting down")
		}
		shutdown, cancel := context.WithTimeout(context.Background(), shutdownGrace)
		defer cancel()
		err := s.http.Shutdown(shutdown)
		if debug != nil {
			debug.Close()
		}
		os.Remove(urlPath)
		stopSched()
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			return err
		}
		return nil
	})
	return g.Wait()
}

// Close releases what New opened. After Run, or instead of it.
func (s *Server) Close() error {
	var errs []error
	for i := len(s.closers) - 1; i >= 0; i-- {
		if err := s.closers[i](); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
	}
	s.closers = nil
	return errors.Join(errs...)
}

func (s *Server) onClose(f func() error) { s.closers = append(s.closers, f) }

// serve serves ln until the server is shut down.
func serve(srv *http.Server, ln net.Listener) error {
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// pprofMux serves Go's profiles on a mux of their own: never on the front doors' listener, nor
// through http.DefaultServeMux, which any imported package may add to.
func pprofMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// listenSocket opens the server's Unix socket: spec is a path, "auto" (<data>/atelier.sock,
// skipped with a warning where the path is too long for a socket) or "off".
func listenSocket(spec, dataDir string, log *slog.Logger) (net.Listener, error) {
	switch spec {
	case "off", "":
		return nil, nil
	case "auto":
		path := filepath.Join(dataDir, SocketFile)
		ln, err := api.ListenUnix(path)
		if err != nil {
			log.Warn("no Unix socket for local clients (they use TCP)", "socket", path, "err", err)
			return nil, nil
		}
		return ln, nil
	}
	path, err := filepath.Abs(spec)
	if err != nil {
		return nil, err
	}
	ln, err := api.ListenUnix(path)
	if err != nil {
		return nil, atelier.Errorf(atelier.EINVALID, "--socket: %v", err)
	}
	return ln, nil
}
