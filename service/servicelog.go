package service

import (
	"bufio"
	"bytes"
	"cmp"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// serviceLog is a web service's log: its replicas' output, what the controller and the
// autoscaler did, and one line per request. `atelier service logs` reads it from an offset.
// Lines are buffered and written at least every logFlushEvery: a scoring request costs no
// write of its own.
//
// A busy service logs megabytes a minute, so the log is kept in segments of about
// logSegmentBytes, the newest logSegments of them: service-<offset>.log, each named by the
// offset of its first byte in the log as a whole, so a reader's offset stays valid across
// rotations (one that fell behind the oldest segment goes on from its start).
type serviceLog struct {
	mu   sync.Mutex
	dir  string
	f    *os.File
	w    *bufio.Writer
	base int64 // the offset of the current segment's first byte
	size int64 // the current segment's bytes, buffered ones included
	stop chan struct{}
}

const logFlushEvery = 100 * time.Millisecond

// The segments of a service's log: how large one grows before the next is started, and how
// many are kept (variables for tests).
var (
	logSegmentBytes int64 = 32 << 20
	logSegments           = 4
)

// logSegment is a segment of a service's log.
type logSegment struct {
	path       string
	base, size int64
}

// logSegmentsIn lists the segments of the log in dir, oldest first. A log of an older server
// (service.log) becomes the segment at offset 0.
func logSegmentsIn(dir string) ([]logSegment, error) {
	old := filepath.Join(dir, "service.log")
	if _, err := os.Stat(old); err == nil {
		if err := os.Rename(old, filepath.Join(dir, segmentName(0))); err != nil {
			return nil, err
		}
	}
	names, err := filepath.Glob(filepath.Join(dir, "service-*.log"))
	if err != nil {
		return nil, err
	}
	var segs []logSegment
	for _, name := range names {
		base, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimPrefix(filepath.Base(name), "service-"), ".log"), 10, 64)
		if err != nil {
			continue
		}
		fi, err := os.Stat(name)
		if err != nil {
			continue
		}
		segs = append(segs, logSegment{path: name, base: base, size: fi.Size()})
	}
	slices.SortFunc(segs, func(a, b logSegment) int { return cmp.Compare(a.base, b.base) })
	return segs, nil
}

func segmentName(base int64) string { return fmt.Sprintf("service-%016d.log", base) }

func openServiceLog(dir string) (*serviceLog, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	segs, err := logSegmentsIn(dir)
	if err != nil {
		return nil, err
	}
	l := &serviceLog{dir: dir, stop: make(chan struct{})}
	if n := len(segs); n > 0 {
		l.base, l.size = segs[n-1].base, segs[n-1].size
	}
	if err := l.openSegment(); err != nil {
		return nil, err
	}
	go l.flusher()
	return l, nil
}

// openSegment opens the segment at l.base for appending; called with mu held (or alone).
func (l *serviceLog) openSegment() error {
	f, err := os.OpenFile(filepath.Join(l.dir, segmentName(l.base)), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	l.f, l.w = f, bufio.NewWriterSize(f, 64<<10)
	return nil
}

// rotate starts the next segment and removes those beyond the kept number; called with mu
// held. A failure keeps writing to the current one.
func (l *serviceLog) rotate() {
	l.w.Flush()
	prevF, prevW, prevBase, prevSize := l.f, l.w, l.base, l.size
	l.base, l.size = prevBase+prevSize, 0
	if err := l.openSegment(); err != nil {
		l.f, l.w, l.base, l.size = prevF, prevW, prevBase, prevSize
		return
	}
	prevF.Close()
	if segs, err := logSegmentsIn(l.dir); err == nil {
		for i := 0; i < len(segs)-logSegments; i++ {
			os.Remove(segs[i].path)
		}
	}
}

func (l *serviceLog) flusher() {
	t := time.NewTicker(logFlushEvery)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			l.mu.Lock()
			if l.w != nil {
				l.w.Flush()
			}
			l.mu.Unlock()
		}
	}
}

func (l *serviceLog) write(line string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.w != nil {
		l.w.WriteString(line)
		l.size += int64(len(line))
		if l.size >= logSegmentBytes {
			l.rotate()
		}
	}
}

// readServiceLog writes the log in dir from offset to w and returns the offset after what it
// wrote. An offset before the oldest segment kept reads from that segment's start; one beyond
// the end reads nothing.
func readServiceLog(dir string, offset int64, w io.Writer) (int64, error) {
	segs, err := logSegmentsIn(dir)
	if err != nil || len(segs) == 0 {
		return offset, err
	}
	offset = max(offset, segs[0].base)
	for _, seg := range segs {
		if offset >= seg.base+seg.size {
			continue
		}
		f, err := os.Open(seg.path)
		if err != nil {
			return offset, err
		}
		_, err = f.Seek(offset-seg.base, io.SeekStart)
		if err == nil {
			var n int64
			n, err = io.Copy(w, io.LimitReader(f, seg.base+seg.size-offset))
			offset += n
		}
		f.Close()
		if err != nil {
			return offset, err
		}
	}
	return offset, nil
}

func stamp() string { return time.Now().UTC().Format("2006-01-02T15:04:05.000Z") }

func (l *serviceLog) printf(format string, a ...any) {
	l.write(stamp() + " " + fmt.Sprintf(format, a...) + "\n")
}

// request logs one scoring request (its line built by appends: thousands a second).
func (l *serviceLog) request(id string, status int, took time.Duration, replica int, what string) {
	var buf [160]byte
	b := time.Now().UTC().AppendFormat(buf[:0], "2006-01-02T15:04:05.000Z")
	b = append(b, " request "...)
	b = append(b, what...)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(status), 10)
	b = append(b, ' ')
	b = strconv.AppendFloat(b, float64(took.Microseconds())/1000, 'f', 1, 64)
	b = append(b, "ms replica="...)
	if replica >= 0 {
		b = strconv.AppendInt(b, int64(replica), 10)
	} else {
		b = append(b, '-')
	}
	b = append(b, " id="...)
	b = append(b, id...)
	b = append(b, '\n')
	l.write(string(b))
}

// prefixed is a writer of lines that puts prefix before each.
func (l *serviceLog) prefixed(prefix string) io.Writer {
	return writerFunc(func(p []byte) (int, error) {
		for _, line := range bytes.SplitAfter(p, []byte("\n")) {
			if len(line) > 0 {
				l.write(stamp() + " " + prefix + string(bytes.TrimSuffix(line, []byte("\n"))) + "\n")
			}
		}
		return len(p), nil
	})
}

// flush writes the buffered lines now (before the log is read).
func (l *serviceLog) flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.w != nil {
		l.w.Flush()
	}
}

func (l *serviceLog) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f != nil {
		l.w.Flush()
		l.f.Close()
		l.f, l.w = nil, nil
		close(l.stop)
	}
}

type writerFunc func(p []byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
