package registry

import (
	"context"
	"time"

	"github.com/atelier-ml/atelier"
)

// GCReport tells what a garbage collection removed.
type GCReport struct {
	UploadsExpired int
	BlobsDeleted   int
	BytesDeleted   int64
}

// CollectGarbage deletes the content no manifest of any repository references and no upload
// session holds, sparing what was put or linked within the grace period, and ends upload
// sessions idle for longer than the upload TTL.
//
// It is safe against concurrent pushes: each blob is released in the metadata store in one
// atomic step (which a manifest push referencing it either precedes, keeping the blob, or
// follows, failing with MANIFEST_BLOB_UNKNOWN), and its content is deleted under the write side
// of gcMu, while a push links content only after checking, under the read side, that it is
// still there. Across processes sharing the stores the grace period covers the gap between a
// push storing content and linking it.
func (reg *Registry) CollectGarbage(ctx context.Context) (GCReport, error) {
	var rep GCReport
	if !reg.gcRun.TryLock() {
		return rep, atelier.Errorf(atelier.ECONFLICT, "a garbage collection is already running")
	}
	defer reg.gcRun.Unlock()
	now := reg.now()
	n, err := reg.meta.ExpireUploads(ctx, now.Add(-reg.uploadTTL))
	if err != nil {
		return rep, err
	}
	rep.UploadsExpired = n
	cutoff := now.Add(-reg.gcGrace)
	var old []BlobInfo
	err = reg.blobs.Walk(ctx, func(b BlobInfo) error {
		if b.ModTime.Before(cutoff) {
			old = append(old, b)
		}
		return nil
	})
	if err != nil {
		return rep, err
	}
	for _, b := range old {
		deleted, err := reg.collect(ctx, b.Digest, cutoff)
		if err != nil {
			return rep, err
		}
		if deleted {
			rep.BlobsDeleted++
			rep.BytesDeleted += b.Size
		}
	}
	if rep.BlobsDeleted > 0 || rep.UploadsExpired > 0 {
		reg.log.Info("registry garbage collected", "blobs", rep.BlobsDeleted, "bytes", rep.BytesDeleted, "uploads", rep.UploadsExpired)
	}
	return rep, nil
}

// collect deletes d's content if the metadata releases it and it was not put again since cutoff.
func (reg *Registry) collect(ctx context.Context, d Digest, cutoff time.Time) (bool, error) {
	reg.gcMu.Lock()
	defer reg.gcMu.Unlock()
	released, err := reg.meta.ReleaseBlob(ctx, d, cutoff)
	if err != nil || !released {
		return false, err
	}
	info, err := reg.blobs.Stat(ctx, d)
	if atelier.ErrorCode(err) == atelier.ENOTFOUND {
		return false, nil
	} else if err != nil {
		return false, err
	}
	if !info.ModTime.Before(cutoff) {
		return false, nil // put again meanwhile: its pusher links it
	}
	return true, reg.blobs.Delete(ctx, d)
}
