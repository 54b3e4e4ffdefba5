package atelier

import "context"

// Store is the metadata store port: sqlite/ and postgres/ implement it and storetest/ holds the
// conformance suite both must pass. It does the transactional work (a status transition is
// checked and applied atomically, a metric batch is stored whole or not at all); service/ adds
// objects, events and authorization on top.
type Store interface {
	WorkspaceService
	ExperimentService
	ExperimentCreator
	ExperimentSearcher
	RunService
	RunDeleter
	MetricService
	ActivityService
	ModelStore
	UserStore
	DatastoreStore
	SecretStore
	ComputeTargetStore
	LeaseStore
	ImageStore
	WebServiceStore
	LoggedModelStore
	DatasetStore
	EnvironmentStore

	// Files: the store keeps the metadata; the content lives in the ObjectStore.
	PutFile(ctx context.Context, workspace, runID string, f *File) error
	FindFile(ctx context.Context, workspace, runID, path string) (*File, error)
	ListFiles(ctx context.Context, workspace, runID, prefix string) ([]*File, error)
	// AppendLog appends data to a log file and returns its new size.
	AppendLog(ctx context.Context, workspace, runID, path string, data []byte) (int64, error)
	ReadLog(ctx context.Context, workspace, runID, path string, offset, limit int64) (*LogChunk, error)

	// Objects are stored once for the whole server, but a workspace may use only those it
	// holds: content it uploaded itself (or that arrived through its runs). Knowing a digest
	// is not enough to read another workspace's content.
	MissingObjects(ctx context.Context, workspace string, digests []string) ([]string, error)
	HoldObjects(ctx context.Context, workspace string, objs []Object) error

	PutSnapshot(ctx context.Context, s *Snapshot) error
	FindSnapshot(ctx context.Context, workspace, id string) (*Snapshot, error)

	PutActivity(ctx context.Context, a *Activity) error

	CreateToken(ctx context.Context, t *Token) error
	FindTokenByHash(ctx context.Context, hash string) (*Token, error)
	ListTokens(ctx context.Context) ([]*Token, error)
	RevokeToken(ctx context.Context, id string) error

	// LogBatch stores a run's params, tags and metric points in one transaction: a param
	// that would change (ECONFLICT) or anything invalid stores none of it.
	LogBatch(ctx context.Context, workspace, runID string, b *RunBatch) error

	// QueuedRuns returns the runs queued on a compute target, across workspaces, oldest first.
	QueuedRuns(ctx context.Context, compute string, limit int) ([]*Run, error)

	// RunStatuses returns the status of each run of ids (of any workspace) that exists; a run
	// that does not (deleted with its workspace) is absent. One read whatever the number of
	// ids: the controller's watch of every run it executes.
	RunStatuses(ctx context.Context, ids []string) (map[string]RunStatus, error)

	// ReconcileRuns fails, with the given reason, the runs with a compute target left active
	// (Preparing, Running, Finalizing, CancelRequested) by a server that died, and the active
	// descendants of such runs (child runs their scripts made); interactive runs stay as they
	// are, and so do runs with a lease (LeaseStore), which their controller recovers by asking
	// their drivers. It returns the runs it failed.
	ReconcileRuns(ctx context.Context, reason string) ([]*Run, error)

	Close() error
}

// UserStore keeps users, workspace memberships and the audit log.
type UserStore interface {
	CreateUser(ctx context.Context, u *User) error
	FindUser(ctx context.Context, name string) (*User, error)
	ListUsers(ctx context.Context) ([]*User, error)
	DisableUser(ctx context.Context, name string) error

	// PutMember adds a member or changes its role.
	PutMember(ctx context.Context, m *Member) error
	FindMember(ctx context.Context, workspace, user string) (*Member, error)
	ListMembers(ctx context.Context, workspace string) ([]*Member, error)
	// ListMemberships lists a user's memberships across workspaces.
	ListMemberships(ctx context.Context, user string) ([]*Member, error)
	DeleteMember(ctx context.Context, workspace, user string) error

	// AppendAudit records a write; an entry already stored (ID set: a store may write a
	// request's PendingAudit with its first write) gets e's status instead.
	AppendAudit(ctx context.Context, e *AuditEntry) error
	// AppendAudits records new writes (no ID set) in one transaction: the files of a batch.
	AppendAudits(ctx context.Context, entries []*AuditEntry) error
	ListAudit(ctx context.Context, workspace string, f AuditFilter) ([]*AuditEntry, error)
}
