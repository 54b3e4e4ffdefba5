package archive

import (
	"archive/zip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"hash"
	"io"
	"io/fs"
	"math"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/atelier-ml/atelier"
)

// zipTime is the modification time of every entry, so the same files give the same zip bytes.
// It is the earliest time a zip can hold.
var zipTime = time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)

// WriteZip streams entries as a deterministic zip: sorted by path, fixed times, mode 0644 or
// 0755, Deflate. open returns each entry's content, which must match its size and digest
// (ECONFLICT otherwise, e.g. a file edited since it was scanned).
func WriteZip(w io.Writer, entries []atelier.SnapshotEntry, open func(e atelier.SnapshotEntry) (io.ReadCloser, error)) error {
	entries = slices.Clone(entries)
	slices.SortFunc(entries, func(a, b atelier.SnapshotEntry) int { return strings.Compare(a.Path, b.Path) })
	zw := zip.NewWriter(w)
	for i, e := range entries {
		if err := atelier.ValidatePath(e.Path); err != nil {
			return err
		}
		if i > 0 && entries[i-1].Path == e.Path {
			return atelier.Errorf(atelier.EINVALID, "snapshot entry %q appears twice", e.Path)
		}
		fh := &zip.FileHeader{Name: e.Path, Method: zip.Deflate, Modified: zipTime}
		fh.SetMode(mode(e.Executable))
		fw, err := zw.CreateHeader(fh)
		if err != nil {
			return err
		}
		if err := copyEntry(fw, e, open); err != nil {
			return err
		}
	}
	return zw.Close()
}

func mode(executable bool) fs.FileMode {
	if executable {
		return 0o755
	}
	return 0o644
}

// copyEntry copies e's content to w and checks it against e's size and digest (if any).
func copyEntry(w io.Writer, e atelier.SnapshotEntry, open func(atelier.SnapshotEntry) (io.ReadCloser, error)) error {
	rc, err := open(e)
	if err != nil {
		return err
	}
	defer rc.Close()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(w, h), rc)
	if err != nil {
		return err
	}
	return checkContent(e, n, h)
}

func checkContent(e atelier.SnapshotEntry, n int64, h hash.Hash) error {
	if n != e.Size || e.Digest != "" && hex.EncodeToString(h.Sum(nil)) != e.Digest {
		return atelier.Errorf(atelier.ECONFLICT, "the content of %s does not match its size and digest: it changed after it was scanned", e.Path)
	}
	return nil
}

// ReadZip is the server side of a zip upload. It checks every entry before calling each for any:
// names must be valid snapshot paths (no "..", absolute paths, backslashes or drive letters),
// unique, and not both a file and a directory; entries must be regular files stored or deflated;
// their declared sizes must fit opt's limits. Then it calls each for every file, in zip order,
// with a reader that refuses to yield more bytes than the limits, whatever the headers claim
// (zip bombs). Directory entries are skipped. Every problem with the zip is EINVALID; an error
// of r or of each is returned as is.
func ReadZip(r io.ReaderAt, size int64, opt Options, each func(path string, executable bool, r io.Reader) error) error {
	opt = opt.withDefaults()
	ra := &recordingReaderAt{r: io.NewSectionReader(r, 0, size)}
	zr, err := zip.NewReader(ra, size)
	if zr == nil { // ErrInsecurePath comes with a usable reader; the names are checked below
		return ra.or(atelier.Errorf(atelier.EINVALID, "the upload is not a valid zip file: %v", err))
	}
	files, err := checkZip(zr.File, opt)
	if err != nil {
		return err
	}
	var total int64
	for _, f := range files {
		if err := readEntry(f, ra, &total, opt.MaxBytes, each); err != nil {
			return err
		}
	}
	return nil
}

func readEntry(f *zip.File, ra *recordingReaderAt, total *int64, max int64, each func(string, bool, io.Reader) error) error {
	rc, err := f.Open()
	if err != nil {
		return ra.or(atelier.Errorf(atelier.EINVALID, "zip entry %q cannot be read: %v", f.Name, err))
	}
	defer rc.Close()
	er := &entryReader{r: rc, f: f, ra: ra, total: total, max: max}
	err = each(f.Name, f.Mode()&0o111 != 0, er)
	if err == nil {
		_, err = io.Copy(io.Discard, er) // read to the end so the CRC is checked
	}
	return err
}

// checkZip returns the regular files of a zip, or why the zip is refused.
func checkZip(all []*zip.File, opt Options) ([]*zip.File, error) {
	var files []*zip.File
	var sizes []sized
	seen := map[string]bool{}
	for _, f := range all {
		name, m := f.Name, f.Mode()
		if err := atelier.ValidatePath(strings.TrimSuffix(name, "/")); err != nil {
			return nil, atelier.Errorf(atelier.EINVALID, "zip entry %q: %s", name, atelier.ErrorMessage(err))
		}
		switch {
		case m.IsDir():
			continue // directories are implied by the files' paths
		case m&fs.ModeSymlink != 0:
			return nil, atelier.Errorf(atelier.EINVALID, "zip entry %q is a symbolic link: snapshots hold regular files only", name)
		case !m.IsRegular():
			return nil, atelier.Errorf(atelier.EINVALID, "zip entry %q is not a regular file", name)
		case f.Method != zip.Store && f.Method != zip.Deflate:
			return nil, atelier.Errorf(atelier.EINVALID, "zip entry %q uses compression method %d: use Deflate or Store", name, f.Method)
		case seen[name]:
			return nil, atelier.Errorf(atelier.EINVALID, "zip entry %q appears twice", name)
		}
		seen[name] = true
		files = append(files, f)
		sizes = append(sizes, sized{name, int64(min(f.UncompressedSize64, math.MaxInt64))})
	}
	for _, f := range files {
		for d := path.Dir(f.Name); d != "."; d = path.Dir(d) {
			if seen[d] {
				return nil, atelier.Errorf(atelier.EINVALID, "zip entry %q is a file but also the directory of %q", d, f.Name)
			}
		}
	}
	return files, checkLimits(sizes, true, opt)
}

// entryReader counts the bytes really decompressed, so that headers understating the sizes
// cannot get more than the limit through.
type entryReader struct {
	r     io.Reader
	f     *zip.File
	ra    *recordingReaderAt
	n     uint64
	total *int64
	max   int64
}

func (r *entryReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.n += uint64(n)
	*r.total += int64(n)
	switch {
	case r.n > r.f.UncompressedSize64 || *r.total > r.max:
		return 0, atelier.Errorf(atelier.EINVALID, "zip entry %q holds more data than its header declares", r.f.Name)
	case errors.Is(err, zip.ErrFormat):
		// archive/zip stops an entry at its declared size with ErrFormat, before the check above.
		return 0, atelier.Errorf(atelier.EINVALID, "zip entry %q is corrupt or holds more data than its header declares", r.f.Name)
	case err != nil && err != io.EOF:
		return n, r.ra.or(atelier.Errorf(atelier.EINVALID, "zip entry %q is corrupt: %v", r.f.Name, err))
	}
	return n, err
}

// recordingReaderAt remembers the first error of the underlying reader, so that a failing disk
// is reported as such and not as a corrupt zip.
type recordingReaderAt struct {
	r   io.ReaderAt
	err error
}

func (ra *recordingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	n, err := ra.r.ReadAt(p, off)
	if err != nil && err != io.EOF && ra.err == nil {
		ra.err = err
	}
	return n, err
}

// or returns the underlying reader's error if there was one, else invalid.
func (ra *recordingReaderAt) or(invalid error) error {
	if ra.err != nil {
		return ra.err
	}
	return invalid
}
