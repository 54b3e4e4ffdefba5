package service

import (
	"context"

	"github.com/atelier-ml/atelier"
)

// The store's role interfaces each part of the service uses: a domain service depends only on
// these, and atelier.Store (which every metadata store implements) is only their composition.
// Single methods are named where a domain reads one thing of another's.
type (
	// authzStore is what authorization reads: callers, memberships, and run trees.
	authzStore interface {
		FindTokenByHash(ctx context.Context, hash string) (*atelier.Token, error)
		FindUser(ctx context.Context, name string) (*atelier.User, error)
		FindMember(ctx context.Context, workspace, user string) (*atelier.Member, error)
		FindRun(ctx context.Context, workspace, id string) (*atelier.Run, error)
		ListRuns(ctx context.Context, workspace string, q atelier.RunQuery) (*atelier.RunPage, error)
	}

	// contentStore is the workspaces' holds on the shared objects.
	contentStore interface {
		workspaceFinder
		MissingObjects(ctx context.Context, workspace string, digests []string) ([]string, error)
		HoldObjects(ctx context.Context, workspace string, objs []atelier.Object) error
	}

	accountStore interface {
		atelier.UserStore
		tokenStore
	}

	runStore interface {
		atelier.WorkspaceService
		atelier.ExperimentService
		atelier.ExperimentCreator
		atelier.ExperimentSearcher
		atelier.RunService
		atelier.RunDeleter
		atelier.MetricService
		atelier.ActivityService
		fileStore
		LogBatch(ctx context.Context, workspace, runID string, b *atelier.RunBatch) error
		MissingObjects(ctx context.Context, workspace string, digests []string) ([]string, error)
		PutSnapshot(ctx context.Context, s *atelier.Snapshot) error
		snapshotFinder
		// A workspace's creator becomes its owner; deleting a workspace drops memberships.
		PutMember(ctx context.Context, m *atelier.Member) error
		ListMemberships(ctx context.Context, user string) ([]*atelier.Member, error)
	}

	modelStore interface {
		atelier.ModelStore
		atelier.LoggedModelStore
		contentStore
		ListFiles(ctx context.Context, workspace, runID, prefix string) ([]*atelier.File, error)
	}

	dataStore interface {
		atelier.DatastoreStore
		atelier.DatasetStore
		atelier.SecretStore
		workspaceFinder
		FindRun(ctx context.Context, workspace, id string) (*atelier.Run, error)
	}

	computeStore interface {
		atelier.ComputeTargetStore
		atelier.LeaseStore
		activityPutter
		workspaceFinder
		snapshotFinder
		tokenStore
		CreateRun(ctx context.Context, workspace string, create atelier.RunCreate) (*atelier.Run, error)
		FindRun(ctx context.Context, workspace, id string) (*atelier.Run, error)
		RunStatuses(ctx context.Context, ids []string) (map[string]atelier.RunStatus, error)
		ListActivities(ctx context.Context, workspace string, f atelier.ActivityFilter) ([]*atelier.Activity, error)
		ListWorkspaces(ctx context.Context) ([]*atelier.Workspace, error)
		FindDatastore(ctx context.Context, workspace, name string) (*atelier.Datastore, error)
		SealedSecret(ctx context.Context, workspace, name string) ([]byte, error)
	}

	imageStore interface {
		atelier.ImageStore
		atelier.EnvironmentStore
		leaseKeeper
		activityPutter
		snapshotFinder
		FindModelVersion(ctx context.Context, workspace string, ref atelier.ModelRef) (*atelier.ModelVersion, error)
		SealedSecret(ctx context.Context, workspace, name string) ([]byte, error)
	}

	webServiceStore interface {
		atelier.WebServiceStore
		leaseKeeper
		activityPutter
		FindImage(ctx context.Context, workspace string, ref atelier.ImageRef) (*atelier.Image, error)
		FindTokenByHash(ctx context.Context, hash string) (*atelier.Token, error)
		ListDatastores(ctx context.Context, workspace string) ([]*atelier.Datastore, error)
	}
)

// Pieces several of the role interfaces above share.
type (
	workspaceFinder interface {
		FindWorkspace(ctx context.Context, name string) (*atelier.Workspace, error)
	}
	snapshotFinder interface {
		FindSnapshot(ctx context.Context, workspace, id string) (*atelier.Snapshot, error)
	}
	activityPutter interface {
		PutActivity(ctx context.Context, a *atelier.Activity) error
	}
	tokenStore interface {
		CreateToken(ctx context.Context, t *atelier.Token) error
		ListTokens(ctx context.Context) ([]*atelier.Token, error)
		RevokeToken(ctx context.Context, id string) error
	}
	fileStore interface {
		PutFile(ctx context.Context, workspace, runID string, f *atelier.File) error
		FindFile(ctx context.Context, workspace, runID, path string) (*atelier.File, error)
		ListFiles(ctx context.Context, workspace, runID, prefix string) ([]*atelier.File, error)
		AppendLog(ctx context.Context, workspace, runID, path string, data []byte) (int64, error)
		ReadLog(ctx context.Context, workspace, runID, path string, offset, limit int64) (*atelier.LogChunk, error)
	}
	// leaseKeeper is what a controller other than the runs' uses of leases (it takes them
	// through leases).
	leaseKeeper interface {
		ListLeases(ctx context.Context, kind string) ([]*atelier.Lease, error)
		ReleaseLease(ctx context.Context, kind, id, owner string) error
	}
)
