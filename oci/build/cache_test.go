package build

import (
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"testing"
)

// TestLayerBytesDoNotDependOnConcurrency: a layer written on one goroutine (while pip runs)
// and one written on several are the same bytes, a valid gzip stream of the tar, whose digests
// are those recorded.
func TestLayerBytesDoNotDependOnConcurrency(t *testing.T) {
	// 5 MiB of compressible, not trivially repetitive data: several 1 MiB blocks.
	data := make([]byte, 5<<20+12345)
	r := rand.New(rand.NewPCG(1, 2))
	words := []string{"numpy", "scipy", "def ", "return ", "\n", "    ", "import ", "0x", "sklearn"}
	for i := 0; i < len(data); {
		i += copy(data[i:], words[r.IntN(len(words))])
		if i < len(data) && r.IntN(7) == 0 {
			data[i] = byte(r.Uint32())
			i++
		}
	}
	var digests []string
	for _, single := range []bool{true, false, false} {
		c := &cache{dir: t.TempDir()}
		l, err := c.putOn("k", nil, func(w io.Writer) error { _, err := w.Write(data); return err }, single)
		if err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(l.path)
		if err != nil {
			t.Fatal(err)
		}
		all := sha256.New()
		zr, err := gzip.NewReader(io.TeeReader(f, all))
		if err != nil {
			t.Fatal(err)
		}
		plain := sha256.New()
		if _, err := io.Copy(plain, zr); err != nil {
			t.Fatalf("single=%v: the layer is not a valid gzip stream: %v", single, err)
		}
		io.Copy(io.Discard, f)
		f.Close()
		if got := hex.EncodeToString(plain.Sum(nil)); got != l.meta.DiffID.Hex {
			t.Fatalf("single=%v: diff ID %s recorded, the stream's is %s", single, l.meta.DiffID.Hex, got)
		}
		if got := hex.EncodeToString(all.Sum(nil)); got != l.meta.Digest.Hex {
			t.Fatalf("single=%v: digest %s recorded, the file's is %s", single, l.meta.Digest.Hex, got)
		}
		digests = append(digests, fmt.Sprint(l.meta.Digest.Hex, l.meta.Size))
	}
	if digests[0] != digests[1] || digests[1] != digests[2] {
		t.Fatalf("the same tar gave different layers: %q", digests)
	}
}
