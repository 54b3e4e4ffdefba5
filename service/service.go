// Package service implements the domain services on the store, the object store and the event
// broker: it authorizes each call, keeps activities in step with runs and publishes events.
package service

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/serving"
	"golang.org/x/crypto/bcrypt"
)

// Service is the workspace server's use cases, composed of one service per domain: accounts
// (users, tokens, members, audit), runs (workspaces, experiments, runs, metrics, files,
// snapshots, events), models, data (datastores, datasets, secrets), compute (targets and the
// runs' controller), images and web services. Each holds the store's role interfaces it uses
// and the others it calls; all share one base (logger, clock, events, the authorization
// component, leases, content and the server's settings). The REST API, the MLflow API, the UI
// and the CLI's client all go through it, so they obey the same rules.
type Service struct {
	*base
	*Accounts
	*Runs
	*Models
	*Data
	*Compute
	*Images
	*WebServices
	store atelier.Store
}

// base is what every domain service shares.
type base struct {
	log    *slog.Logger
	now    func() time.Time
	events *Broker
	*authz
	*leases
	*content
	// sched wakes the controller loop and keeps what in-process jobs were given.
	sched *scheduler

	// TempDir holds spooled uploads (snapshot zips) while they are checked.
	TempDir string
	// ServerURL is the address scripts use to reach the server.
	ServerURL string
	// DataDir is the server's data directory (no files datastore may overlap it; services
	// keep their folders under it).
	DataDir string
	// Secrets seals credentials (datastores', compute targets', service keys') and opens
	// them; without it those are unavailable.
	Secrets atelier.SecretBox
}

// Compile-time checks that Service implements the domain services.
var (
	_ atelier.WorkspaceService  = (*Service)(nil)
	_ atelier.ExperimentService = (*Service)(nil)
	_ atelier.ExperimentCreator = (*Service)(nil)
	_ atelier.ModelEditor       = (*Service)(nil)
	_ atelier.RunDeleter        = (*Service)(nil)
	_ atelier.RunService        = (*Service)(nil)
	_ atelier.MetricService     = (*Service)(nil)
	_ atelier.FileService       = (*Service)(nil)
	_ atelier.SnapshotService   = (*Service)(nil)
	_ atelier.ActivityService   = (*Service)(nil)
	_ atelier.EventService      = (*Service)(nil)
	_ atelier.AuthService       = (*Service)(nil)
	_ atelier.UserService       = (*Service)(nil)
	_ atelier.TokenService      = (*Service)(nil)
	_ atelier.MemberService     = (*Service)(nil)
	_ atelier.AuditService      = (*Service)(nil)
)

// New returns a Service over a metadata store and an object store.
func New(store atelier.Store, objects atelier.ObjectStore, log *slog.Logger) *Service {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	b := &base{log: log, now: time.Now, events: NewBroker(), sched: newScheduler(),
		authz:   &authz{reads: store, now: time.Now},
		leases:  &leases{store: store},
		content: &content{store: store, objects: objects}}
	s := &Service{base: b, store: store,
		Accounts: &Accounts{base: b, store: store, logins: newThrottle(), PasswordCost: bcrypt.DefaultCost},
		Runs: &Runs{base: b, store: store,
			SnapshotMaxBytes: atelier.DefaultSnapshotMaxBytes, SnapshotMaxFiles: atelier.DefaultSnapshotMaxFiles},
		Models:      &Models{base: b, store: store},
		Data:        &Data{base: b, store: store},
		Compute:     &Compute{base: b, store: store},
		Images:      &Images{base: b, store: store},
		WebServices: &WebServices{base: b, store: store},
	}
	s.Runs.data, s.Runs.compute = s.Data, s.Compute
	s.Compute.runs, s.Compute.accounts, s.Compute.data = s.Runs, s.Accounts, s.Data
	s.Data.runs = s.Runs
	s.Images.data = s.Data
	s.WebServices.images, s.WebServices.compute, s.WebServices.accounts, s.WebServices.data = s.Images, s.Compute, s.Accounts, s.Data
	return s
}

// SetClock makes now the service's clock (the server's, shared with its store).
func (s *Service) SetClock(now atelier.Clock) { s.base.now, s.authz.now = now, now }

// Broker returns the event broker (for the server's shutdown and tests).
func (s *Service) Broker() *Broker { return s.events }

// Init prepares a fresh or upgraded server: the default workspace exists, and runs left active
// by a server that died are failed with a clear reason.
func (s *Service) Init(ctx context.Context) error {
	if _, err := s.store.FindWorkspace(ctx, atelier.DefaultWorkspace); atelier.ErrorCode(err) == atelier.ENOTFOUND {
		err := s.store.CreateWorkspace(ctx, &atelier.Workspace{Name: atelier.DefaultWorkspace, Description: "The default workspace", CreatedBy: "system"})
		if err != nil && atelier.ErrorCode(err) != atelier.ECONFLICT {
			return err
		}
	} else if err != nil {
		return err
	}
	// The tokens of runs that ended die here (those of runs cut short by a stop); those of
	// leased runs live on: their jobs may have outlived the server (see RunScheduler).
	tokens, err := s.store.ListTokens(ctx)
	if err != nil {
		return err
	}
	leased, err := s.leasedRuns(ctx)
	if err != nil {
		return err
	}
	for _, t := range tokens {
		if t.Kind == atelier.PrincipalRun && t.RevokedAt == nil && !leased[t.RunID] {
			s.revokeToken(ctx, t.ID)
		}
	}
	if err := s.endInterruptedComputeChecks(ctx); err != nil {
		return err
	}
	runs, err := s.store.ReconcileRuns(ctx, "the server stopped while the run was active (it was restarted or crashed); the run's process did not survive")
	for _, run := range runs {
		s.log.Warn("run failed on start: it was active when the server stopped", "workspace", run.Workspace, "run", run.ID)
		s.runChanged(ctx, run)
	}
	return err
}

// Accounts is the users, tokens, workspace members and audit log of a server.
type Accounts struct {
	*base
	store accountStore
	// logins throttles failed logins (see Login).
	logins *throttle
	// PasswordCost is bcrypt's cost for new password hashes.
	PasswordCost int
	// dummyHash is compared against for unknown users, so a login's timing does not tell.
	dummyHash []byte
	dummyOnce sync.Once
}

// Runs is the tracking domain: workspaces, experiments, runs, their metrics, files, logs and
// snapshots, activities and events.
type Runs struct {
	*base
	store   runStore
	data    *Data
	compute *Compute
	// Snapshot limits.
	SnapshotMaxBytes int64
	SnapshotMaxFiles int
}

// Models is the model registry and the logged models of runs.
type Models struct {
	*base
	store modelStore
}

// Data is the datastores (and their files), datasets and the secrets vault.
type Data struct {
	*base
	store dataStore
	runs  *Runs
	// datastores keeps datastores open briefly (see openDatastore).
	datastores openedDatastores
	// Datastores opens datastores; without it datastore files are unavailable.
	Datastores atelier.DatastoreOpener
	// ArtifactDir is the server's artifact folder when it is outside DataDir: no files
	// datastore may overlap it either. BuiltInLocation, when set, is the cloud bucket folder
	// holding the built-in datastores (one sub-folder per workspace), shown as theirs.
	ArtifactDir     string
	BuiltInLocation *atelier.Datastore
}

// Compute is the compute targets and the controller of the runs submitted to them.
type Compute struct {
	*base
	store    computeStore
	runs     *Runs
	accounts *Accounts
	data     *Data
	// UnreachableAfter is how long a compute target may fail to say how a run's job is
	// (the machine, the cluster or its API does not answer) before the run fails saying so
	// (DefaultUnreachableAfter when zero). Until then the server asks again every second.
	UnreachableAfter time.Duration
	// Drivers are the compute drivers of this server, by kind (local, ssh, ...): a compute
	// target of a kind without one cannot be created or attached.
	Drivers map[string]atelier.ComputeDriver
}

// Images is the images, their builds, base images and environments.
type Images struct {
	*base
	store imageStore
	data  *Data
	// Builder builds images into the workspace registry (nil: no images); at most
	// MaxConcurrentBuilds (DefaultMaxConcurrentBuilds when zero) at once on this server.
	Builder             atelier.ImageBuilder
	MaxConcurrentBuilds int
	builds              builds
}

// WebServices is the web services, their deployments on the targets and the gateway's side of
// scoring.
type WebServices struct {
	*base
	store    webServiceStore
	images   *Images
	compute  *Compute
	accounts *Accounts
	data     *Data
	// Bwrap is bubblewrap's path: the local deployment target runs each replica of a web
	// service in its image's unpacked filesystem with it ("" for no local target).
	Bwrap string
	// Podman is podman's path: the podman deployment target runs replicas as containers.
	Podman string
	// CPUShare, when set, counts the replicas the local and podman targets run on this
	// machine, and lowers the server's threads for them.
	CPUShare *serving.CPUShare
	deploys  deployments
}
