// Package archive makes and reads snapshots, the zipped source directory of a run.
//
// The client side scans a source directory (honouring .amlignore or .gitignore files), hashes
// its files and zips them deterministically. The server side reads an uploaded zip and extracts
// snapshots, refusing any entry that would escape its root or exceed the limits.
package archive

import (
	"cmp"
	"fmt"
	"math"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/atelier-ml/atelier"
)

// Options bounds a snapshot.
type Options struct {
	MaxBytes int64 // total uncompressed bytes; 0 means atelier.DefaultSnapshotMaxBytes
	MaxFiles int   // 0 means atelier.DefaultSnapshotMaxFiles

	// Cache, when set, lets Scan skip hashing the files unchanged since it last saw them.
	Cache *HashCache
}

func (o Options) withDefaults() Options {
	if o.MaxBytes <= 0 {
		o.MaxBytes = atelier.DefaultSnapshotMaxBytes
	}
	if o.MaxFiles <= 0 {
		o.MaxFiles = atelier.DefaultSnapshotMaxFiles
	}
	return o
}

// sized is a path and its size, what the limit checks need.
type sized struct {
	path string
	size int64
}

// listed is how many paths a limit error names: enough to find the culprit, short enough to read.
const listed = 10

const excludeHint = "Exclude what the run does not need in an .amlignore file at the root of the source directory " +
	"(same syntax as .gitignore, e.g. \"data/\" or \"*.ckpt\"), or ask for a higher limit."

// checkLimits refuses a snapshot over opt's limits with a message that says what to exclude.
// counted is false when the walk stopped counting early, so len(files) is only a lower bound.
func checkLimits(files []sized, counted bool, opt Options) error {
	if len(files) > opt.MaxFiles {
		n := fmt.Sprintf("%d", len(files))
		if !counted {
			n = "at least " + n
		}
		return atelier.Errorf(atelier.EINVALID, "the snapshot has %s files, over the limit of %d files.\n"+
			"The directories holding the most files:\n%s%s", n, opt.MaxFiles, biggestDirs(files), excludeHint)
	}
	var total int64
	for _, f := range files {
		total = addSat(total, f.size)
	}
	if total > opt.MaxBytes {
		return atelier.Errorf(atelier.EINVALID, "the snapshot holds %s in %d files, over the limit of %s.\n"+
			"The biggest files:\n%s%s", formatBytes(total), len(files), formatBytes(opt.MaxBytes), biggestFiles(files), excludeHint)
	}
	return nil
}

func biggestFiles(files []sized) string {
	files = slices.Clone(files)
	slices.SortFunc(files, func(a, b sized) int {
		return cmp.Or(cmp.Compare(b.size, a.size), strings.Compare(a.path, b.path))
	})
	var b strings.Builder
	for _, f := range files[:min(listed, len(files))] {
		fmt.Fprintf(&b, "  %s  %s\n", f.path, formatBytes(f.size))
	}
	return b.String()
}

// biggestDirs counts each file in every directory above it, so both node_modules and the package
// inside it that holds most of its files are named.
func biggestDirs(files []sized) string {
	counts := map[string]int{}
	for _, f := range files {
		for d := path.Dir(f.path); d != "."; d = path.Dir(d) {
			counts[d]++
		}
	}
	dirs := make([]string, 0, len(counts))
	for d := range counts {
		dirs = append(dirs, d)
	}
	slices.SortFunc(dirs, func(a, b string) int { return cmp.Or(cmp.Compare(counts[b], counts[a]), strings.Compare(a, b)) })
	var b strings.Builder
	for _, d := range dirs[:min(listed, len(dirs))] {
		fmt.Fprintf(&b, "  %s/  %d files\n", d, counts[d])
	}
	if len(dirs) == 0 {
		b.WriteString("  (all files are at the root)\n")
	}
	return b.String()
}

// addSat adds sizes without overflowing: zip headers can declare sizes near 2^64.
func addSat(a, b int64) int64 {
	if b > math.MaxInt64-a {
		return math.MaxInt64
	}
	return a + b
}

func formatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, i := float64(n), -1
	for v >= unit && i < 4 {
		v /= unit
		i++
	}
	return fmt.Sprintf("%.1f %ciB", v, "KMGTP"[i])
}

// within reports whether p is root or below it; both must be absolute and clean.
func within(root, p string) bool {
	rel, err := filepath.Rel(root, p)
	return err == nil && !filepath.IsAbs(rel) && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}
