package build

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
)

// prefetcher starts on a wheel as soon as pip's output names it, while pip is still resolving:
// it looks the file up in the index's JSON simple API (PEP 691) for its URL and sha256, then
// fetches it and writes its layer. When pip's report comes, a wheel whose URL and sha256 are
// those the prefetcher used takes its layer; any other is fetched then, as without it. So the
// fetching and writing overlap pip's resolve (which, from an index without PEP 658 metadata,
// downloads every wheel itself), and nothing pip did not choose is used. One file per project
// is prefetched (pip backtracking through versions costs one wasted layer at most).
type prefetcher struct {
	b            *builder
	ctx          context.Context
	index        string // the index's root ("https://pypi.org/simple"); "" prefetches nothing
	python       string
	roots        []string
	fetches, cpu chan struct{}
	// While pip runs (until resolved is closed) one prefetched layer at a time is written, on
	// one goroutine: pip, whose end names the last wheels, keeps a core.
	pipSlot  chan struct{}
	resolved chan struct{}
	mu       sync.Mutex
	projects map[string]bool
	byFile   map[string]*prefetched
	wg       sync.WaitGroup
	lineMu   sync.Mutex
	partial  []byte
}

type prefetched struct {
	done     chan struct{}
	url, sha string
	l        *cachedLayer
	cached   bool
	err      error
}

// pipWheelLine is pip's line about a wheel it fetches to resolve: the wheel itself
// ("Downloading scipy-1.14.1-….whl (41.2 MB)") or its PEP 658 metadata ("….whl.metadata").
var pipWheelLine = regexp.MustCompile(`^\s*Downloading\s+(?:\S*/)?([A-Za-z0-9_.+!-]+\.whl)(?:\.metadata)?\s`)

// pipIndex is the index pip reads: --index-url/-i of the pip arguments, PIP_INDEX_URL, or PyPI;
// "" with --no-index.
func pipIndex(args []string) string {
	index := os.Getenv("PIP_INDEX_URL")
	for i, a := range args {
		switch {
		case a == "--no-index":
			return ""
		case (a == "--index-url" || a == "-i") && i+1 < len(args):
			index = args[i+1]
		case strings.HasPrefix(a, "--index-url="):
			index = strings.TrimPrefix(a, "--index-url=")
		}
	}
	if index == "" {
		index = "https://pypi.org/simple"
	}
	return strings.TrimSuffix(index, "/")
}

// Write takes pip's output and starts on the wheels it names.
func (p *prefetcher) Write(b []byte) (int, error) {
	if p.index == "" {
		return len(b), nil
	}
	p.lineMu.Lock()
	defer p.lineMu.Unlock()
	p.partial = append(p.partial, b...)
	for {
		i := strings.IndexAny(string(p.partial), "\r\n")
		if i < 0 {
			break
		}
		line := string(p.partial[:i])
		p.partial = p.partial[i+1:]
		if m := pipWheelLine.FindStringSubmatch(line); m != nil {
			p.start(m[1])
		}
	}
	if len(p.partial) > 1<<16 {
		p.partial = nil
	}
	return len(b), nil
}

var nameRun = regexp.MustCompile(`[-_.]+`)

// start prefetches a wheel pip's output names, looking it up in the index's page.
func (p *prefetcher) start(file string) {
	dist, _, _ := strings.Cut(file, "-")
	project := nameRun.ReplaceAllString(strings.ToLower(dist), "-")
	p.begin(file, project, func() (string, string, error) { return p.lookup(project, file) })
}

// startKnown prefetches a wheel whose URL and sha256 are known (pip asked the index view for
// its metadata).
func (p *prefetcher) startKnown(file, project, url, sha string) {
	project = nameRun.ReplaceAllString(strings.ToLower(project), "-")
	p.begin(file, project, func() (string, string, error) { return url, sha, nil })
}

// begin starts on the first wheel of a project: locate says where it is.
func (p *prefetcher) begin(file, project string, locate func() (string, string, error)) {
	p.mu.Lock()
	if p.projects[project] || p.ctx.Err() != nil {
		p.mu.Unlock()
		return
	}
	p.projects[project] = true
	pf := &prefetched{done: make(chan struct{})}
	p.byFile[file] = pf
	p.wg.Add(1)
	p.mu.Unlock()
	go func() {
		defer p.wg.Done()
		defer close(pf.done)
		if pf.url, pf.sha, pf.err = locate(); pf.err != nil {
			return
		}
		pf.l, pf.cached, pf.err = p.b.wheelLayer(p.ctx, wheelRef{Name: project, URL: pf.url, SHA256: pf.sha}, p.python, p.roots, p.fetches, p.slot)
	}()
}

// slot lets a prefetched layer be written: while pip runs, one at a time on one goroutine;
// after, as any other.
func (p *prefetcher) slot(ctx context.Context) (func(), bool, error) {
	release, _, err := semaphore(p.cpu)(ctx)
	if err != nil {
		return nil, false, err
	}
	select {
	case p.pipSlot <- struct{}{}:
		return func() { <-p.pipSlot; release() }, true, nil
	case <-p.resolved:
		return release, false, nil
	case <-ctx.Done():
		release()
		return nil, false, ctx.Err()
	}
}

// lookup finds file in the index's JSON page of project.
func (p *prefetcher) lookup(project, file string) (string, string, error) {
	page, err := url.Parse(p.index + "/" + project + "/")
	if err != nil {
		return "", "", err
	}
	req, err := http.NewRequestWithContext(p.ctx, "GET", page.String(), nil)
	if err != nil {
		return "", "", err
	}
	req.Header.Set("Accept", "application/vnd.pypi.simple.v1+json")
	if user := p.b.indexCredentials()[page.Host]; user != nil && page.User == nil {
		pw, _ := user.Password()
		req.SetBasicAuth(user.Username(), pw)
	}
	client := p.b.client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/vnd.pypi.simple.v1+json") {
		return "", "", fmt.Errorf("%s: %s %s", page, resp.Status, resp.Header.Get("Content-Type"))
	}
	var doc struct {
		Files []struct {
			Filename string            `json:"filename"`
			URL      string            `json:"url"`
			Hashes   map[string]string `json:"hashes"`
		} `json:"files"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(&doc); err != nil {
		return "", "", err
	}
	for _, f := range doc.Files {
		if f.Filename == file && sha256RE.MatchString(f.Hashes["sha256"]) {
			u, err := resp.Request.URL.Parse(f.URL)
			if err != nil {
				return "", "", err
			}
			return u.String(), f.Hashes["sha256"], nil
		}
	}
	return "", "", fmt.Errorf("%s: no %s", page, file)
}

// take returns the layer prefetched for w when it is the wheel pip chose (same URL and sha256).
func (p *prefetcher) take(w wheelRef) (*cachedLayer, bool, bool) {
	p.mu.Lock()
	pf := p.byFile[w.file()]
	p.mu.Unlock()
	if pf == nil {
		return nil, false, false
	}
	select {
	case <-pf.done:
	case <-p.ctx.Done():
		return nil, false, false
	}
	if pf.err != nil || pf.url != w.URL || pf.sha != w.SHA256 || w.SHA256 == "" {
		return nil, false, false
	}
	return pf.l, pf.cached, true
}

// stop ends what is still running (wheels pip did not choose) and waits for it.
func (p *prefetcher) stop(cancel context.CancelFunc) {
	p.mu.Lock()
	cancel()
	p.mu.Unlock()
	p.wg.Wait()
}
