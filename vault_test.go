package atelier_test

import (
	"strings"
	"testing"

	"github.com/atelier-ml/atelier"
)

func TestValidateSecretName(t *testing.T) {
	for _, name := range []string{"A", "_x", "API_KEY", "aws_secret_access_key2", strings.Repeat("K", atelier.MaxSecretName)} {
		if err := atelier.ValidateSecretName(name); err != nil {
			t.Errorf("ValidateSecretName(%q): %v", name, err)
		}
	}
	for _, name := range []string{"", "1A", "A-B", "A B", "A=B", "Ä", "ATELIER_TOKEN", "atelier_x", strings.Repeat("K", atelier.MaxSecretName+1)} {
		if err := atelier.ValidateSecretName(name); atelier.ErrorCode(err) != atelier.EINVALID {
			t.Errorf("ValidateSecretName(%q) = %v, want EINVALID", name, err)
		}
	}
}

func TestRunConfigSecrets(t *testing.T) {
	for _, tt := range []struct {
		name string
		c    atelier.RunConfig
		want string // "" for valid
	}{
		{"ok", atelier.RunConfig{Script: "a.py", Secrets: []string{"A", "B"}}, ""},
		{"bad name", atelier.RunConfig{Script: "a.py", Secrets: []string{"A-1"}}, "invalid secret name"},
		{"twice", atelier.RunConfig{Script: "a.py", Secrets: []string{"A", "A"}}, "listed twice"},
		{"also a variable", atelier.RunConfig{Script: "a.py", Secrets: []string{"A"},
			Environment: atelier.EnvironmentConfig{Variables: map[string]string{"A": "x"}}}, "both a secret and an environment variable"},
		{"too many", atelier.RunConfig{Script: "a.py", Secrets: make([]string, atelier.MaxRunSecrets+1)}, "at most"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.c.Validate(nil)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("Validate: %v", err)
			case tt.want != "" && (atelier.ErrorCode(err) != atelier.EINVALID || !strings.Contains(atelier.ErrorMessage(err), tt.want)):
				t.Errorf("Validate = %v, want EINVALID mentioning %q", err, tt.want)
			}
		})
	}
}

func TestMasker(t *testing.T) {
	m := atelier.NewMasker(map[string]string{"A": "hunter2", "B": "hunter2hunter", "EMPTY": " ", "ML": "line one\r\nline two\n"})
	for _, tt := range []struct{ in, want string }{
		{"pw=hunter2\n", "pw=***\n"},
		{"hunter2hunter and hunter2\n", "*** and ***\n"},
		{"line one\r\n", "***\r\n"},
		{"nothing here  \n", "nothing here  \n"},
	} {
		if got := string(m.Mask([]byte(tt.in))); got != tt.want {
			t.Errorf("Mask(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	for _, tt := range []struct {
		in   string
		want int
	}{{"abc hun", 3}, {"abc hunter2hunt", 11}, {"abc", 0}, {"line o", 6}, {"", 0}} {
		if got := m.Pending([]byte(tt.in)); got != tt.want {
			t.Errorf("Pending(%q) = %d, want %d", tt.in, got, tt.want)
		}
	}
	if atelier.NewMasker(nil) != nil || atelier.NewMasker(map[string]string{"X": "  "}) != nil {
		t.Errorf("a masker without values is not nil")
	}
}
