package sqlite_test

import (
	"path/filepath"
	"testing"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/storetest"
)

func TestSecrets(t *testing.T) {
	storetest.TestSecrets(t, func(t *testing.T) atelier.Store {
		return MustOpen(t, filepath.Join(t.TempDir(), "atelier.db"))
	})
}
