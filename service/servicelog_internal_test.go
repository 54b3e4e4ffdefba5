package service

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestServiceLogRotates: the log is kept in segments of about logSegmentBytes, the newest
// logSegments of them; offsets stay those of the whole log across rotations and a reopening,
// a reader that fell behind the oldest segment goes on from its start, and a log of an older
// server (service.log) is its first segment.
func TestServiceLogRotates(t *testing.T) {
	defer func(b int64, n int) { logSegmentBytes, logSegments = b, n }(logSegmentBytes, logSegments)
	logSegmentBytes, logSegments = 100, 3
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "service.log"), []byte("from an older server\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := openServiceLog(dir)
	if err != nil {
		t.Fatal(err)
	}
	var all strings.Builder
	all.WriteString("from an older server\n")
	line := func(i int) string { return fmt.Sprintf("line %03d of the log\n", i) } // 20 bytes
	for i := range 10 {
		l.write(line(i))
		all.WriteString(line(i))
	}
	l.flush()
	// 221 bytes so far: segments at 0 (21 + 80 = 101 bytes), 101 (100), 201 (20).
	var buf bytes.Buffer
	end, err := readServiceLog(dir, 0, &buf)
	if err != nil || end != int64(all.Len()) || buf.String() != all.String() {
		t.Fatalf("read from 0: end %d (want %d), %v:\n%s", end, all.Len(), err, buf.String())
	}
	buf.Reset()
	if end, err := readServiceLog(dir, 141, &buf); err != nil || end != int64(all.Len()) || buf.String() != all.String()[141:] {
		t.Fatalf("read from 141 (inside a segment): end %d, %v: %q", end, err, buf.String())
	}
	// More lines: the oldest segments go; offsets go on.
	for i := 10; i < 30; i++ {
		l.write(line(i))
		all.WriteString(line(i))
	}
	l.close()
	segs, err := logSegmentsIn(dir)
	if err != nil || len(segs) != 3 {
		t.Fatalf("segments kept: %+v, %v; want 3", segs, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "service.log")); !os.IsNotExist(err) {
		t.Errorf("the older server's log is still there: %v", err)
	}
	buf.Reset()
	end, err = readServiceLog(dir, 0, &buf)
	if err != nil || end != int64(all.Len()) || buf.String() != all.String()[segs[0].base:] || segs[0].base == 0 {
		t.Fatalf("read from 0 after rotations: end %d (want %d), oldest at %d, %v:\n%s", end, all.Len(), segs[0].base, err, buf.String())
	}
	// Reopened (a server started again), it appends at the same offsets.
	l, err = openServiceLog(dir)
	if err != nil {
		t.Fatal(err)
	}
	l.write("after a restart\n")
	l.close()
	buf.Reset()
	if next, err := readServiceLog(dir, end, &buf); err != nil || buf.String() != "after a restart\n" || next != end+16 {
		t.Fatalf("read from %d after a restart: %d, %v: %q", end, next, err, buf.String())
	}
}
