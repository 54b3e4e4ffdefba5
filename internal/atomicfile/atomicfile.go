// Package atomicfile writes files whole or not at all.
package atomicfile

import (
	"os"
	"path/filepath"
)

// WriteFile replaces name with data (mode perm), through a temporary file of the same
// directory synced and renamed into place: readers, and a crash at any moment, see the old file
// or the new one, never a part of it.
func WriteFile(name string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(name), ".tmp-*")
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(perm)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), name)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}
