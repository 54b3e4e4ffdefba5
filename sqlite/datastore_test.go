package sqlite_test

import (
	"path/filepath"
	"testing"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/storetest"
)

func TestDatastores(t *testing.T) {
	storetest.TestDatastores(t, func(t *testing.T) atelier.Store {
		return MustOpen(t, filepath.Join(t.TempDir(), "atelier.db"))
	})
}

func TestDatastoreLineage(t *testing.T) {
	storetest.TestDatastoreLineage(t, func(t *testing.T) atelier.Store {
		return MustOpen(t, filepath.Join(t.TempDir(), "atelier.db"))
	})
}
