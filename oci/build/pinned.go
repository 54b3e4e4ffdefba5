package build

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// A requirements file whose every requirement is pinned (NAME==VERSION, as pip freeze and
// pip-compile write them) and whose pins are closed under their dependencies needs no resolver:
// the builder checks that closure itself and chooses each pin's wheel as pip would (the most
// preferred tag the image supports, pip's own order), so it need not start pip at all. Anything
// it does not fully understand (another specifier, an option, a marker variable it does not
// know, a dependency missing from the pins or outside their versions, two equally good wheels,
// an HTML index) leaves the resolve to pip, and the build log says why.

// pin is one line of a pinned requirements file.
type pin struct {
	name    string // normalized
	version string
	extras  map[string]bool
	hashes  map[string]bool // sha256 hex from --hash options; empty: any
}

var pinLine = regexp.MustCompile(`^([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[([^\]]*)\])?\s*==\s*([0-9][0-9A-Za-z.!+_-]*)\s*(?:;(.*))?$`)

// parsePins reads a requirements file of pins; why says what is not a pin.
func parsePins(req []byte, env markerEnv) (map[string]*pin, string) {
	text := strings.ReplaceAll(string(req), "\\\r\n", " ")
	text = strings.ReplaceAll(text, "\\\n", " ")
	pins := map[string]*pin{}
	for _, line := range strings.Split(text, "\n") {
		if i := strings.Index(line, " #"); i >= 0 {
			line = line[:i]
		}
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		hashes := map[string]bool{}
		fields := strings.Fields(line)
		var kept []string
		for _, f := range fields {
			if h, ok := strings.CutPrefix(f, "--hash="); ok {
				if sha, ok := strings.CutPrefix(h, "sha256:"); ok {
					hashes[strings.ToLower(sha)] = true
				}
				continue
			}
			kept = append(kept, f)
		}
		line = strings.Join(kept, " ")
		if strings.HasPrefix(line, "-") {
			return nil, fmt.Sprintf("the option %q", strings.Fields(line)[0])
		}
		m := pinLine.FindStringSubmatch(line)
		if m == nil {
			return nil, fmt.Sprintf("%q is not NAME==VERSION", line)
		}
		if m[4] != "" {
			ok, known := env.eval(m[4], nil)
			if !known {
				return nil, fmt.Sprintf("the marker of %q", line)
			}
			if !ok {
				continue
			}
		}
		name := normName(m[1])
		p := &pin{name: name, version: m[3], extras: map[string]bool{}, hashes: hashes}
		for _, e := range strings.Split(m[2], ",") {
			if e = normName(strings.TrimSpace(e)); e != "" {
				p.extras[e] = true
			}
		}
		if _, ok := release(p.version); !ok {
			return nil, fmt.Sprintf("the version %s of %s (only releases: N.N...)", p.version, name)
		}
		if pins[name] != nil {
			return nil, fmt.Sprintf("%s is pinned twice", name)
		}
		pins[name] = p
	}
	if len(pins) == 0 {
		return nil, "no requirement"
	}
	return pins, ""
}

func normName(s string) string { return nameRun.ReplaceAllString(strings.ToLower(s), "-") }

// release parses a release version (N(.N)*), the only kind the builder compares itself.
func release(v string) ([]int, bool) {
	if v == "" {
		return nil, false
	}
	var out []int
	for _, p := range strings.Split(v, ".") {
		if p == "" || strings.Trim(p, "0123456789") != "" || len(p) > 9 {
			return nil, false
		}
		n, _ := strconv.Atoi(p)
		out = append(out, n)
	}
	return out, true
}

func cmpRelease(a, b []int) int {
	for i := 0; i < len(a) || i < len(b); i++ {
		var x, y int
		if i < len(a) {
			x = a[i]
		}
		if i < len(b) {
			y = b[i]
		}
		if x != y {
			if x < y {
				return -1
			}
			return 1
		}
	}
	return 0
}

// specMatch tells whether version satisfies a PEP 440 specifier set of releases ("", ">=1.2,<2",
// "~=1.4", "==1.*", "!=1.3.*"); known is false for anything else.
func specMatch(spec, version string) (ok, known bool) {
	v, vok := release(version)
	if !vok {
		return false, false
	}
	spec = strings.TrimSpace(strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(spec), "("), ")"))
	if spec == "" {
		return true, true
	}
	for _, clause := range strings.Split(spec, ",") {
		clause = strings.TrimSpace(clause)
		op := ""
		for _, o := range []string{"===", "~=", "==", "!=", "<=", ">=", "<", ">"} {
			if strings.HasPrefix(clause, o) {
				op = o
				break
			}
		}
		if op == "" || op == "===" {
			return false, false
		}
		target := strings.TrimSpace(clause[len(op):])
		wild := false
		if op == "==" || op == "!=" {
			target, wild = strings.CutSuffix(target, ".*")
		}
		t, tok := release(target)
		if !tok {
			return false, false
		}
		var match bool
		switch {
		case wild:
			head := v
			if len(head) > len(t) {
				head = head[:len(t)]
			}
			match = cmpRelease(head, t) == 0
		case op == "~=":
			if len(t) < 2 {
				return false, false
			}
			prefix := t[:len(t)-1]
			head := v
			if len(head) > len(prefix) {
				head = head[:len(prefix)]
			}
			match = cmpRelease(v, t) >= 0 && cmpRelease(head, prefix) == 0
		default:
			c := cmpRelease(v, t)
			match = map[string]bool{"==": c == 0, "!=": c != 0, "<=": c <= 0, ">=": c >= 0, "<": c < 0, ">": c > 0}[op]
		}
		if op == "!=" && wild {
			match = !match
		}
		if !match {
			return false, true
		}
	}
	return true, true
}

// markerEnv is the environment markers are evaluated in: the image's Python and platform.
type markerEnv map[string]string

func imageMarkerEnv(pyVersion, machine string) markerEnv {
	return markerEnv{"python_version": pyVersion, "sys_platform": "linux", "platform_system": "Linux", "os_name": "posix",
		"platform_machine": machine, "platform_python_implementation": "CPython", "implementation_name": "cpython"}
}

var markerToken = regexp.MustCompile(`\s*(\(|\)|===|==|!=|<=|>=|~=|<|>|not\s+in\b|in\b|and\b|or\b|"[^"]*"|'[^']*'|[A-Za-z_][A-Za-z0-9_.]*)`)

// eval evaluates a PEP 508 marker; known is false when it names a variable or uses a form this
// evaluator does not know (pip would then decide).
func (env markerEnv) eval(marker string, extras map[string]bool) (ok, known bool) {
	var toks []string
	rest := marker
	for strings.TrimSpace(rest) != "" {
		loc := markerToken.FindStringSubmatchIndex(rest)
		if loc == nil || loc[0] != 0 {
			return false, false
		}
		toks = append(toks, strings.Join(strings.Fields(rest[loc[2]:loc[3]]), " "))
		rest = rest[loc[1]:]
	}
	p := &markerParser{toks: toks, env: env, extras: extras, known: true}
	v := p.or()
	if p.i != len(toks) {
		return false, false
	}
	return v, p.known
}

type markerParser struct {
	toks   []string
	i      int
	env    markerEnv
	extras map[string]bool
	known  bool
}

func (p *markerParser) peek() string {
	if p.i < len(p.toks) {
		return p.toks[p.i]
	}
	return ""
}

func (p *markerParser) or() bool {
	v := p.and()
	for p.peek() == "or" {
		p.i++
		w := p.and()
		v = v || w
	}
	return v
}

func (p *markerParser) and() bool {
	v := p.atom()
	for p.peek() == "and" {
		p.i++
		w := p.atom()
		v = v && w
	}
	return v
}

func (p *markerParser) atom() bool {
	if p.peek() == "(" {
		p.i++
		v := p.or()
		if p.peek() != ")" {
			p.known = false
			return false
		}
		p.i++
		return v
	}
	if p.i+3 > len(p.toks) {
		p.known = false
		p.i = len(p.toks)
		return false
	}
	l, op, r := p.toks[p.i], p.toks[p.i+1], p.toks[p.i+2]
	p.i += 3
	lv, lvar, lok := p.value(l)
	rv, rvar, rok := p.value(r)
	if !lok || !rok {
		p.known = false
		return false
	}
	if lvar == "extra" || rvar == "extra" {
		if op != "==" && op != "!=" {
			p.known = false
			return false
		}
		other := rv
		if rvar == "extra" {
			other = lv
		}
		has := p.extras[normName(other)]
		return has == (op == "==")
	}
	switch op {
	case "==", "!=":
		if lvar == "python_version" || rvar == "python_version" {
			if ok, known := specMatch(op+rv, lv); known {
				return ok
			}
			p.known = false
			return false
		}
		return (lv == rv) == (op == "==")
	case "in":
		return strings.Contains(rv, lv)
	case "not in":
		return !strings.Contains(rv, lv)
	case "<", "<=", ">", ">=", "~=":
		ok, known := specMatch(op+rv, lv)
		if !known {
			p.known = false
		}
		return ok
	}
	p.known = false
	return false
}

// value is a marker operand: a quoted string, or a variable of the environment (its name).
func (p *markerParser) value(t string) (string, string, bool) {
	if len(t) >= 2 && (t[0] == '"' || t[0] == '\'') {
		return t[1 : len(t)-1], "", true
	}
	if t == "extra" {
		return "", "extra", true
	}
	v, ok := p.env[t]
	return v, t, ok
}

// supportedTags are the wheel tags the image accepts, most preferred first, as pip orders them
// for `--implementation cp --python-version 3.M --platform P...` (packaging's cpython_tags, then
// compatible_tags; pip adds manylinux2010 and manylinux1 after manylinux2014 on x86).
func supportedTags(pyMinor int, platforms []string) map[string]int {
	var plats []string
	for _, p := range platforms {
		plats = append(plats, p)
		if arch, ok := strings.CutPrefix(p, "manylinux2014_"); ok && (arch == "x86_64" || arch == "i686") {
			plats = append(plats, "manylinux2010_"+arch, "manylinux1_"+arch)
		}
	}
	rank := map[string]int{}
	add := func(t string) {
		if _, ok := rank[t]; !ok {
			rank[t] = len(rank)
		}
	}
	cp := fmt.Sprintf("cp3%d", pyMinor)
	for _, abi := range []string{cp, "abi3", "none"} {
		for _, p := range plats {
			add(cp + "-" + abi + "-" + p)
		}
	}
	for m := pyMinor - 1; m >= 2; m-- {
		for _, p := range plats {
			add(fmt.Sprintf("cp3%d-abi3-%s", m, p))
		}
	}
	py := []string{fmt.Sprintf("py3%d", pyMinor), "py3"}
	for m := pyMinor - 1; m >= 0; m-- {
		py = append(py, fmt.Sprintf("py3%d", m))
	}
	for _, v := range py {
		for _, p := range plats {
			add(v + "-none-" + p)
		}
	}
	add(cp + "-none-any")
	for _, v := range py {
		add(v + "-none-any")
	}
	return rank
}

// wheelRank is a wheel file's best rank among the supported tags (-1: not supported).
func wheelRank(file string, tags map[string]int) int {
	m := wheelTags.FindStringSubmatch(file)
	if m == nil {
		return -1
	}
	best := -1
	for _, py := range strings.Split(m[1], ".") {
		for _, abi := range strings.Split(m[2], ".") {
			for _, plat := range strings.Split(m[3], ".") {
				if r, ok := tags[py+"-"+abi+"-"+plat]; ok && (best < 0 || r < best) {
					best = r
				}
			}
		}
	}
	return best
}

// fileVersion is the version in a wheel's file name.
func fileVersion(file string) string {
	parts := strings.Split(strings.TrimSuffix(file, ".whl"), "-")
	if len(parts) < 5 {
		return ""
	}
	return parts[1]
}

// pageEntry is a file of a project page as the view answered it.
type pageEntry struct {
	index          int
	file           string
	sha            string
	requiresPython string
	yanked         bool
}

// pageFiles are the files of project's page on index n as the view serves them to pip; ok is
// false when the page is not one the builder can read (an error, HTML).
func (v *indexView) pageFiles(ctx context.Context, n int, project string) ([]pageEntry, bool) {
	p := v.page(n, project)
	select {
	case <-p.done:
	case <-ctx.Done():
		return nil, false
	}
	if p.status == http.StatusNotFound {
		return nil, true
	}
	if p.status != http.StatusOK || !strings.HasPrefix(p.ctype, "application/vnd.pypi.simple.v1+json") {
		return nil, false
	}
	var doc struct {
		Files []struct {
			Filename       string            `json:"filename"`
			Hashes         map[string]string `json:"hashes"`
			RequiresPython *string           `json:"requires-python"`
			Yanked         any               `json:"yanked"`
		} `json:"files"`
	}
	if err := json.Unmarshal(p.body, &doc); err != nil {
		return nil, false
	}
	var out []pageEntry
	for _, f := range doc.Files {
		e := pageEntry{index: n, file: f.Filename, sha: f.Hashes["sha256"]}
		if f.RequiresPython != nil {
			e.requiresPython = *f.RequiresPython
		}
		switch y := f.Yanked.(type) {
		case bool:
			e.yanked = y
		case string:
			e.yanked = true
		}
		out = append(out, e)
	}
	return out, true
}

// resolvePinned resolves a pinned requirements file without pip (see the top of this file):
// the wheels, or nil and why pip must resolve.
func (b *builder) resolvePinned(ctx context.Context, req []byte, v *indexView, pyVersion string) ([]wheelRef, string) {
	if v == nil || v.pyMinor < 0 {
		return nil, "no index view"
	}
	env := imageMarkerEnv(pyVersion, v.machine)
	pins, why := parsePins(req, env)
	if why != "" {
		return nil, why
	}
	tags := supportedTags(v.pyMinor, pipPlatforms(b.spec.Platform.Architecture))
	type result struct {
		ref  wheelRef
		deps []string // Requires-Dist values
		why  string
	}
	results := make(map[string]*result, len(pins))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, p := range pins {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := &result{}
			r.ref, r.deps, r.why = b.pinnedWheel(ctx, v, p, pyVersion, tags)
			mu.Lock()
			results[p.name] = r
			mu.Unlock()
		}()
	}
	wg.Wait()
	names := make([]string, 0, len(pins))
	for name := range pins {
		names = append(names, name)
	}
	sort.Strings(names)
	var refs []wheelRef
	for _, name := range names {
		if r := results[name]; r.why != "" {
			return nil, r.why
		}
	}
	for _, name := range names {
		r := results[name]
		for _, d := range r.deps {
			if why := checkDependency(d, pins[name], pins, env); why != "" {
				return nil, why
			}
		}
		refs = append(refs, r.ref)
	}
	sort.Slice(refs, func(i, j int) bool { return refs[i].Name < refs[j].Name })
	return refs, ""
}

// pinnedWheel chooses the wheel of a pin and reads its metadata.
func (b *builder) pinnedWheel(ctx context.Context, v *indexView, p *pin, pyVersion string, tags map[string]int) (wheelRef, []string, string) {
	want, _ := release(p.version)
	var best []pageEntry
	bestRank, bestYanked := -1, true
	for n := range v.indexes {
		files, ok := v.pageFiles(ctx, n, p.name)
		if !ok {
			return wheelRef{}, nil, fmt.Sprintf("the page of %s could not be read as JSON", p.name)
		}
		for _, f := range files {
			fv, ok := release(fileVersion(f.file))
			if !ok || cmpRelease(fv, want) != 0 {
				continue
			}
			rank := wheelRank(f.file, tags)
			if rank < 0 || !sha256RE.MatchString(f.sha) {
				continue
			}
			if f.requiresPython != "" {
				ok, known := specMatch(f.requiresPython, pyVersion)
				if !known {
					return wheelRef{}, nil, fmt.Sprintf("%s's Requires-Python %q", f.file, f.requiresPython)
				}
				if !ok {
					continue
				}
			}
			// pip prefers any file not yanked, then the best tag.
			switch {
			case best == nil || bestYanked && !f.yanked || bestYanked == f.yanked && rank < bestRank:
				best, bestRank, bestYanked = []pageEntry{f}, rank, f.yanked
			case bestYanked == f.yanked && rank == bestRank:
				best = append(best, f)
			}
		}
	}
	if len(best) == 0 {
		return wheelRef{}, nil, fmt.Sprintf("no wheel of %s %s for the image", p.name, p.version)
	}
	if len(best) > 1 && best[0].sha != best[1].sha {
		return wheelRef{}, nil, fmt.Sprintf("%s %s has wheels as good as each other (%s, %s)", p.name, p.version, best[0].file, best[1].file)
	}
	e := best[0]
	if len(p.hashes) > 0 && !p.hashes[e.sha] {
		return wheelRef{}, nil, fmt.Sprintf("%s: none of the pin's hashes is %s's", p.name, e.file)
	}
	v.mu.Lock()
	f, ok := v.files[fmt.Sprintf("%d/%s/%s", e.index, e.sha, e.file)]
	v.mu.Unlock()
	if !ok {
		return wheelRef{}, nil, fmt.Sprintf("%s is not among the view's files", e.file)
	}
	meta, err := v.metadata(ctx, e.file, f)
	if err != nil {
		return wheelRef{}, nil, fmt.Sprintf("the metadata of %s: %v", e.file, err)
	}
	var name, version string
	var deps []string
	for _, line := range strings.Split(string(meta), "\n") {
		line = strings.TrimRight(line, "\r")
		if line == "" {
			break
		}
		k, val, _ := strings.Cut(line, ":")
		val = strings.TrimSpace(val)
		switch strings.ToLower(k) {
		case "name":
			name = val
		case "version":
			version = val
		case "requires-dist":
			deps = append(deps, val)
		}
	}
	mv, ok := release(version)
	if normName(name) != p.name || !ok || cmpRelease(mv, want) != 0 {
		return wheelRef{}, nil, fmt.Sprintf("%s's metadata names %s %s", e.file, name, version)
	}
	return wheelRef{Name: name, Version: version, URL: f.url, SHA256: e.sha, Requested: true}, deps, ""
}

var requiresDistRE = regexp.MustCompile(`^([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[([^\]]*)\])?\s*([^;]*?)\s*(?:;(.*))?$`)

// checkDependency says why a dependency of p (a Requires-Dist value) is not met by the pins
// ("" when it is, or when its marker leaves it out).
func checkDependency(dist string, p *pin, pins map[string]*pin, env markerEnv) string {
	m := requiresDistRE.FindStringSubmatch(strings.TrimSpace(dist))
	if m == nil {
		return fmt.Sprintf("%s requires %q", p.name, dist)
	}
	if m[4] != "" {
		ok, known := env.eval(m[4], p.extras)
		if !known {
			return fmt.Sprintf("the marker of %s's requirement %q", p.name, dist)
		}
		if !ok {
			return ""
		}
	}
	dep := pins[normName(m[1])]
	if dep == nil {
		return fmt.Sprintf("%s requires %s, which is not pinned", p.name, m[1])
	}
	if ok, known := specMatch(m[3], dep.version); !known || !ok {
		return fmt.Sprintf("%s requires %s %s; the pin is %s", p.name, m[1], m[3], dep.version)
	}
	for _, e := range strings.Split(m[2], ",") {
		if e = normName(strings.TrimSpace(e)); e != "" && !dep.extras[e] {
			return fmt.Sprintf("%s requires %s[%s]; the pin has not that extra", p.name, m[1], e)
		}
	}
	return ""
}
