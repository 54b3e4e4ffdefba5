package service

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// serviceLog is a web service's log file: its replicas' output, what the controller and the
// autoscaler did, and one line per request. `atelier service logs` reads it from an offset.
// Lines are buffered and written at least every logFlushEvery: a scoring request costs no
// write of its own.
type serviceLog struct {
	mu   sync.Mutex
	f    *os.File
	w    *bufio.Writer
	stop chan struct{}
}

const logFlushEvery = 100 * time.Millisecond

func openServiceLog(dir string) (*serviceLog, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, "service.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	l := &serviceLog{f: f, w: bufio.NewWriterSize(f, 64<<10), stop: make(chan struct{})}
	go l.flusher()
	return l, nil
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
	}
}

func stamp() string { return time.Now().UTC().Format("2006-01-02T15:04:05.000Z") }

func (l *serviceLog) printf(format string, a ...any) {
	l.write(stamp() + " " + fmt.Sprintf(format, a...) + "\n")
}

// request logs one scoring request.
func (l *serviceLog) request(id string, status int, took time.Duration, replica int, what string) {
	r := "-"
	if replica >= 0 {
		r = fmt.Sprint(replica)
	}
	l.write(fmt.Sprintf("%s request %s %d %.1fms replica=%s id=%s\n", stamp(), what, status, float64(took.Microseconds())/1000, r, id))
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
