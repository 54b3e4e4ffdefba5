package sqlite_test

import (
	"path/filepath"
	"testing"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/storetest"
)

func TestModels(t *testing.T) {
	storetest.TestModels(t, func(t *testing.T) atelier.Store {
		return MustOpen(t, filepath.Join(t.TempDir(), "atelier.db"))
	})
}
