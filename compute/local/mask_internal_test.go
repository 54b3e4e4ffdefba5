package local

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"

	"github.com/atelier-ml/atelier"
)

// TestCaptureMasksAcrossPieces: a secret split between two reads of a long line is masked.
func TestCaptureMasksAcrossPieces(t *testing.T) {
	const secret = "0123456789abcdef"
	for split := 1; split < len(secret); split++ {
		var got bytes.Buffer
		c := &capture{w: &hostWriter{host: recordHost{buf: &got}}, mask: atelier.NewMasker(map[string]string{"S": secret}), max: 1 << 30}
		line := strings.Repeat("x", 64<<10-split) + secret + "tail\n"
		c.copyLines(io.MultiReader(strings.NewReader(line), strings.NewReader("next "+secret+"\n")))
		c.Close()
		if want := strings.Repeat("x", 64<<10-split) + "***tail\nnext ***\n"; got.String() != want {
			t.Fatalf("split %d: captured %d bytes, holding the secret: %v", split, got.Len(), strings.Contains(got.String(), secret))
		}
	}
}

// recordHost keeps what is appended to logs; nothing else of the host is used.
type recordHost struct {
	atelier.JobHost
	buf *bytes.Buffer
}

func (h recordHost) AppendLog(ctx context.Context, job *atelier.Job, path string, data []byte) error {
	h.buf.Write(data)
	return nil
}
