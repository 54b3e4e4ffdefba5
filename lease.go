package atelier

import (
	"context"
	"time"
)

// Lease says which server acts on a piece of durable work until when: a run executing on a
// compute target (kind "run"), later an image build or a deployment. The owner renews it while
// it watches the work; when the owner dies, the lease expires and another server (or the owner,
// restarted) takes the work over by asking the work's driver what became of its Handle.
type Lease struct {
	Kind string `json:"kind"`
	ID   string `json:"id"`
	// Workspace is the work's workspace.
	Workspace string    `json:"workspace,omitempty"`
	Owner     string    `json:"owner"`
	Expires   time.Time `json:"expires"`
	// Handle is the driver's name for the work ("" until it was started).
	Handle string `json:"handle,omitempty"`
}

// LeaseKindRun is the kind of the leases of runs executing on compute targets.
const LeaseKindRun = "run"

// LeaseStore keeps leases. Every change is conditional on who holds the lease, so exactly one
// owner acts on a piece of work at a time.
type LeaseStore interface {
	// ClaimRuns moves up to limit runs queued on a compute target (of a workspace, or of
	// every workspace when workspace is "": a server's built-in target; oldest first) to
	// Preparing and gives owner their leases until expires, in one transaction: a run is
	// claimed by exactly one caller.
	ClaimRuns(ctx context.Context, workspace, compute, owner string, limit int, expires time.Time) ([]*Run, error)
	// AcquireLease gives l.Owner the lease of (l.Kind, l.ID) until l.Expires when nobody holds
	// it, when l.Owner holds it, when it expired before now, or when it is held by from (an
	// owner known to be dead; "" for none). It returns the lease as stored, with the handle
	// it had; ECONFLICT when another owner holds it.
	AcquireLease(ctx context.Context, l *Lease, now time.Time, from string) (*Lease, error)
	// RenewLeases extends every lease of kind owner holds to expires; it returns how many.
	RenewLeases(ctx context.Context, kind, owner string, expires time.Time) (int, error)
	// SetLeaseHandle records the driver's handle of work owner holds (ECONFLICT otherwise).
	SetLeaseHandle(ctx context.Context, kind, id, owner, handle string) error
	// ListLeases lists the leases of a kind.
	ListLeases(ctx context.Context, kind string) ([]*Lease, error)
	// ReleaseLease deletes a lease owner holds (no error when there is none).
	ReleaseLease(ctx context.Context, kind, id, owner string) error
}
