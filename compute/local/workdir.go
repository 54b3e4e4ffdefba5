package local

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/archive"
)

// A run's working directory holds its snapshot. Copying the snapshot for every run costs as
// much as `cp -r` (1.4 s for 100 MB in 2,000 files on the development machine), so where the
// kernel allows it (Linux, root) each snapshot is extracted once into a read-only template and
// every run gets an overlay mount of it: the run reads the template and its writes go to a
// directory of its own. Elsewhere the snapshot is copied.

// workingDir prepares dir for the job and returns the function that releases it.
func (e *Executor) workingDir(ctx context.Context, host atelier.JobHost, job *atelier.Job, runDir, dir string) (func(), error) {
	open := func(en atelier.SnapshotEntry) (io.ReadCloser, error) { return host.OpenObject(ctx, en.Digest) }
	if !e.NoOverlay && e.overlaySupported() {
		template, err := e.template(ctx, job.Snapshot, open)
		if err == nil {
			upper, work := filepath.Join(runDir, "upper"), filepath.Join(runDir, "ovwork")
			for _, d := range []string{upper, work, dir} {
				if err := os.MkdirAll(d, 0o755); err != nil {
					return nil, err
				}
			}
			// The run's user owns the upper layer from the start: the overlay keeps the
			// attributes its root had when mounted.
			if err := e.Isolation.handOver(nil, upper); err != nil {
				return nil, err
			}
			opts := "lowerdir=" + template + ",upperdir=" + upper + ",workdir=" + work
			if err := syscall.Mount("overlay", dir, "overlay", 0, opts); err == nil {
				return func() { syscall.Unmount(dir, syscall.MNT_DETACH) }, nil
			}
		}
		// Fall through to copying: a template or mount failure must not fail the run.
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	return func() {}, archive.Extract(ctx, job.Snapshot.Entries, dir, open)
}

// overlaySupported reports, once, whether overlay mounts work here.
func (e *Executor) overlaySupported() bool {
	e.overlayOnce.Do(func() {
		os.MkdirAll(e.WorkDir, 0o700)
		base, err := os.MkdirTemp(e.WorkDir, ".overlay-probe-")
		if err != nil {
			return
		}
		defer os.RemoveAll(base)
		dirs := []string{"l", "u", "w", "m"}
		for _, d := range dirs {
			if os.Mkdir(filepath.Join(base, d), 0o755) != nil {
				return
			}
		}
		opts := "lowerdir=" + filepath.Join(base, "l") + ",upperdir=" + filepath.Join(base, "u") + ",workdir=" + filepath.Join(base, "w")
		if syscall.Mount("overlay", filepath.Join(base, "m"), "overlay", 0, opts) == nil {
			syscall.Unmount(filepath.Join(base, "m"), syscall.MNT_DETACH)
			e.overlayOK = true
		}
	})
	return e.overlayOK
}

// template returns the directory holding the snapshot's files, extracting it the first time.
func (e *Executor) template(ctx context.Context, snap *atelier.Snapshot, open func(atelier.SnapshotEntry) (io.ReadCloser, error)) (string, error) {
	// Templates are made writable for runs of their own user (opensUp): those of earlier
	// versions, in .snapshots, are not.
	root := filepath.Join(e.WorkDir, ".templates")
	dir := filepath.Join(root, snap.ID)
	e.templateMu.Lock()
	defer e.templateMu.Unlock()
	if _, err := os.Stat(dir); err == nil {
		return dir, nil
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(root, ".extract-")
	if err != nil {
		return "", err
	}
	if err := archive.Extract(ctx, snap.Entries, tmp, open); err != nil {
		os.RemoveAll(tmp)
		return "", err
	}
	if err := e.Isolation.opensUp(tmp); err != nil {
		os.RemoveAll(tmp)
		return "", err
	}
	if err := os.Rename(tmp, dir); err != nil {
		os.RemoveAll(tmp)
		return "", err
	}
	return dir, nil
}

// CleanupMounts unmounts the overlays and data mounts a killed server left under the work directory, so its
// working directories can be removed. Call it once at start.
func (e *Executor) CleanupMounts() {
	data, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return
	}
	prefix, _ := filepath.Abs(e.WorkDir)
	for _, line := range strings.Split(string(data), "\n") {
		fields := strings.Fields(line)
		if len(fields) >= 3 && (fields[0] == "overlay" || fields[2] == "fuse."+mountFSName) && strings.HasPrefix(fields[1], prefix+string(os.PathSeparator)) {
			syscall.Unmount(fields[1], syscall.MNT_DETACH)
		}
	}
	os.RemoveAll(filepath.Join(e.WorkDir, ".snapshots")) // templates of earlier versions
	// Working directories of runs that did not end are of no use any more.
	entries, _ := os.ReadDir(e.WorkDir)
	for _, en := range entries {
		if !strings.HasPrefix(en.Name(), ".") {
			os.RemoveAll(filepath.Join(e.WorkDir, en.Name()))
		}
	}
}
