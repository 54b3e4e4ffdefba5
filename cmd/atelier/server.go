package main

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/api"
	"github.com/atelier-ml/atelier/compute/local"
	"github.com/atelier-ml/atelier/python"
	"github.com/atelier-ml/atelier/sandbox"
	"github.com/atelier-ml/atelier/secret"
	"github.com/atelier-ml/atelier/server"
	"github.com/atelier-ml/atelier/service"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

const (
	defaultDataDir = ".atelier"
	adminTokenFile = server.AdminTokenFile
	socketFile     = server.SocketFile
	// urlFile holds the address the server listens on while it runs, so clients that read the
	// admin token beside it send it to this server and no other (see clientConfig.client).
	urlFile = server.URLFile
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
	imageBase        string
	imagePipArgs     string
	registryGCEvery  time.Duration
	advertiseURL     string
	unreachableAfter time.Duration
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
	f.StringVar(&cfg.imageBase, "image-base", "",
		"default base of images: an OCI layout, OCI archive or docker archive on this machine (scripts/build-python-base.sh makes a CPython one); without it images name a base pushed to the workspace registry")
	f.StringVar(&cfg.imagePipArgs, "image-pip-args", "", "arguments added to the pip of image builds, space-separated (an --index-url, --find-links DIR)")
	f.DurationVar(&cfg.registryGCEvery, "registry-gc-interval", server.DefaultRegistryGCInterval,
		"how often the image registry's unreferenced blobs are deleted (by one of the servers sharing the stores); 0 never ('atelier registry gc' runs it now)")
	f.StringVar(&cfg.advertiseURL, "advertise-url", "",
		"the URL runs reach this server at, on this machine and on remote compute targets (default: the listen address)")
	f.DurationVar(&cfg.unreachableAfter, "compute-unreachable-after", service.DefaultUnreachableAfter,
		"how long a compute target may not answer about a run's job before the run fails saying so")
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
	// Datastore credentials are sealed under the master key: ATELIER_MASTER_KEY, else
	// <data>/master.key (made on first start). The variable is dropped so runs never inherit it.
	masterKey := os.Getenv(secret.EnvKey)
	os.Unsetenv(secret.EnvKey)
	owner, ownerDead := leaseOwner()
	srv, err := server.New(ctx, server.Config{
		DataDir: cfg.dataDir, Addr: cfg.addr, Socket: cfg.socket, Log: log, Synchronous: cfg.synchronous,
		SnapshotMaxBytes: cfg.snapshotMaxBytes, SnapshotMaxFiles: cfg.snapshotMaxFiles,
		Artifacts: cfg.artifacts, MasterKey: masterKey, DebugAddr: cfg.debugAddr,
		CookieSecure: cookieSecure, Version: buildVersion().Version,
		TokenNotice: func(path, secret string) {
			fmt.Fprintf(os.Stderr, "Created the administrator token (saved in %s; shown only this once):\n\n    %s\n\n", path, secret)
		},
		LocalCompute: func(ctx context.Context, m server.Machine) (*service.Target, error) {
			return localCompute(ctx, cfg, m)
		},
		Owner: owner, OwnerDead: ownerDead,
		ImageBase: cfg.imageBase, ImagePipArgs: strings.Fields(cfg.imagePipArgs), RegistryGCInterval: cfg.registryGCEvery,
		AdvertiseURL: cfg.advertiseURL, RunnerArgs: []string{"--cancel-grace", cfg.cancelGrace.String()},
		UnreachableAfter: cfg.unreachableAfter,
	})
	if err != nil {
		return err
	}
	defer srv.Close()
	return srv.Run(ctx)
}

// localCompute is the compute target of this machine: runs launched as job runners of their
// own (atelier job exec), detached from the server, confined by the isolation set up here.
// They outlive a restart, and the server that starts again finds them.
func localCompute(ctx context.Context, cfg serverConfig, m server.Machine) (*service.Target, error) {
	dataDir := m.DataDir
	sdkPath, err := python.Install(filepath.Join(dataDir, "sdk"))
	if err != nil {
		return nil, fmt.Errorf("installing the Python SDK for runs: %w", err)
	}
	iso, err := isolation(ctx, cfg, m, sdkPath)
	if err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("finding the server's binary for the job runners: %w", err)
	}
	isoFile := filepath.Join(dataDir, "run-isolation.json")
	if err := writeJobIsolation(isoFile, iso, iso.runAs); err != nil {
		return nil, fmt.Errorf("writing the isolation of runs: %w", err)
	}
	driver := &local.Driver{Command: []string{self, "job", "exec"}, Dir: filepath.Join(dataDir, "jobs"), Env: runnerEnviron(),
		Args: []string{"--envs-dir", filepath.Join(dataDir, "envs"), "--server-url-file", filepath.Join(dataDir, server.URLFile),
			"--cancel-grace", cfg.cancelGrace.String()}}
	if iso.Isolation != nil {
		driver.Args = append(driver.Args, "--isolation", isoFile)
	}
	(&local.Executor{WorkDir: filepath.Join(dataDir, "work")}).CleanupMounts()
	return &service.Target{Name: atelier.DefaultCompute, Kind: atelier.ComputeLocal, MaxConcurrentRuns: cfg.maxLocalRuns,
		Driver: driver, Isolation: iso.Name()}, nil
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
func isolation(ctx context.Context, cfg serverConfig, m server.Machine, sdkPath string) (runIsolation, error) {
	dataDir, log := m.DataDir, m.Log
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
	if m.ArtifactsDir != "" {
		iso.Hide = append(iso.Hide, m.ArtifactsDir)
	}
	if m.Socket != "" {
		iso.Hide = append(iso.Hide, m.Socket)
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
