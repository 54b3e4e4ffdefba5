package local

import (
	"bytes"
	"sort"
	"strings"
)

// masked replaces a secret's value in a run's captured output.
var masked = []byte("***")

// masker hides secret values in a script's output. Output is handled line by line, so a
// multi-line value (a PEM key) is masked line by line too.
type masker struct {
	values [][]byte // longest first, so a value containing another is masked whole
}

// newMasker returns the masker of a job's secrets; nil when it has none.
func newMasker(secrets map[string]string) *masker {
	seen := map[string]bool{}
	var values []string
	add := func(v string) {
		if strings.TrimSpace(v) != "" && !seen[v] {
			seen[v] = true
			values = append(values, v)
		}
	}
	for _, v := range secrets {
		add(v)
		if strings.Contains(v, "\n") {
			for _, line := range strings.Split(v, "\n") {
				add(strings.TrimRight(line, "\r"))
			}
		}
	}
	if len(values) == 0 {
		return nil
	}
	sort.Slice(values, func(i, j int) bool { return len(values[i]) > len(values[j]) })
	m := &masker{}
	for _, v := range values {
		m.values = append(m.values, []byte(v))
	}
	return m
}

// mask returns line with every secret value replaced; line itself is not changed.
func (m *masker) mask(line []byte) []byte {
	if m == nil {
		return line
	}
	for _, v := range m.values {
		if bytes.Contains(line, v) {
			line = bytes.ReplaceAll(line, v, masked)
		}
	}
	return line
}

// pending returns how many bytes at the end of b could be the start of a secret value: the
// part of a long line to keep back until its next piece arrives.
func (m *masker) pending(b []byte) int {
	if m == nil || len(b) == 0 {
		return 0
	}
	longest := 0
	last := b[len(b)-1]
	for _, v := range m.values {
		for k := min(len(v)-1, len(b)); k > longest; k-- {
			if v[k-1] == last && bytes.HasSuffix(b, v[:k]) {
				longest = k
				break
			}
		}
	}
	return longest
}
