package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func newProgress(out *os.File, label string, total int64) *progress {
	p := &progress{out: out, label: label, total: total, stop: make(chan struct{})}
	if total <= 0 {
		return p
	}
	p.wg.Add(1)
	go p.loop()
	return p
}

func (p *progress) loop() {
	defer p.wg.Done()
	tty := isTerminal(p.out)
	every := 5 * time.Second
	if tty {
		every = 200 * time.Millisecond
	}
	start := time.Now()
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-p.stop:
			p.print(tty, start, true)
			return
		case <-tick.C:
			p.print(tty, start, false)
		}
	}
}

func (p *progress) print(tty bool, start time.Time, final bool) {
	n := p.sent.Load()
	secs := time.Since(start).Seconds()
	rate := float64(n) / max(secs, 0.001)
	pct := 100 * float64(n) / float64(p.total)
	line := fmt.Sprintf("%s %s / %s (%.0f%%) %s/s", p.label, humanBytes(n), humanBytes(p.total), pct, humanBytes(int64(rate)))
	if tty {
		width := 30
		filled := int(float64(width) * float64(n) / float64(p.total))
		filled = min(max(filled, 0), width)
		bar := "[" + strings.Repeat("=", filled) + strings.Repeat(" ", width-filled) + "] "
		fmt.Fprintf(p.out, "\r\033[K%s%s", bar, line)
		if final {
			fmt.Fprintln(p.out)
		}
		return
	}
	fmt.Fprintln(p.out, line)
}

// add counts n more bytes moved.
func (p *progress) add(n int64) { p.sent.Add(n) }

// reader counts what is read through r.
func (p *progress) reader(r io.Reader) io.Reader { return &countingReader{r: r, p: p} }

func (p *progress) done() {
	if p.total > 0 {
		close(p.stop)
		p.wg.Wait()
	}
}

type countingReader struct {
	r io.Reader
	p *progress
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.p.add(int64(n))
	return n, err
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
