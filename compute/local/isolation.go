package local

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/atelier-ml/atelier/sandbox"
)

// Isolation confines the processes this target starts for users (scripts, and the installers
// that build their environments) to what is theirs: see package sandbox for the layers. A nil
// *Isolation confines nothing.
type Isolation struct {
	Launcher *sandbox.Launcher
	// Hide lists what no run may see: the server's data directory, its artifact store, its
	// socket, its user's home directory.
	Hide []string
	// ReadOnly lists what every run may read even inside Hide: the SDK, the interpreter.
	ReadOnly []string
}

// Name names the layers in use ("none" when there is none).
func (iso *Isolation) Name() string {
	if iso == nil {
		return "none"
	}
	return iso.Launcher.Isolation()
}

// wrap makes cmd run confined, writing only to rw and reading ro besides what every run reads.
func (iso *Isolation) wrap(cmd *exec.Cmd, rw, ro []string) error {
	if iso == nil {
		return nil
	}
	return iso.Launcher.Wrap(cmd, sandbox.Policy{Hide: iso.Hide, ReadWrite: rw, ReadOnly: append(ro, iso.ReadOnly...)})
}

// handOver gives the confined user the files under each path (when runs have a user of their
// own); skip names subtrees to leave as they are.
func (iso *Isolation) handOver(skip func(path string) bool, paths ...string) error {
	if iso == nil {
		return nil
	}
	uid, gid, ok := iso.Launcher.Owner()
	if !ok {
		return nil
	}
	for _, root := range paths {
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				if os.IsNotExist(err) {
					return nil
				}
				return err
			}
			if p != root && skip != nil && skip(p) {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			return os.Lchown(p, uid, gid)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// opensUp makes a snapshot template's files writable through the overlays of runs (their
// writes go to each run's own upper directory): with a user of their own, runs do not own the
// template's files.
func (iso *Isolation) opensUp(dir string) error {
	if _, _, ok := iso.owner(); !ok {
		return nil
	}
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil || fi.Mode()&fs.ModeSymlink != 0 {
			return err
		}
		mode := fi.Mode().Perm() | 0o666
		if d.IsDir() {
			mode |= 0o111
		}
		return os.Chmod(p, mode)
	})
}

func (iso *Isolation) owner() (uid, gid int, ok bool) {
	if iso == nil {
		return 0, 0, false
	}
	return iso.Launcher.Owner()
}
