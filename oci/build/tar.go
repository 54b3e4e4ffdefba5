package build

import (
	"archive/tar"
	"archive/zip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/atelier-ml/atelier"
)

// entry is one member of a layer: where it goes in the image and where its content comes from.
// Owners, times and extended attributes are never taken from the host: a layer depends only on
// names, contents, the executable bit and link targets, which is what makes it reproducible.
type entry struct {
	name string // path in the image, without a leading slash
	dir  bool
	link string    // symlink target
	src  string    // host file with the content
	data []byte    // content when src is "" and zf nil
	zf   *zip.File // a wheel's member with the content
	exec bool
}

// layerFiles collects what a layer holds: trees (host directory → image directory) and files.
type layerFiles struct {
	entries map[string]*entry
}

func newLayerFiles() *layerFiles { return &layerFiles{entries: map[string]*entry{}} }

// addParents adds the directories leading to name, so the runtime never creates them with modes
// of its own choosing.
func (l *layerFiles) addParents(name string) {
	for d := path.Dir(name); d != "." && d != "/"; d = path.Dir(d) {
		if _, ok := l.entries[d]; !ok {
			l.entries[d] = &entry{name: d, dir: true}
		}
	}
}

func (l *layerFiles) addData(name string, data []byte, exec bool) {
	l.entries[name] = &entry{name: name, data: data, exec: exec}
	l.addParents(name)
}

// addFile adds one host file (following no links: a link is kept as a link).
func (l *layerFiles) addFile(name, src string) error {
	fi, err := os.Lstat(src)
	if err != nil {
		return err
	}
	e, err := entryFor(name, src, fi)
	if err != nil {
		return err
	}
	l.entries[name] = e
	l.addParents(name)
	return nil
}

// addTree adds the host directory src, and everything below it, as the image directory dest.
func (l *layerFiles) addTree(dest, src string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		name := path.Join(dest, filepath.ToSlash(rel))
		fi, err := d.Info()
		if err != nil {
			return err
		}
		e, err := entryFor(name, p, fi)
		if err != nil {
			return err
		}
		l.entries[name] = e
		l.addParents(name)
		return nil
	})
}

func entryFor(name, src string, fi fs.FileInfo) (*entry, error) {
	switch m := fi.Mode(); {
	case m.IsDir():
		return &entry{name: name, dir: true}, nil
	case m.IsRegular():
		return &entry{name: name, src: src, exec: m.Perm()&0o111 != 0}, nil
	case m&fs.ModeSymlink != 0:
		target, err := os.Readlink(src)
		if err != nil {
			return nil, err
		}
		return &entry{name: name, link: target}, nil
	default:
		return nil, atelier.Errorf(atelier.EINVALID, "%s: a %s cannot go into an image (only files, directories and symbolic links)", src, m.Type())
	}
}

// sorted returns the entries in byte order of their names: a parent always precedes its children.
func (l *layerFiles) sorted() []*entry {
	out := make([]*entry, 0, len(l.entries))
	for _, e := range l.entries {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// digestInputs hashes everything the layer's bytes depend on (names, kinds, modes, link targets
// and contents) into h: equal sums mean an equal layer, so it is the layer's cache key.
func (l *layerFiles) digestInputs(h hash.Hash) error {
	for _, e := range l.sorted() {
		switch {
		case e.dir:
			fmt.Fprintf(h, "d %q\n", e.name)
		case e.link != "":
			fmt.Fprintf(h, "l %q %q\n", e.name, e.link)
		default:
			sum, err := contentSum(e)
			if err != nil {
				return err
			}
			fmt.Fprintf(h, "f %q %t %s\n", e.name, e.exec, sum)
		}
	}
	return nil
}

func contentSum(e *entry) (string, error) {
	h := sha256.New()
	if e.src == "" {
		h.Write(e.data)
	} else {
		f, err := os.Open(e.src)
		if err != nil {
			return "", err
		}
		defer f.Close()
		if _, err := io.Copy(h, f); err != nil {
			return "", err
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// writeTar writes the entries as a tar stream: sorted, every time epoch, owners 0:0 with no
// names, modes 0755 (directories and executables) or 0644, no extended attributes.
func (l *layerFiles) writeTar(w io.Writer, epoch time.Time) error {
	tw := tar.NewWriter(w)
	for _, e := range l.sorted() {
		h := &tar.Header{Name: e.name, ModTime: epoch, Mode: 0o644}
		switch {
		case e.dir:
			h.Typeflag, h.Name, h.Mode = tar.TypeDir, e.name+"/", 0o755
		case e.link != "":
			h.Typeflag, h.Linkname, h.Mode = tar.TypeSymlink, e.link, 0o777
		default:
			h.Typeflag = tar.TypeReg
			if e.exec {
				h.Mode = 0o755
			}
		}
		if err := writeEntry(tw, h, e); err != nil {
			return fmt.Errorf("%s: %w", strings.TrimSuffix(h.Name, "/"), err)
		}
	}
	return tw.Close()
}

func writeEntry(tw *tar.Writer, h *tar.Header, e *entry) error {
	if h.Typeflag != tar.TypeReg {
		return tw.WriteHeader(h)
	}
	if e.zf != nil {
		h.Size = int64(e.zf.UncompressedSize64)
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		rc, err := e.zf.Open()
		if err != nil {
			return err
		}
		defer rc.Close()
		// The zip reader checks the size and CRC the archive declares.
		n, err := io.Copy(tw, rc)
		if err == nil && n != h.Size {
			err = fmt.Errorf("holds %d bytes, not the %d its zip entry says", n, h.Size)
		}
		return err
	}
	if e.src == "" {
		h.Size = int64(len(e.data))
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		_, err := tw.Write(e.data)
		return err
	}
	f, err := os.Open(e.src)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	h.Size = fi.Size()
	if err := tw.WriteHeader(h); err != nil {
		return err
	}
	// A file that grew while it was read is refused by the tar writer; one that shrank is
	// caught here: either way the layer is not stored.
	n, err := io.Copy(tw, f)
	if err == nil && n != h.Size {
		err = fmt.Errorf("changed while it was read (%d of %d bytes)", n, h.Size)
	}
	return err
}
