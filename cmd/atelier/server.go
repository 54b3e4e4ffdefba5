package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/api"
	"github.com/atelier-ml/atelier/compute/local"
	"github.com/atelier-ml/atelier/datastore"
	"github.com/atelier-ml/atelier/edge"
	"github.com/atelier-ml/atelier/mlflow"
	"github.com/atelier-ml/atelier/python"
	"github.com/atelier-ml/atelier/sandbox"
	"github.com/atelier-ml/atelier/secret"
	"github.com/atelier-ml/atelier/service"
	"github.com/atelier-ml/atelier/sqlite"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

const (
	defaultDataDir = ".atelier"
	adminTokenFile = "admin-token"
	socketFile     = "atelier.sock"
	// urlFile holds the address the server listens on while it runs, so clients that read the
	// admin token beside it send it to this server and no other (see clientConfig.client).
	urlFile = "server-url"
)

// serverConfig is the server's configuration: defaults, then the config file, then ATELIER_*
// variables, then flags (see layer).
type serverConfig struct {
	dataDir          string
	runAs            string
	runReadable      string
	addr             string
	socket           string
	logLevel         string
	synchronous      string
	snapshotMaxBytes int64
	snapshotMaxFiles int
	debugAddr        string
	maxLocalRuns     int
	cancelGrace      time.Duration
	cookieSecure     string
	artifacts        string
}

// flags are the server's settings: each is a flag, a variable and a key of the config file.
func (cfg *serverConfig) flags() *pflag.FlagSet {
	f := pflag.NewFlagSet("server", pflag.ContinueOnError)
	f.StringVar(&cfg.dataDir, "data", defaultDataDir, "data directory")
	f.StringVar(&cfg.addr, "addr", "127.0.0.1:8600", "listen address")
	f.StringVar(&cfg.socket, "socket", "auto",
		"Unix socket for clients on this machine, which pass files to it instead of sending them: a path, auto (<data>/"+socketFile+") or off")
	f.StringVar(&cfg.logLevel, "log-level", "info", "debug, info, warn or error")
	f.StringVar(&cfg.synchronous, "sync", "NORMAL",
		"SQLite synchronous mode: NORMAL survives a crash of the server, FULL also a power loss")
	f.Int64Var(&cfg.snapshotMaxBytes, "snapshot-max-bytes", 300<<20, "largest snapshot accepted")
	f.IntVar(&cfg.snapshotMaxFiles, "snapshot-max-files", 2000, "most files in a snapshot")
	f.IntVar(&cfg.maxLocalRuns, "max-local-runs", runtime.NumCPU(),
		"runs the local compute target executes at once; more wait as Queued")
	f.StringVar(&cfg.runAs, "run-as", "auto",
		"user the scripts of runs on local run as when the server is root: a name, uid or uid:gid; auto (nobody when root) or off (the server's user)")
	f.StringVar(&cfg.runReadable, "run-readable", "",
		"paths runs on local may read although they are hidden or not readable to them (PATH"+string(os.PathListSeparator)+"PATH...)"+
			": interpreters of user-managed environments (environment.python), shared data")
	f.DurationVar(&cfg.cancelGrace, "cancel-grace", 10*time.Second, "time a canceled script gets between SIGTERM and SIGKILL")
	f.StringVar(&cfg.artifacts, "artifacts", "", "artifact store URL: file:///dir, s3://, azblob:// or gs:// (default: the data directory)")
	f.StringVar(&cfg.debugAddr, "debug-addr", "", "serve Go's pprof profiles on this address (off when empty)")
	f.StringVar(&cfg.cookieSecure, "cookie-secure", string(api.CookieSecureAuto),
		"mark the UI's session cookie Secure: auto (when the request came over TLS or with X-Forwarded-Proto: https), always, or never (plain http off localhost)")
	documentEnv(f)
	return f
}

func newServerCmd() *cobra.Command {
	cfg := serverConfig{}
	settings := cfg.flags()
	var printConfig bool
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the workspace server",
		Long: `Run the workspace server on the embedded store: SQLite (WAL) for metadata and a
content-addressed object store under the data directory. Nothing else is needed.

On first start it creates the workspace "default" and an administrator token, written to
<data>/admin-token (mode 0600) and printed once.

Each setting comes from its flag, else its ATELIER_* variable (named below), else the config
file, else its default. The config file is --config (ATELIER_CONFIG), else ./` + configFileName + `
when there is one (--config '' reads none): YAML, its keys the flags' names, e.g.

    addr: 0.0.0.0:8600
    data: /var/lib/atelier
    max-local-runs: 4
    cancel-grace: 30s

Relative paths in it are relative to the server's working directory, as on the command line.
Secrets are never in it: the master key (ATELIER_MASTER_KEY, else <data>/master.key) and the
artifact store's credentials come from the environment only. --print-config prints each
setting's value and where it came from (-o json too) and exits.

` + artifactsHelp,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			sources, err := loadServerConfig(settings, cmd.Flag("config"), os.Getenv)
			if err != nil {
				return err
			}
			if printConfig {
				return printSettings(cmd.OutOrStdout(), cmd.Flag("output").Value.String(), sources)
			}
			return runServer(cmd.Context(), cfg)
		},
	}
	cmd.Flags().AddFlagSet(settings)
	cmd.Flags().String("config", "", "config file (default ./"+configFileName+" when there is one) (env ATELIER_CONFIG)")
	cmd.Flags().BoolVar(&printConfig, "print-config", false, "print the effective configuration and where each value came from, and exit")
	return cmd
}

// loadServerConfig layers the config file and the environment under the flags of settings,
// and returns where each value came from, the config file's first.
func loadServerConfig(settings *pflag.FlagSet, configFlag *pflag.Flag, getenv func(string) string) ([]setting, error) {
	where, err := findConfigFile(configFlag, getenv)
	if err != nil {
		return nil, err
	}
	var file *configFile
	if where.Value != "" {
		if file, err = readConfigFile(where.Value, (&serverConfig{}).flags()); err != nil {
			return nil, err
		}
	}
	sources, err := layer(settings, file, getenv)
	return append([]setting{where}, sources...), err
}

func runServer(ctx context.Context, cfg serverConfig) error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.logLevel)); err != nil {
		return usagef("unknown log level %q", cfg.logLevel)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	cookieSecure, err := api.ParseCookieSecure(cfg.cookieSecure)
	if err != nil {
		return usagef("--cookie-secure: %s", atelier.ErrorMessage(err))
	}
	// The address first: a server that cannot listen touches nothing (no token made and
	// printed above the error, no store opened).
	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) {
			err = op.Err // "bind: address already in use", without repeating the address
		}
		return fmt.Errorf("listening on %s: %w; choose another address with --addr or ATELIER_ADDR (make run ADDR=HOST:PORT)", cfg.addr, err)
	}
	defer ln.Close()

	dataDir, err := filepath.Abs(cfg.dataDir)
	if err != nil {
		return err
	}
	for _, dir := range []string{dataDir, filepath.Join(dataDir, "tmp"),
		filepath.Join(dataDir, "work"), filepath.Join(dataDir, "envs"), filepath.Join(dataDir, "sdk")} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("creating the data directory: %w", err)
		}
	}
	// Runs, of another user, read the environments and the SDK where they are granted them
	// (the data directory itself stays the server's only).
	for _, dir := range []string{filepath.Join(dataDir, "envs"), filepath.Join(dataDir, "sdk")} {
		if err := os.Chmod(dir, 0o755); err != nil {
			return fmt.Errorf("creating the data directory: %w", err)
		}
	}
	db, err := sqlite.Open(ctx, filepath.Join(dataDir, "atelier.db"), sqlite.Options{Synchronous: cfg.synchronous})
	if err != nil {
		return err
	}
	defer db.Close()
	opener := datastore.NewOpener("")
	artifacts, err := openArtifacts(ctx, cfg.artifacts, dataDir, opener, log)
	if err != nil {
		return err
	}
	defer artifacts.objects.Close()

	svc := service.New(db, artifacts.objects, log)
	svc.TempDir = filepath.Join(dataDir, "tmp")
	svc.SnapshotMaxBytes, svc.SnapshotMaxFiles = cfg.snapshotMaxBytes, cfg.snapshotMaxFiles
	// Datastore credentials are sealed under the master key: ATELIER_MASTER_KEY, else
	// <data>/master.key (made on first start). The variable is dropped so runs never inherit it.
	masterKey, err := secret.LoadKey(filepath.Join(dataDir, "master.key"), os.Getenv(secret.EnvKey))
	os.Unsetenv(secret.EnvKey)
	if err != nil {
		return err
	}
	if svc.Secrets, err = secret.New(masterKey); err != nil {
		return err
	}
	svc.Datastores, svc.DataDir = opener, dataDir
	svc.ArtifactDir, svc.BuiltInLocation = artifacts.dir, artifacts.builtIn()
	if err := svc.Init(ctx); err != nil {
		return err
	}
	secret, err := svc.EnsureAdminToken(ctx, filepath.Join(dataDir, adminTokenFile))
	if err != nil {
		return err
	}
	if secret != "" {
		fmt.Fprintf(os.Stderr, "Created the administrator token (saved in %s; shown only this once):\n\n    %s\n\n",
			filepath.Join(dataDir, adminTokenFile), secret)
	}

	if cfg.debugAddr != "" {
		go func() {
			log.Info("pprof listening", "addr", "http://"+cfg.debugAddr+"/debug/pprof/")
			// http.DefaultServeMux carries net/http/pprof's handlers.
			if err := http.ListenAndServe(cfg.debugAddr, http.DefaultServeMux); err != nil {
				log.Error("pprof server", "err", err)
			}
		}()
	}
	unixLn, err := listenSocket(cfg.socket, dataDir, log)
	if err != nil {
		ln.Close()
		return err
	}
	if unixLn != nil {
		defer unixLn.Close() // removes the socket file, if the server stops before serving
	}
	svc.ServerURL = "http://" + ln.Addr().String()
	sdkPath, err := python.Install(filepath.Join(dataDir, "sdk"))
	if err != nil {
		return fmt.Errorf("installing the Python SDK for runs: %w", err)
	}
	iso, err := isolation(ctx, cfg, dataDir, artifacts, unixLn, sdkPath, log)
	if err != nil {
		return err
	}
	// Runs on local are launched as job runners of their own (atelier job exec), detached from
	// the server: they outlive a restart, and the server that starts again finds them.
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("finding the server's binary for the job runners: %w", err)
	}
	isoFile := filepath.Join(dataDir, "run-isolation.json")
	if err := writeJobIsolation(isoFile, iso, iso.runAs); err != nil {
		return fmt.Errorf("writing the isolation of runs: %w", err)
	}
	driver := &local.Driver{Command: []string{self, "job", "exec"}, Dir: filepath.Join(dataDir, "jobs"), Env: runnerEnviron(),
		Args: []string{"--envs-dir", filepath.Join(dataDir, "envs"), "--server-url-file", filepath.Join(dataDir, urlFile),
			"--cancel-grace", cfg.cancelGrace.String()}}
	if iso.Isolation != nil {
		driver.Args = append(driver.Args, "--isolation", isoFile)
	}
	(&local.Executor{WorkDir: filepath.Join(dataDir, "work")}).CleanupMounts()
	svc.AddComputeTarget(&service.Target{Name: atelier.DefaultCompute, Kind: "local", MaxConcurrentRuns: cfg.maxLocalRuns,
		Driver: driver, Isolation: iso.Name()})
	// Workspaces' own targets of kind local (another queue, another concurrency) run on it too.
	svc.Drivers = map[string]atelier.ComputeDriver{atelier.ComputeLocal: driver}
	svc.Owner, svc.OwnerDead = leaseOwner()
	schedCtx, stopSched := context.WithCancel(context.WithoutCancel(ctx))
	schedDone := make(chan struct{})
	go func() { svc.RunScheduler(schedCtx); close(schedDone) }()
	defer func() { stopSched(); <-schedDone }()
	// The MLflow REST API shares the listener: MLflow's paths go to it, the rest to atelier's API
	// (dispatched by prefix, not by a ServeMux, which would redirect non-canonical paths).
	apiServer, mlflowAPI := api.NewServer(svc, svc, log), mlflow.NewHandler(svc, svc, log)
	apiServer.Version = buildVersion().Version
	apiServer.CookieSecure = cookieSecure
	// Both front doors tell one condition how writes end: a full disk is logged once an
	// episode, and the health check reports it.
	apiServer.Storage = edge.NewStorageCondition(log)
	mlflowAPI.Storage = apiServer.Storage
	if unixLn != nil {
		apiServer.LocalSocket = unixLn.Addr().String()
	}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if mlflow.Handles(r.URL.Path) {
			mlflowAPI.ServeHTTP(w, r)
			return
		}
		apiServer.ServeHTTP(w, r)
	})
	srv := &http.Server{
		Handler:           logRequests(log, handler),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	api.AcceptPassedFiles(srv) // files passed over the Unix socket
	log.Info("atelier server listening", "addr", "http://"+ln.Addr().String(), "data", dataDir, "artifacts", artifacts.loc.String())
	urlPath := filepath.Join(dataDir, urlFile)
	if err := os.WriteFile(urlPath, []byte(svc.ServerURL+"\n"), 0o600); err != nil {
		return fmt.Errorf("writing the server's address: %w", err)
	}
	defer os.Remove(urlPath)
	errc := make(chan error, 2)
	go func() { errc <- srv.Serve(ln) }()
	if unixLn != nil {
		log.Info("listening for local clients", "socket", api.UnixScheme+unixLn.Addr().String())
		go func() { errc <- srv.Serve(unixLn) }()
	}
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down")
	shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}

// logRequests logs each request; the high-rate ingestion calls log at debug level.
func logRequests(log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &edge.StatusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		level := slog.LevelInfo
		if r.Method == http.MethodGet || strings.HasSuffix(r.URL.Path, "/metrics") || strings.Contains(r.URL.Path, "/logs/") {
			level = slog.LevelDebug
		}
		if sw.Status >= 500 && sw.Status != http.StatusInsufficientStorage { // a full disk is logged once, by Storage
			level = slog.LevelError
		}
		log.Log(r.Context(), level, "request", "method", r.Method, "path", r.URL.Path, "status", sw.Status,
			"duration", time.Since(start).Round(time.Microsecond), "remote", r.RemoteAddr)
	})
}

// listenSocket opens the server's Unix socket: spec is a path, "auto" (<data>/atelier.sock,
// skipped with a warning where the path is too long for a socket) or "off".
func listenSocket(spec, dataDir string, log *slog.Logger) (net.Listener, error) {
	switch spec {
	case "off", "":
		return nil, nil
	case "auto":
		path := filepath.Join(dataDir, socketFile)
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
		return nil, usagef("--socket: %v", err)
	}
	return ln, nil
}

// runIsolation is how the local target confines runs, and the trusted interpreter it grants.
type runIsolation struct {
	*local.Isolation
	interpreters map[string]string
	runAs        string // the user runs run as ("" for the server's)
}

// isolation sets up the confinement of runs on this machine (package sandbox): they must not
// reach the server's data directory, artifact store, socket or its user's home, and get the
// SDK and the default interpreter. It says loudly when nothing confines them.
func isolation(ctx context.Context, cfg serverConfig, dataDir string, artifacts *artifactStore, unixLn net.Listener, sdkPath string, log *slog.Logger) (runIsolation, error) {
	runAs := cfg.runAs
	switch runAs {
	case "auto":
		runAs = ""
		if os.Geteuid() == 0 {
			runAs = "nobody"
		}
	case "off":
		runAs = ""
	}
	self, err := os.Executable()
	if err != nil {
		return runIsolation{}, fmt.Errorf("finding the server's binary for the run sandbox: %w", err)
	}
	launcher, err := sandbox.New(self, os.Args[0], runAs)
	if err != nil {
		return runIsolation{}, usagef("%v", err)
	}
	iso := runIsolation{Isolation: &local.Isolation{Launcher: launcher, Hide: []string{dataDir}, ReadOnly: []string{sdkPath}}, runAs: runAs}
	if artifacts.dir != "" {
		iso.Hide = append(iso.Hide, artifacts.dir)
	}
	if unixLn != nil {
		iso.Hide = append(iso.Hide, unixLn.Addr().String())
	}
	if home, err := os.UserHomeDir(); err == nil && home != "/" {
		iso.Hide = append(iso.Hide, home)
	}
	// The default interpreter may be a shim in the server's home (pyenv): runs get the real
	// one, and the directory it lives in.
	if exe, prefix, err := python.Resolve(ctx, "python3"); err == nil {
		iso.interpreters = map[string]string{"python3": exe}
		iso.ReadOnly = append(iso.ReadOnly, prefix, filepath.Dir(exe))
	} else {
		log.Warn("no default Python interpreter for runs", "err", err)
	}
	for _, p := range filepath.SplitList(cfg.runReadable) {
		if p == "" {
			continue
		}
		abs, err := filepath.Abs(p)
		if err != nil {
			return runIsolation{}, usagef("--run-readable %q: %v", p, err)
		}
		if abs == dataDir || strings.HasPrefix(abs+"/", dataDir+"/") || strings.HasPrefix(dataDir+"/", abs+"/") {
			return runIsolation{}, usagef("--run-readable %q: the data directory (and what holds it) stays hidden from runs", p)
		}
		iso.ReadOnly = append(iso.ReadOnly, abs)
	}
	if iso.Name() == "none" {
		log.Warn("RUNS ARE NOT ISOLATED: a script submitted to the local compute target runs as this server's user and can read its admin token, master key and database. " +
			"Run the server as root (runs then run as another user, in a mount namespace) or on Linux 5.13 or later (Landlock)")
	} else {
		log.Info("runs on local are isolated", "isolation", iso.Name(), "run_as", cmp.Or(runAs, "the server's user"))
	}
	return iso, nil
}
