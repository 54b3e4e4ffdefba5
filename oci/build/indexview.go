package build

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// indexView is the package index as pip sees it while a build resolves: a loopback HTTP server
// standing in for each index of the pip arguments (--index-url, --extra-index-url, their
// PIP_* variables, or PyPI). For each project page it asks the index for its JSON form (PEP
// 691) and answers with
//
//   - only the wheels the image could use (a platform tag of its machine or "any", a CPython 3
//     tag not newer than its Python): pip would discard the others anyway, after parsing
//     them — numpy's page lists 4,400 files, and parsing them was most of pip's resolve;
//   - each wheel's core metadata announced (PEP 658/714): the files' .metadata documents are
//     served from the index's file host when it has them (PyPI's files do, even when a
//     mirror's pages do not say so), else read from the wheel itself. pip then resolves from
//     the metadata and downloads no wheel at all;
//   - each wheel's URL pointing back here, so a request for a wheel's metadata tells the
//     builder which wheel pip is considering: the prefetcher starts fetching it and writing its
//     layer at once.
//
// pip's report names the view's URLs; upstream maps them back to the index's before anything
// else reads them. What the view cannot improve it passes on: an HTML page (with a <base> that
// points pip at the index for its relative links), a wheel without a sha256, a file pip
// downloads itself. The view lives for one resolve and reads nothing but the pages and files
// pip asks for.
type indexView struct {
	b       *builder
	pre     *prefetcher
	indexes []string // the indexes' roots, without a trailing slash; [0] is --index-url
	machine string   // the image's wheel machine tag suffix ("x86_64")
	pyMinor int      // the image's Python 3 minor version; -1 when unknown
	ln      net.Listener
	srv     *http.Server
	root    string // http://127.0.0.1:PORT
	mu      sync.Mutex
	files   map[string]viewFile  // "<index>/<sha256>/<filename>" →
	pages   map[string]*viewPage // "<index>/<project>" →
	ctx     context.Context      // the resolve's: pages are fetched for it, not for one request
	cancel  context.CancelFunc
}

// viewFile is a wheel the view announced: where it is on its index.
type viewFile struct {
	url, sha, project string
}

// pipIndexes are the indexes pip reads, in its order: the --index-url (see pipIndex) and every
// --extra-index-url of the arguments and of PIP_EXTRA_INDEX_URL; nil with --no-index.
func pipIndexes(args []string) []string {
	primary := pipIndex(args)
	if primary == "" {
		return nil
	}
	out := []string{primary}
	extra := strings.Fields(os.Getenv("PIP_EXTRA_INDEX_URL"))
	for i, a := range args {
		switch {
		case a == "--extra-index-url" && i+1 < len(args):
			extra = append(extra, args[i+1])
		case strings.HasPrefix(a, "--extra-index-url="):
			extra = append(extra, strings.TrimPrefix(a, "--extra-index-url="))
		}
	}
	for _, e := range extra {
		out = append(out, strings.TrimSuffix(e, "/"))
	}
	return out
}

// withoutIndexes removes the index options (and their values) from pip's arguments: the view
// names its own.
func withoutIndexes(args []string) []string {
	var out []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--index-url" || a == "-i" || a == "--extra-index-url":
			i++
		case strings.HasPrefix(a, "--index-url=") || strings.HasPrefix(a, "--extra-index-url="):
		default:
			out = append(out, a)
		}
	}
	return out
}

// startIndexView serves the view of pip's indexes on loopback; nil (and no error) when pip
// reads no index.
func (b *builder) startIndexView(ctx context.Context, pre *prefetcher, pyVersion string) (*indexView, error) {
	indexes := pipIndexes(b.spec.PipArgs)
	if len(indexes) == 0 {
		return nil, nil
	}
	v := &indexView{b: b, pre: pre, indexes: indexes, machine: wheelMachine(b.spec.Platform.Architecture), pyMinor: -1,
		files: map[string]viewFile{}, pages: map[string]*viewPage{}}
	v.ctx, v.cancel = context.WithCancel(ctx)
	if major, minor, ok := strings.Cut(pyVersion, "."); ok && major == "3" {
		if n, err := strconv.Atoi(minor); err == nil {
			v.pyMinor = n
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		v.cancel()
		return nil, fmt.Errorf("the package index view: %w", err)
	}
	v.ln, v.root = ln, "http://"+ln.Addr().String()
	v.srv = &http.Server{Handler: v, ReadHeaderTimeout: time.Minute}
	go v.srv.Serve(ln)
	return v, nil
}

// args are pip's arguments with the view in place of the indexes.
func (v *indexView) args() []string {
	out := withoutIndexes(v.b.spec.PipArgs)
	out = append(out, "--index-url", v.root+"/0/")
	for i := 1; i < len(v.indexes); i++ {
		out = append(out, "--extra-index-url", fmt.Sprintf("%s/%d/", v.root, i))
	}
	return out
}

// env is pip's environment without the index variables the arguments replace.
func (v *indexView) env(env []string) []string {
	var out []string
	for _, kv := range env {
		if !strings.HasPrefix(kv, "PIP_INDEX_URL=") && !strings.HasPrefix(kv, "PIP_EXTRA_INDEX_URL=") && !strings.HasPrefix(kv, "PIP_NO_INDEX=") {
			out = append(out, kv)
		}
	}
	return out
}

func (v *indexView) close() {
	if v != nil {
		v.cancel()
		v.srv.Close()
	}
}

// upstream is the index's URL of a URL pip's report gives: the view's file URLs are mapped
// back, any other is returned as it is.
func (v *indexView) upstream(u string) string {
	if v == nil {
		return u
	}
	rest, ok := strings.CutPrefix(u, v.root+"/")
	if !ok {
		return u
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if f, ok := v.files[strings.Replace(rest, "/f/", "/", 1)]; ok {
		return f.url
	}
	return u
}

func (v *indexView) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// /<index>/<project>/ or /<index>/f/<sha256>/<filename>[.metadata]
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/"), "/")
	n, err := strconv.Atoi(parts[0])
	if err != nil || n < 0 || n >= len(v.indexes) || len(parts) < 2 || r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.NotFound(w, r)
		return
	}
	switch {
	case len(parts) == 4 && parts[1] == "f":
		v.serveFile(w, r, n, parts[2], parts[3])
	case len(parts) <= 3 && parts[1] != "":
		v.servePage(w, r, n, parts[1])
	default:
		http.NotFound(w, r)
	}
}

// get fetches u with the index's credentials (those of its URL, or the pip arguments' for its
// host) and pip's CA bundle.
func (v *indexView) get(ctx context.Context, u *url.URL, accept string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", u.String(), nil)
	if err != nil {
		return nil, err
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	if u.User != nil {
		pw, _ := u.User.Password()
		req.SetBasicAuth(u.User.Username(), pw)
	} else if user := v.b.indexCredentials()[u.Host]; user != nil {
		pw, _ := user.Password()
		req.SetBasicAuth(user.Username(), pw)
	}
	client := v.b.client
	if client == nil {
		client = http.DefaultClient
	}
	return client.Do(req)
}

// pageFile is one file of a JSON project page: the fields the view reads, and all the others
// as they came.
type pageFile map[string]any

func (f pageFile) str(k string) string { s, _ := f[k].(string); return s }

// viewPage is a project page as the view answers it; done is closed once it is.
type viewPage struct {
	done   chan struct{}
	status int
	ctype  string
	body   []byte
}

// servePage answers pip with a project's page: the one warmed for it, or fetched now.
func (v *indexView) servePage(w http.ResponseWriter, r *http.Request, n int, project string) {
	p := v.page(n, project)
	select {
	case <-p.done:
	case <-r.Context().Done():
		return
	}
	w.Header().Set("Content-Type", p.ctype)
	w.WriteHeader(p.status)
	w.Write(p.body)
}

// page returns project's page of index n, fetching it (once) when nobody did.
func (v *indexView) page(n int, project string) *viewPage {
	key := fmt.Sprintf("%d/%s", n, project)
	v.mu.Lock()
	p := v.pages[key]
	if p == nil {
		p = &viewPage{done: make(chan struct{})}
		v.pages[key] = p
		go func() {
			defer close(p.done)
			p.status, p.ctype, p.body = v.render(n, project)
		}()
	}
	v.mu.Unlock()
	return p
}

// warm fetches the pages of projects pip is about to ask for (the requirements' names at
// first, then the dependencies a wheel's metadata names), from every index, while pip is busy
// with something else.
func (v *indexView) warm(projects ...string) {
	for _, p := range projects {
		if p = nameRun.ReplaceAllString(strings.ToLower(p), "-"); p == "" {
			continue
		}
		for n := range v.indexes {
			v.page(n, p)
		}
	}
}

var distName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*`)

// requiresDist are the names of the dependencies core metadata lists (Requires-Dist), those of
// extras included: warming a page pip will not ask for costs only the fetch.
func requiresDist(meta []byte) []string {
	var names []string
	for _, line := range strings.Split(string(meta), "\n") {
		if line == "" || line == "\r" {
			break // the headers end; the description follows
		}
		if v, ok := strings.CutPrefix(line, "Requires-Dist:"); ok {
			if name := distName.FindString(strings.TrimSpace(v)); name != "" {
				names = append(names, name)
			}
		}
	}
	return names
}

// render is the view's answer for project's page of index n.
func (v *indexView) render(n int, project string) (int, string, []byte) {
	const text = "text/plain; charset=utf-8"
	page, err := url.Parse(v.indexes[n] + "/" + url.PathEscape(project) + "/")
	if err != nil {
		return http.StatusBadRequest, text, []byte(err.Error())
	}
	resp, err := v.get(v.ctx, page, "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.1, text/html;q=0.01")
	if err != nil {
		return http.StatusBadGateway, text, []byte("the package index: " + err.Error())
	}
	defer resp.Body.Close()
	ctype := resp.Header.Get("Content-Type")
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return resp.StatusCode, ctype, body
	}
	base := *resp.Request.URL
	if base.User == nil {
		base.User = page.User
	}
	if !strings.HasPrefix(ctype, "application/vnd.pypi.simple.v1+json") {
		// HTML: passed on, its relative links resolved against the index's page.
		var buf bytes.Buffer
		fmt.Fprintf(&buf, "<base href=\"%s\">\n", htmlAttr.Replace(base.String()))
		if _, err := io.Copy(&buf, io.LimitReader(resp.Body, 256<<20)); err != nil {
			return http.StatusBadGateway, text, []byte(fmt.Sprintf("the package index's page %s: %v", page.Redacted(), err))
		}
		return http.StatusOK, ctype, buf.Bytes()
	}
	var doc map[string]any
	if err := json.NewDecoder(io.LimitReader(resp.Body, 256<<20)).Decode(&doc); err != nil {
		return http.StatusBadGateway, text, []byte(fmt.Sprintf("the package index's page %s: %v", page.Redacted(), err))
	}
	raw, _ := doc["files"].([]any)
	kept := make([]any, 0, 64)
	for _, it := range raw {
		f, ok := it.(map[string]any)
		if !ok {
			continue
		}
		pf := pageFile(f)
		name := pf.str("filename")
		if !v.usable(name) {
			continue
		}
		abs, err := base.Parse(pf.str("url"))
		if err != nil {
			continue
		}
		hashes, _ := f["hashes"].(map[string]any)
		sha, _ := hashes["sha256"].(string)
		if !sha256RE.MatchString(sha) || strings.ContainsAny(name, "/?#") {
			f["url"] = abs.String() // pip fetches it from the index itself
			kept = append(kept, f)
			continue
		}
		v.mu.Lock()
		v.files[fmt.Sprintf("%d/%s/%s", n, sha, name)] = viewFile{url: withoutFragment(abs), sha: sha, project: project}
		v.mu.Unlock()
		f["url"] = fmt.Sprintf("%s/%d/f/%s/%s", v.root, n, sha, url.PathEscape(name))
		if f["core-metadata"] == nil && f["dist-info-metadata"] == nil {
			f["core-metadata"] = true
		} else if f["core-metadata"] == nil {
			f["core-metadata"] = f["dist-info-metadata"]
		}
		kept = append(kept, f)
	}
	doc["files"] = kept
	body, err := json.Marshal(doc)
	if err != nil {
		return http.StatusBadGateway, text, []byte(err.Error())
	}
	return http.StatusOK, "application/vnd.pypi.simple.v1+json", body
}

var htmlAttr = strings.NewReplacer(`&`, "&amp;", `"`, "&quot;", `<`, "&lt;", `>`, "&gt;")

func withoutFragment(u *url.URL) string {
	c := *u
	c.Fragment, c.RawFragment = "", ""
	return c.String()
}

// wheelTags matches a wheel's file name: name-version(-build)?-python-abi-platform.whl.
var wheelTags = regexp.MustCompile(`^[^-]+-[^-]+(?:-[^-]+)?-([^-]+)-([^-]+)-([^-]+)\.whl$`)

// usable tells whether pip could choose the file for the image: a wheel with a platform tag of
// the image's machine (or "any") and a Python tag of CPython 3 no newer than the image's. It
// keeps more than pip accepts (other ABIs, other operating systems of the machine), never less.
func (v *indexView) usable(file string) bool {
	m := wheelTags.FindStringSubmatch(file)
	if m == nil {
		return false // sdists and anything else: the build takes binary wheels only
	}
	platformOK := false
	for _, p := range strings.Split(m[3], ".") {
		if p == "any" || v.machine == "" || strings.HasSuffix(p, "_"+v.machine) {
			platformOK = true
		}
	}
	if !platformOK {
		return false
	}
	for _, py := range strings.Split(m[1], ".") {
		var rest string
		switch {
		case strings.HasPrefix(py, "py3"):
			rest = py[3:]
		case strings.HasPrefix(py, "cp3"):
			rest = py[3:]
		default:
			continue
		}
		if rest == "" || v.pyMinor < 0 {
			return true
		}
		if minor, err := strconv.Atoi(rest); err == nil && minor <= v.pyMinor {
			return true
		}
	}
	return false
}

// serveFile answers for a wheel the view announced: its metadata (and the prefetcher starts on
// the wheel), or the wheel itself from the index.
func (v *indexView) serveFile(w http.ResponseWriter, r *http.Request, n int, sha, name string) {
	name, meta := strings.CutSuffix(name, ".metadata")
	v.mu.Lock()
	f, ok := v.files[fmt.Sprintf("%d/%s/%s", n, sha, name)]
	v.mu.Unlock()
	if !ok {
		http.NotFound(w, r)
		return
	}
	if !meta {
		u, err := url.Parse(f.url)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		v.proxy(w, r, u)
		return
	}
	data, err := v.metadata(r.Context(), name, f)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	w.Write(data)
}

// metadata returns the core metadata of a wheel the view listed, and starts on the wheel (the
// prefetch) and on the pages of the projects it depends on.
func (v *indexView) metadata(ctx context.Context, name string, f viewFile) ([]byte, error) {
	if v.pre != nil {
		v.pre.startKnown(name, f.project, f.url, f.sha)
	}
	u, err := url.Parse(f.url)
	if err != nil {
		return nil, err
	}
	mu := *u
	mu.Path += ".metadata"
	mu.RawPath = ""
	resp, err := v.get(ctx, &mu, "")
	var data []byte
	if err == nil && resp.StatusCode == http.StatusOK {
		data, err = io.ReadAll(io.LimitReader(resp.Body, 64<<20))
		resp.Body.Close()
	} else {
		if err == nil {
			resp.Body.Close()
		}
		// The index's file host has no metadata document: read it from the wheel.
		data, err = v.wheelMetadata(ctx, u, name)
	}
	if err != nil {
		return nil, err
	}
	v.warm(requiresDist(data)...)
	return data, nil
}

// proxy passes the index's answer for u on.
func (v *indexView) proxy(w http.ResponseWriter, r *http.Request, u *url.URL) {
	resp, err := v.get(r.Context(), u, "")
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	for _, h := range []string{"Content-Type", "Content-Length"} {
		if s := resp.Header.Get(h); s != "" {
			w.Header().Set(h, s)
		}
	}
	w.WriteHeader(resp.StatusCode)
	io.Copy(w, resp.Body)
}

// wheelMetadata downloads a wheel and returns its .dist-info/METADATA.
func (v *indexView) wheelMetadata(ctx context.Context, u *url.URL, name string) ([]byte, error) {
	resp, err := v.get(ctx, u, "")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetching %s: %s", name, resp.Status)
	}
	tmp, err := os.CreateTemp(v.b.cache.dir, "metadata-*.tmp")
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	size, err := io.Copy(tmp, resp.Body)
	if err != nil {
		return nil, err
	}
	zr, err := zip.NewReader(tmp, size)
	if err != nil {
		return nil, fmt.Errorf("%s: not a wheel (zip): %v", name, err)
	}
	for _, zf := range zr.File {
		dir, base := path.Split(zf.Name)
		if base == "METADATA" && strings.Count(dir, "/") == 1 && strings.HasSuffix(dir, ".dist-info/") {
			rc, err := zf.Open()
			if err != nil {
				return nil, err
			}
			defer rc.Close()
			return io.ReadAll(io.LimitReader(rc, 64<<20))
		}
	}
	return nil, fmt.Errorf("%s has no .dist-info/METADATA", name)
}

// redacted are URLs with their passwords masked, for the build log.
func redacted(urls []string) []string {
	out := make([]string, len(urls))
	for i, s := range urls {
		if u, err := url.Parse(s); err == nil {
			s = u.Redacted()
		}
		out[i] = s
	}
	return out
}
