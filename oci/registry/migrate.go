package registry

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/atelier-ml/atelier"
)

// MigrationReport tells what MigrateDisk copied.
type MigrationReport struct {
	Repositories, Manifests, Tags, Links, Blobs int
	Bytes                                       int64
}

// migratedFile marks a disk registry whose content was copied (its blobs and index are then
// removed).
const migratedFile = "MIGRATED"

// MigrateDisk copies a registry kept by DiskBlobs and DiskMetadata (dir/blobs and dir/meta, the
// layout of servers before the registry moved into the artifact store and the database) into
// blobs and meta: the content every repository links, the links, the manifests and their tags.
// Upload sessions in progress are not copied (their clients start again). It is idempotent:
// copying again changes nothing, so an interrupted migration is done again at the next start.
// Once everything is copied it removes dir/blobs and dir/meta and leaves dir/MIGRATED; with no
// disk registry in dir it does nothing and reports false.
func MigrateDisk(ctx context.Context, dir string, blobs BlobStore, meta Metadata, now time.Time) (MigrationReport, bool, error) {
	var rep MigrationReport
	if _, err := os.Stat(filepath.Join(dir, "meta", "index.json")); errors.Is(err, fs.ErrNotExist) {
		return rep, false, nil
	} else if err != nil {
		return rep, false, err
	}
	if _, err := os.Stat(filepath.Join(dir, migratedFile)); err == nil {
		return rep, false, nil
	}
	oldBlobs, err := OpenDiskBlobs(filepath.Join(dir, "blobs"), nil)
	if err != nil {
		return rep, false, err
	}
	old, err := OpenDiskMetadata(filepath.Join(dir, "meta"))
	if err != nil {
		return rep, false, err
	}
	st := old.st // nobody else has it open
	copied := map[Digest]bool{}
	for _, name := range slices.Sorted(maps.Keys(st.Repos)) {
		r := st.Repos[name]
		rep.Repositories++
		for _, d := range slices.Sorted(maps.Keys(r.Links)) {
			if !copied[d] {
				n, err := copyBlob(ctx, oldBlobs, blobs, d)
				if atelier.ErrorCode(err) == atelier.ENOTFOUND {
					continue // a link to content that is gone: no manifest can use it
				} else if err != nil {
					return rep, false, fmt.Errorf("copying blob %s of %s: %w", d, name, err)
				}
				copied[d] = true
				rep.Blobs++
				rep.Bytes += n
			}
			if err := meta.LinkBlob(ctx, name, d, r.Links[d].Size, now); err != nil {
				return rep, false, err
			}
			rep.Links++
		}
		tagsOf := map[Digest][]string{}
		for _, t := range slices.Sorted(maps.Keys(r.Tags)) {
			tagsOf[r.Tags[t]] = append(tagsOf[r.Tags[t]], t)
			rep.Tags++
		}
		// An index needs its manifests first: put those whose manifests are all there, again
		// and again.
		done := map[Digest]bool{}
		for len(done) < len(r.Manifests) {
			progress := false
			for _, d := range slices.Sorted(maps.Keys(r.Manifests)) {
				rec := r.Manifests[d]
				if done[d] || slices.ContainsFunc(rec.Manifests, func(c Ref) bool { return !done[c.Digest] && r.Manifests[c.Digest] != nil }) {
					continue
				}
				body, err := os.ReadFile(old.bodyPath(d))
				if err != nil {
					return rep, false, fmt.Errorf("reading manifest %s of %s: %w", d, name, err)
				}
				m := &Manifest{Digest: d, MediaType: rec.MediaType, Body: body, Blobs: rec.Blobs, Manifests: rec.Manifests,
					Subject: rec.Subject, ArtifactType: rec.ArtifactType, Annotations: rec.Annotations}
				if err := meta.PutManifest(ctx, name, m, tagsOf[d]); err != nil {
					return rep, false, fmt.Errorf("copying manifest %s of %s: %s", d, name, atelier.ErrorMessage(err))
				}
				done[d], progress = true, true
				rep.Manifests++
			}
			if !progress {
				return rep, false, fmt.Errorf("repository %s: indexes list manifests it does not hold", name)
			}
		}
	}
	if err := os.WriteFile(filepath.Join(dir, migratedFile), []byte(fmt.Sprintf(
		"This registry was copied into the artifact store (its blobs) and the database (its manifests, tags and links) on %s.\n",
		now.UTC().Format(time.RFC3339))), 0o600); err != nil {
		return rep, false, err
	}
	for _, sub := range []string{"blobs", "meta"} {
		if err := os.RemoveAll(filepath.Join(dir, sub)); err != nil {
			return rep, true, err
		}
	}
	return rep, true, nil
}

// copyBlob copies d from one store to another unless it is there with its size.
func copyBlob(ctx context.Context, from, to BlobStore, d Digest) (int64, error) {
	src, err := from.Stat(ctx, d)
	if err != nil {
		return 0, err
	}
	if info, err := to.Stat(ctx, d); err == nil && info.Size == src.Size {
		return 0, nil
	}
	rc, err := from.Open(ctx, d, 0, -1)
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	info, err := to.Put(ctx, rc, d)
	return info.Size, err
}
