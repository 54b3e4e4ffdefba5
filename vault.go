package atelier

import (
	"bytes"
	"context"
	"regexp"
	"sort"
	"strings"
	"time"
	"unicode/utf8"
)

// The vault keeps a workspace's secrets: API keys, passwords, tokens a training script needs.
// A value is encrypted at rest with the server's master key and never leaves the server through
// the API: users see names and dates only. A run configuration names the secrets it needs; the
// scheduler decrypts them into the script's environment and the executor masks their values in
// the run's captured output.
//
// Who may do what: Contributors and Owners set and delete secrets, every member lists their
// names, and a run's token may do neither (its script already has the values it asked for).
// Because any Contributor can submit a script that reads a secret, a secret is as safe as the
// workspace's list of Contributors: it protects against Readers, other workspaces, logs and
// database dumps, not against the people who may run code.

// Secret is a vault entry as users see it: never its value.
type Secret struct {
	Name      string    `json:"name"`
	Workspace string    `json:"workspace"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	CreatedBy string    `json:"created_by"`
}

// MaxSecretValue bounds a secret's value: it must fit in a process environment (Linux allows
// 128 KiB per variable) next to everything else.
const MaxSecretValue = 32 << 10

// MaxSecretName is the longest secret name.
const MaxSecretName = 128

var secretNamePattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// ValidateSecretName checks that name can be an environment variable: a secret reaches a run
// under its own name.
func ValidateSecretName(name string) error {
	if len(name) > MaxSecretName || !secretNamePattern.MatchString(name) {
		return Errorf(EINVALID, "invalid secret name %q: use letters, digits and '_', not starting with a digit, at most %d characters (it becomes an environment variable)", name, MaxSecretName)
	}
	if strings.HasPrefix(strings.ToUpper(name), "ATELIER_") {
		return Errorf(EINVALID, "invalid secret name %q: ATELIER_* names are the run context's", name)
	}
	return nil
}

// ValidateSecretValue checks a value before it is stored.
func ValidateSecretValue(value string) error {
	if value == "" {
		return Errorf(EINVALID, "the secret's value is empty")
	}
	if len(value) > MaxSecretValue || !utf8.ValidString(value) || strings.ContainsRune(value, 0) {
		return Errorf(EINVALID, "the secret's value must be UTF-8 text without NUL bytes, at most %d bytes", MaxSecretValue)
	}
	return nil
}

// SecretStore is the part of the metadata store that keeps the vault. Values are sealed by the
// service before they get here: the store never sees plaintext.
type SecretStore interface {
	// PutSecret creates a secret or replaces its sealed value (CreatedAt and CreatedBy stay).
	PutSecret(ctx context.Context, workspace, name string, sealed []byte) (*Secret, error)
	// ListSecrets lists a workspace's secrets by name.
	ListSecrets(ctx context.Context, workspace string) ([]*Secret, error)
	// SealedSecret returns a secret's sealed value (ENOTFOUND when there is none).
	SealedSecret(ctx context.Context, workspace, name string) ([]byte, error)
	DeleteSecret(ctx context.Context, workspace, name string) error
}

// SecretService is the vault as users see it.
type SecretService interface {
	// SetSecret creates or replaces a secret; the answer never holds the value.
	SetSecret(ctx context.Context, workspace, name, value string) (*Secret, error)
	ListSecrets(ctx context.Context, workspace string) ([]*Secret, error)
	DeleteSecret(ctx context.Context, workspace, name string) error
}

// masked replaces a secret's value in a run's output and logs.
var masked = []byte("***")

// Masker hides the values of a run's secrets in what the run writes: its captured output and
// the logs appended with its token. Text is masked line by line, so a multi-line value (a PEM
// key) is masked line by line too.
type Masker struct {
	values [][]byte // longest first, so a value containing another is masked whole
}

// NewMasker returns the masker of a run's secrets (by name); nil when it has none.
func NewMasker(secrets map[string]string) *Masker {
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
	m := &Masker{}
	for _, v := range values {
		m.values = append(m.values, []byte(v))
	}
	return m
}

// Mask returns text with every secret value replaced; text itself is not changed.
func (m *Masker) Mask(text []byte) []byte {
	if m == nil {
		return text
	}
	for _, v := range m.values {
		if bytes.Contains(text, v) {
			text = bytes.ReplaceAll(text, v, masked)
		}
	}
	return text
}

// Pending returns how many bytes at the end of b could be the start of a secret value: the
// part of a long line to keep back until its next piece arrives.
func (m *Masker) Pending(b []byte) int {
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
