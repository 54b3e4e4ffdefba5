// Package service implements the domain services on the store, the object store and the event
// broker: it authorizes each call, keeps activities in step with runs and publishes events.
package service

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/atelier-ml/atelier"
	"golang.org/x/crypto/bcrypt"
)

// Service is the workspace server's use cases. The REST API, the CLI's client and (later) the
// MLflow API all go through it, so they obey the same rules.
type Service struct {
	store   atelier.Store
	objects atelier.ObjectStore
	events  *Broker
	log     *slog.Logger
	now     func() time.Time
	// tokens caches token lookups by hash (see findToken); users and roles cache the users
	// and workspace roles authorization reads on every call (see memberRole).
	tokens sync.Map
	users  sync.Map
	roles  sync.Map
	// datastores keeps datastores open briefly (see openDatastore).
	datastores openedDatastores
	// logins throttles failed logins (see Login).
	logins *throttle
	// PasswordCost is bcrypt's cost for new password hashes.
	PasswordCost int
	// dummyHash is compared against for unknown users, so a login's timing does not tell.
	dummyHash []byte
	dummyOnce sync.Once

	// TempDir holds spooled uploads (snapshot zips) while they are checked.
	TempDir string
	// ServerURL is the address scripts use to reach the server.
	ServerURL string
	sched     *scheduler
	// Owner names this server on the leases of the runs it executes (a random name when
	// empty); OwnerDead, when set, tells whether another owner is known to be dead (a server
	// process on this machine that is gone), so its runs are taken over without waiting for
	// their leases to expire after LeaseTTL (DefaultLeaseTTL when zero).
	Owner     string
	OwnerDead func(owner string) bool
	LeaseTTL  time.Duration
	ownerOnce sync.Once
	// UnreachableAfter is how long a compute target may fail to say how a run's job is
	// (the machine, the cluster or its API does not answer) before the run fails saying so
	// (DefaultUnreachableAfter when zero). Until then the server asks again every second.
	UnreachableAfter time.Duration
	// Builder builds images into the workspace registry (nil: no images); at most
	// MaxConcurrentBuilds (DefaultMaxConcurrentBuilds when zero) at once on this server.
	Builder             atelier.ImageBuilder
	MaxConcurrentBuilds int
	builds              builds

	// Snapshot limits.
	SnapshotMaxBytes int64
	SnapshotMaxFiles int

	// Datastores opens datastores and Secrets seals their credentials; without them datastore
	// files and credentials are unavailable. DataDir is the server's data directory, which no
	// files datastore may overlap.
	Datastores atelier.DatastoreOpener
	Secrets    atelier.SecretBox
	DataDir    string
	// ArtifactDir is the server's artifact folder when it is outside DataDir: no files
	// datastore may overlap it either. BuiltInLocation, when set, is the cloud bucket folder
	// holding the built-in datastores (one sub-folder per workspace), shown as theirs.
	ArtifactDir     string
	BuiltInLocation *atelier.Datastore

	// Drivers are the compute drivers of this server, by kind (local, ssh, ...): a compute
	// target of a kind without one cannot be created or attached.
	Drivers map[string]atelier.ComputeDriver

	// Bwrap is bubblewrap's path: the local deployment target runs each replica of a web
	// service in its image's unpacked filesystem with it ("" for no local target).
	Bwrap string
	// Podman is podman's path: the podman deployment target runs replicas as containers.
	Podman  string
	deploys deployments
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
	return &Service{store: store, objects: objects, events: NewBroker(), log: log, now: time.Now,
		sched:  newScheduler(),
		logins: newThrottle(), PasswordCost: bcrypt.DefaultCost,
		SnapshotMaxBytes: atelier.DefaultSnapshotMaxBytes, SnapshotMaxFiles: atelier.DefaultSnapshotMaxFiles}
}

// SetClock makes now the service's clock (the server's, shared with its store).
func (s *Service) SetClock(now atelier.Clock) { s.now = now }

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

// authorize checks that the caller may read everything in the workspace: an administrator or
// a member (any role). A run's token of the workspace is refused: it reads only what
// authorizeWorkspace, authorizeExperiment, authorizeRunRead and authorizeSnapshot allow (see
// runscope.go). To anyone else the workspace does not exist (404, not 403), so its name is not
// disclosed.
func (s *Service) authorize(ctx context.Context, workspace string) error {
	if _, err := s.role(ctx, workspace); err != nil {
		return err
	}
	if runPrincipal(ctx) != nil {
		return refuseRun("a run's token may not read this")
	}
	return nil
}

// role returns the caller's role in the workspace: Owner for an administrator, the member's
// role for a user, Reader for a run token of the workspace (the authorize functions narrow
// what a run's token reads; authorizeWrite adds what it may change).
func (s *Service) role(ctx context.Context, workspace string) (atelier.Role, error) {
	p := atelier.PrincipalFromContext(ctx)
	if p == nil {
		return "", atelier.Errorf(atelier.EUNAUTHORIZED, "authentication required")
	}
	notFound := atelier.Errorf(atelier.ENOTFOUND, "workspace %q not found", workspace)
	switch p.Kind {
	case atelier.PrincipalAdmin:
		return atelier.RoleOwner, nil
	case atelier.PrincipalRun:
		if workspace != p.Workspace {
			return "", notFound
		}
		return atelier.RoleReader, nil
	case atelier.PrincipalUser:
		role, err := s.memberRole(ctx, workspace, p.Name)
		if err != nil {
			return "", err
		}
		if role == "" {
			return "", notFound
		}
		return role, nil
	}
	return "", atelier.Errorf(atelier.EFORBIDDEN, "unknown kind of caller %q", p.Kind)
}

// authorizeOwner checks that the caller may manage the workspace itself: its members, its
// audit log, its deletion.
func (s *Service) authorizeOwner(ctx context.Context, workspace string) error {
	role, err := s.role(ctx, workspace)
	if err != nil {
		return err
	}
	if runPrincipal(ctx) != nil {
		return refuseRun("only an Owner of workspace %q may do this", workspace)
	}
	if !role.AtLeast(atelier.RoleOwner) {
		return atelier.Errorf(atelier.EFORBIDDEN, "only an Owner of workspace %q may do this (your role: %s)", workspace, role)
	}
	return nil
}

// authorizeAdmin checks that the caller administers the server.
func (s *Service) authorizeAdmin(ctx context.Context) error {
	p := atelier.PrincipalFromContext(ctx)
	if p == nil {
		return atelier.Errorf(atelier.EUNAUTHORIZED, "authentication required")
	}
	if p.Kind == atelier.PrincipalRun {
		return refuseRun("only a server administrator may do this")
	}
	if p.Kind != atelier.PrincipalAdmin {
		return atelier.Errorf(atelier.EFORBIDDEN, "only a server administrator may do this")
	}
	return nil
}
