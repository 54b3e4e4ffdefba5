package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"time"

	"github.com/atelier-ml/atelier"
)

// LeaseKindRegistryGC is the kind of the lease the server collecting the image registry's
// garbage holds (one lease, id "registry"): of several servers sharing the stores, one collects.
const LeaseKindRegistryGC = "registry-gc"

// DefaultRegistryGCInterval is how often the registry's garbage is collected by default.
const DefaultRegistryGCInterval = time.Hour

// registryGC collects the registry's garbage every interval until ctx ends. Each round first
// takes (or extends) the lease, for two intervals: the server holding it collects at every round,
// and another takes over two intervals after it stopped.
func (w *workspaceImages) registryGC(ctx context.Context, interval time.Duration) {
	t := time.NewTimer(interval)
	defer t.Stop()
	// Another server takes over at once when this one stops.
	defer w.db.ReleaseLease(context.WithoutCancel(ctx), LeaseKindRegistryGC, "registry", w.owner)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		w.registryGCRound(ctx, interval)
		t.Reset(interval)
	}
}

// registryGCRound collects once if this server holds the lease, logging what was removed. It
// reports whether it collected.
func (w *workspaceImages) registryGCRound(ctx context.Context, interval time.Duration) bool {
	now := w.now()
	_, err := w.db.AcquireLease(ctx, &atelier.Lease{Kind: LeaseKindRegistryGC, ID: "registry", Owner: w.owner, Expires: now.Add(2 * interval)}, now, "")
	if atelier.ErrorCode(err) == atelier.ECONFLICT {
		w.log.Debug("the image registry's garbage is collected by another server")
		return false
	} else if err != nil {
		if ctx.Err() == nil {
			w.log.Error("taking the lease of the image registry's garbage collection", "err", err)
		}
		return false
	}
	t0 := time.Now()
	rep, err := w.reg.CollectGarbage(ctx)
	if err != nil {
		if ctx.Err() == nil && atelier.ErrorCode(err) != atelier.ECONFLICT {
			w.log.Error("collecting the image registry's garbage", "err", err)
		}
		return false
	}
	level := slog.LevelDebug
	if rep.BlobsDeleted > 0 || rep.UploadsExpired > 0 {
		level = slog.LevelInfo
	}
	w.log.Log(ctx, level, "scheduled image registry garbage collection", "blobs_deleted", rep.BlobsDeleted, "bytes_deleted", rep.BytesDeleted,
		"uploads_expired", rep.UploadsExpired, "took", time.Since(t0).Round(time.Millisecond))
	return true
}

// registryGCOwner names this server on the lease: Config.Owner, else a random name.
func registryGCOwner(owner string) string {
	if owner != "" {
		return owner
	}
	b := make([]byte, 8)
	rand.Read(b)
	return "server-" + hex.EncodeToString(b)
}
