package sqlite_test

import (
	"path/filepath"
	"testing"

	"github.com/atelier-ml/atelier/oci/registry"
	"github.com/atelier-ml/atelier/oci/registry/registrytest"
)

// The image registry's metadata in the database passes the registry's store suite.
func TestRegistryMetadata(t *testing.T) {
	registrytest.TestMetadata(t, func(t *testing.T) registry.Metadata {
		return MustOpen(t, filepath.Join(t.TempDir(), "atelier.db")).Registry()
	})
}
