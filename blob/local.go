package blob

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"unsafe"

	"github.com/atelier-ml/atelier"
)

// directAlign is the alignment direct I/O wants of buffers, offsets and lengths: 4096 covers
// every logical block size in use.
const directAlign = 4096

// alignedBufs are bufferSize buffers aligned for direct I/O.
var alignedBufs = sync.Pool{New: func() any {
	raw := make([]byte, bufferSize+directAlign)
	off := (directAlign - int(uintptr(unsafe.Pointer(&raw[0]))%directAlign)) % directAlign
	b := raw[off : off+bufferSize : off+bufferSize]
	return &b
}}

// putFile stores r in a local directory store: written to a file under staging/ while it is
// hashed, then renamed to its key (or dropped, when the key exists already). Where the system
// allows it the file is written with direct I/O, from the buffer to the disk without a copy into
// the page cache: on machines where filling fresh page cache is slow (VMs that hand free memory
// back to their host, measured in docs/benchmarks.md) that copy costs more CPU than the hashing.
// The last partial block goes through the page cache. An object is acknowledged, as before, once
// it is in the file system: it survives a crash of the server (more of it is on the disk).
// Content that does not match want is stored nowhere (EINVALID); a failed put leaves no file.
func (s *Store) putFile(ctx context.Context, r io.Reader, want string) (obj atelier.Object, err error) {
	dir := filepath.Join(s.dir, "staging")
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return obj, fmt.Errorf("write object: %w", err)
	}
	tmp := filepath.Join(dir, "put-"+rand.Text())
	f, direct, err := createFile(tmp)
	if err != nil {
		return obj, fmt.Errorf("write object: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	bp := alignedBufs.Get().(*[]byte)
	defer alignedBufs.Put(bp)
	buf := *bp
	h := sha256.New()
	var size int64
	for {
		if err := ctx.Err(); err != nil {
			return obj, err
		}
		n, rerr := io.ReadFull(r, buf)
		h.Write(buf[:n])
		size += int64(n)
		if direct && n%directAlign != 0 {
			// The tail: direct I/O writes whole blocks only.
			if err := clearDirect(f); err != nil {
				return obj, fmt.Errorf("write object: %w", err)
			}
			direct = false
		}
		if n > 0 {
			if err := writeAll(f, buf[:n], &direct); err != nil {
				return obj, fmt.Errorf("write object: %w", err)
			}
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		} else if rerr != nil {
			if atelier.ErrorCode(rerr) == atelier.EINVALID {
				return obj, rerr
			}
			return obj, fmt.Errorf("write object: %w", rerr)
		}
	}
	digest := hex.EncodeToString(h.Sum(nil))
	if want != "" && digest != want {
		return obj, atelier.Errorf(atelier.EINVALID, "content does not match digest %s (got %s)", want, digest)
	}
	if err := f.Close(); err != nil {
		return obj, fmt.Errorf("write object %s: %w", digest, err)
	}
	final := filepath.Join(s.dir, filepath.FromSlash(key(digest)))
	if _, err := os.Stat(final); err == nil {
		os.Remove(tmp) // stored already: identical content
		return atelier.Object{Digest: digest, Size: size}, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return obj, fmt.Errorf("write object %s: %w", digest, err)
	}
	if err := os.MkdirAll(filepath.Dir(final), 0o777); err != nil {
		return obj, fmt.Errorf("write object %s: %w", digest, err)
	}
	// Renaming over a concurrent identical object is atomic and harmless.
	if err := os.Rename(tmp, final); err != nil {
		return obj, fmt.Errorf("write object %s: %w", digest, err)
	}
	return atelier.Object{Digest: digest, Size: size}, nil
}

// writeAll writes b to f. A file system may accept O_DIRECT at open and refuse it at the first
// write (EINVAL, e.g. a block size above directAlign): direct I/O is then turned off and the
// write made through the page cache.
func writeAll(f *os.File, b []byte, direct *bool) error {
	n, err := f.Write(b)
	if err != nil && *direct && errors.Is(err, syscall.EINVAL) {
		if err := clearDirect(f); err != nil {
			return err
		}
		*direct = false
		_, err = f.Write(b[n:])
	}
	return err
}
