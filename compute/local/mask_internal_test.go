package local

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"

	"github.com/atelier-ml/atelier"
)

func TestMasker(t *testing.T) {
	m := newMasker(map[string]string{"A": "hunter2", "B": "hunter2hunter", "EMPTY": " ", "ML": "line one\r\nline two\n"})
	for _, tt := range []struct{ in, want string }{
		{"pw=hunter2\n", "pw=***\n"},
		{"hunter2hunter and hunter2\n", "*** and ***\n"},
		{"line one\r\n", "***\r\n"},
		{"nothing here  \n", "nothing here  \n"},
	} {
		if got := string(m.mask([]byte(tt.in))); got != tt.want {
			t.Errorf("mask(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	for _, tt := range []struct {
		in   string
		want int
	}{{"abc hun", 3}, {"abc hunter2hunt", 11}, {"abc", 0}, {"line o", 6}, {"", 0}} {
		if got := m.pending([]byte(tt.in)); got != tt.want {
			t.Errorf("pending(%q) = %d, want %d", tt.in, got, tt.want)
		}
	}
	if newMasker(nil) != nil || newMasker(map[string]string{"X": "  "}) != nil {
		t.Errorf("a masker without values is not nil")
	}
}

// TestCaptureMasksAcrossPieces: a secret split between two reads of a long line is masked.
func TestCaptureMasksAcrossPieces(t *testing.T) {
	const secret = "0123456789abcdef"
	for split := 1; split < len(secret); split++ {
		var got bytes.Buffer
		c := &capture{w: &hostWriter{host: recordHost{buf: &got}}, mask: newMasker(map[string]string{"S": secret}), max: 1 << 30}
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
