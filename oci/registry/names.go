package registry

import (
	"regexp"
	"strings"

	"github.com/atelier-ml/atelier"
)

// MaxNameLength bounds a repository name: clients limit "host[:port]/name" to 255 characters.
const MaxNameLength = 255

var (
	// nameComponent is one path component of the distribution spec's name grammar.
	nameComponent = regexp.MustCompile(`^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*$`)
	tagPattern    = regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$`)
)

// ValidateName checks a repository name: the distribution spec's grammar, with at least two
// components, "<workspace>/<name>", since every repository belongs to a workspace.
func ValidateName(name string) error {
	if len(name) > MaxNameLength {
		return atelier.Errorf(atelier.EINVALID, "invalid repository name %q: longer than %d characters", name, MaxNameLength)
	}
	parts := strings.Split(name, "/")
	if len(parts) < 2 {
		return atelier.Errorf(atelier.EINVALID, "invalid repository name %q: want <workspace>/<name>", name)
	}
	for _, p := range parts {
		if !nameComponent.MatchString(p) {
			return atelier.Errorf(atelier.EINVALID, "invalid repository name %q: each /-separated component is lowercase letters and digits, "+
				"separated by '.', '_', '__' or dashes", name)
		}
	}
	return nil
}

// SplitName returns the workspace of a valid repository name and the name inside it.
func SplitName(repo string) (workspace, name string) {
	workspace, name, _ = strings.Cut(repo, "/")
	return workspace, name
}

// ValidateTag checks a tag: 1-128 letters, digits, '_', '.' and '-', not starting with '.' or '-'.
func ValidateTag(tag string) error {
	if !tagPattern.MatchString(tag) {
		return atelier.Errorf(atelier.EINVALID, "invalid tag %q: use 1-128 letters, digits, '_', '.' or '-', not starting with '.' or '-'", tag)
	}
	return nil
}
