package service

import (
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
type serviceLog struct {
	mu sync.Mutex
	f  *os.File
}

func openServiceLog(dir string) (*serviceLog, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, "service.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	return &serviceLog{f: f}, nil
}

func (l *serviceLog) write(line string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f != nil {
		l.f.WriteString(line)
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

func (l *serviceLog) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f != nil {
		l.f.Close()
		l.f = nil
	}
}

type writerFunc func(p []byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
