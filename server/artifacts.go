package server

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/blob"
	"github.com/atelier-ml/atelier/datastore"
)

// The artifact store is the server's, not a workspace's: one content-addressed store shared by
// every workspace, so each content is stored once on the whole server, and the database records
// which workspace may read which object. Its location and credentials are the operator's
// (flags and environment), never a user's datastore: a user who could repoint it would see or
// lose everyone's artifacts. Inside it:
//
//	objects/sha256/<2 hex>/<64 hex>    snapshots, run outputs, model files
//	datastores/<workspace>/...         each workspace's built-in "default" datastore
//
// so that with a cloud location the server keeps only its database (and the caches of its
// compute target) on its own disk.

// artifactStore is the opened artifact store.
type artifactStore struct {
	objects *blob.Store
	// loc is where it is; dir is its folder when it is one.
	loc *datastore.Location
	dir string
}

// openArtifacts opens the artifact store at rawURL (the data directory when empty) and points
// the opener's built-in datastores into it.
func openArtifacts(ctx context.Context, rawURL, dataDir string, opener *datastore.Opener) (*artifactStore, error) {
	loc := &datastore.Location{Datastore: &atelier.Datastore{Name: "artifacts", Kind: atelier.DatastoreFiles, Path: dataDir}}
	if rawURL != "" {
		var err error
		if loc, err = datastore.ParseLocation("the artifact store", rawURL, os.Getenv); err != nil {
			return nil, atelier.Errorf(atelier.EINVALID, "%s", atelier.ErrorMessage(err))
		}
		// Read once; the runs' scripts, which inherit the server's environment, must not get
		// the keys to every workspace's artifacts.
		for _, v := range datastore.CredentialVariables {
			os.Unsetenv(v)
		}
	}
	var err error
	a := &artifactStore{loc: loc}
	if loc.Datastore.Kind == atelier.DatastoreFiles {
		// A folder: opened by blob itself, which renames staged objects and serves them as
		// plain files (sendfile, copy_file_range) instead of streaming them.
		a.dir = loc.Datastore.Path
		opener.Root = filepath.Join(a.dir, "datastores")
		objects := url.URL{Scheme: "file", Path: filepath.ToSlash(filepath.Join(a.dir, "objects"))}
		if a.objects, err = blob.Open(ctx, objects.String()); err != nil {
			return nil, err
		}
	} else if err := a.openBucket(ctx, opener); err != nil {
		return nil, err
	}
	return a, nil
}

// cleanStaging deletes the staged objects of puts a crash cut short; a day old, so as to spare
// the puts in progress of other servers sharing the bucket.
func (a *artifactStore) cleanStaging(ctx context.Context, log *slog.Logger) {
	n, err := a.objects.CleanStaging(ctx, time.Now().Add(-24*time.Hour))
	if err != nil && ctx.Err() == nil {
		log.Warn("cleaning the artifact store's staging objects", "err", err)
	} else if n > 0 {
		log.Info("deleted staging objects left by interrupted uploads", "count", n)
	}
}

// openBucket opens a cloud artifact store and checks that it answers.
func (a *artifactStore) openBucket(ctx context.Context, opener *datastore.Opener) error {
	loc := a.loc
	opener.Root, opener.BuiltIn = "", loc.Sub("datastores")
	b, err := opener.OpenBucket(ctx, loc.Sub("objects").Datastore, loc.Credentials)
	if err != nil {
		return fmt.Errorf("the artifact store %s: %s", loc, atelier.ErrorMessage(err))
	}
	if err := datastore.Probe(ctx, "artifacts", b); err != nil {
		b.Close()
		return fmt.Errorf("the artifact store %s: %s", loc, atelier.ErrorMessage(err))
	}
	a.objects = blob.New(b)
	return nil
}

// builtIn is where the built-in datastores are, as the service shows them: nil for a folder,
// which they show as the server's own.
func (a *artifactStore) builtIn() *atelier.Datastore {
	if a.dir != "" {
		return nil
	}
	return a.loc.Sub("datastores").Datastore
}
