package service

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"sync"
	"time"

	"github.com/atelier-ml/atelier"
)

// leases is this server's identity on the leases of durable work (runs, image builds,
// deployments), shared by the controllers of every domain.
type leases struct {
	store atelier.LeaseStore
	// Owner names this server on the leases of the work it does (a random name when empty);
	// OwnerDead, when set, tells whether another owner is known to be dead (a server process
	// on this machine that is gone), so its work is taken over without waiting for its leases
	// to expire after LeaseTTL (DefaultLeaseTTL when zero).
	Owner     string
	OwnerDead func(owner string) bool
	LeaseTTL  time.Duration
	ownerOnce sync.Once
}

// content is the content-addressed object store, with the workspaces' holds on its objects.
type content struct {
	store   contentStore
	objects atelier.ObjectStore
}

// owner is this server's name on its leases.
func (s *leases) owner() string {
	s.ownerOnce.Do(func() {
		if s.Owner == "" {
			b := make([]byte, 8)
			rand.Read(b)
			s.Owner = "server-" + hex.EncodeToString(b)
		}
	})
	return s.Owner
}

func (s *leases) leaseTTL() time.Duration {
	if s.LeaseTTL > 0 {
		return s.LeaseTTL
	}
	return DefaultLeaseTTL
}

// takeable reports whether this server may take over a lease: its own (from before a restart),
// an expired one, or one whose owner is known to be dead.
func (s *leases) takeable(l *atelier.Lease, now time.Time) bool {
	return l.Owner == s.owner() || !l.Expires.After(now) || s.OwnerDead != nil && s.OwnerDead(l.Owner)
}

// takeLease takes over a takeable lease for this server; exactly one server succeeds.
func (s *leases) takeLease(ctx context.Context, l *atelier.Lease, now time.Time) (*atelier.Lease, error) {
	from := ""
	if l.Owner != s.owner() && s.OwnerDead != nil && s.OwnerDead(l.Owner) {
		from = l.Owner
	}
	return s.store.AcquireLease(ctx, &atelier.Lease{Kind: l.Kind, ID: l.ID, Workspace: l.Workspace,
		Owner: s.owner(), Expires: now.Add(s.leaseTTL())}, now, from)
}

// putObject stores content for a workspace. With a digest the workspace already holds, nothing
// is read; with one it does not hold, the content is checked against it even when the server
// has it from another workspace, since proving the content is what grants access to it.
func (s *content) putObject(ctx context.Context, workspace string, r io.Reader, digest string) (atelier.Object, error) {
	if digest != "" {
		missing, err := s.store.MissingObjects(ctx, workspace, []string{digest})
		if err != nil {
			return atelier.Object{}, err
		}
		if len(missing) == 0 {
			if obj, err := s.objects.StatObject(ctx, digest); err == nil {
				return obj, nil
			}
		}
		if obj, err := s.objects.StatObject(ctx, digest); err == nil {
			h := sha256.New()
			n, err := io.Copy(h, r)
			if err != nil {
				return atelier.Object{}, err
			}
			if hex.EncodeToString(h.Sum(nil)) != digest || n != obj.Size {
				return atelier.Object{}, atelier.Errorf(atelier.EINVALID, "content does not match digest %s", digest)
			}
			return obj, s.store.HoldObjects(ctx, workspace, []atelier.Object{obj})
		}
	} else if _, err := s.store.FindWorkspace(ctx, workspace); err != nil {
		return atelier.Object{}, err
	}
	obj, err := s.objects.PutObject(ctx, r, digest)
	if err != nil {
		return atelier.Object{}, err
	}
	return obj, s.store.HoldObjects(ctx, workspace, []atelier.Object{obj})
}

// publish sends an event if anyone watches the workspace; data is encoded only then.
func (s *base) publish(workspace, typ, runID string, data any) {
	if !s.events.Watched(workspace) {
		return
	}
	b, err := json.Marshal(data)
	if err != nil {
		s.log.Error("encoding an event", "type", typ, "err", err)
		return
	}
	s.events.Publish(&atelier.Event{Type: typ, Workspace: workspace, RunID: runID, Time: s.now().UTC(), Data: b})
}
