package mlflow

import (
	"crypto/rand"
	"fmt"
	"math/big"
	"strings"

	"github.com/atelier-ml/atelier"
)

// MLflow's run statuses and the atelier statuses each stands for.
var statusFromMLflow = map[string][]atelier.RunStatus{
	"RUNNING":   {atelier.StatusPreparing, atelier.StatusRunning, atelier.StatusFinalizing, atelier.StatusCancelRequested},
	"SCHEDULED": {atelier.StatusNotStarted, atelier.StatusQueued},
	"FINISHED":  {atelier.StatusCompleted},
	"FAILED":    {atelier.StatusFailed},
	"KILLED":    {atelier.StatusCanceled},
}

// mlflowStatus returns MLflow's name for an atelier status.
func mlflowStatus(s atelier.RunStatus) string {
	for name, list := range statusFromMLflow {
		for _, x := range list {
			if x == s {
				return name
			}
		}
	}
	return "RUNNING"
}

// atelierStatus returns the atelier status an MLflow client sets with status name (or number).
func atelierStatus(s string) (atelier.RunStatus, error) {
	switch strings.ToUpper(s) {
	case "RUNNING", "1":
		return atelier.StatusRunning, nil
	case "SCHEDULED", "2":
		return atelier.StatusQueued, nil
	case "FINISHED", "3":
		return atelier.StatusCompleted, nil
	case "FAILED", "4":
		return atelier.StatusFailed, nil
	case "KILLED", "5":
		return atelier.StatusCanceled, nil
	}
	return "", invalidParam("invalid run status %q: use RUNNING, SCHEDULED, FINISHED, FAILED or KILLED", s)
}

// Tags atelier keeps for MLflow's sake but does not show MLflow clients as tags.
const (
	// tagLifecycle marked a run deleted through MLflow before runs had a lifecycle of their
	// own (Run.Deleted); the store's migration turned the marks into it. Still hidden.
	tagLifecycle = "mlflow.lifecycleStage"
)

// View types of searches.
const (
	viewActive  = "ACTIVE_ONLY"
	viewDeleted = "DELETED_ONLY"
	viewAll     = "ALL"
)

func viewType(s string) (string, error) {
	switch strings.ToUpper(s) {
	case "", viewActive, "1":
		return viewActive, nil
	case viewDeleted, "2":
		return viewDeleted, nil
	case viewAll, "3":
		return viewAll, nil
	}
	return "", invalidParam("invalid view type %q: use ACTIVE_ONLY, DELETED_ONLY or ALL", s)
}

// translateFilter rewrites an MLflow search-runs filter into atelier's filter language, which
// already reads MLflow's prefixes and attribute names; what differs is the status names
// (FINISHED is Completed, RUNNING covers several atelier states) and a few attribute names.
// The result is parsed (and its errors reported) by the store.
func translateFilter(s string) (string, error) {
	toks, err := tokenize(s)
	if err != nil {
		return "", err
	}
	var out []string
	for i := 0; i < len(toks); i++ {
		t := toks[i]
		if t.kind != kWord || !isStatusField(t.text) {
			if t.kind == kWord {
				t.text = renameAttribute(t.text)
			}
			out = append(out, t.text)
			continue
		}
		// status op value | status [not] in (values)
		out = append(out, "status")
		j := i + 1
		neg := false
		op := ""
		switch {
		case j < len(toks) && toks[j].kind == kOp:
			op = toks[j].text
			j++
		case j+1 < len(toks) && strings.EqualFold(toks[j].text, "not") && strings.EqualFold(toks[j+1].text, "in"):
			op, neg = "in", true
			j += 2
		case j < len(toks) && toks[j].kind == kWord && (strings.EqualFold(toks[j].text, "in") || strings.EqualFold(toks[j].text, "like") || strings.EqualFold(toks[j].text, "ilike")):
			op = strings.ToLower(toks[j].text)
			j++
		default:
			continue // let atelier's parser report it
		}
		var values []string
		switch {
		case op == "like" || op == "ilike":
			out = append(out, op)
			i = j - 1
			continue
		case op == "in":
			if j >= len(toks) || toks[j].kind != kLParen {
				return "", invalidParam("filter: expected a list of statuses after IN")
			}
			for j++; j < len(toks) && toks[j].kind != kRParen; j++ {
				if toks[j].kind == kString {
					values = append(values, toks[j].str)
				}
			}
		case op == "=" || op == "==" || op == "!=" || op == "<>":
			if j >= len(toks) || toks[j].kind != kString {
				return "", invalidParam("filter: status compares with a quoted status name such as 'FINISHED'")
			}
			values = []string{toks[j].str}
			neg = op == "!=" || op == "<>"
		default:
			return "", invalidParam("filter: status compares with =, !=, IN or NOT IN, not %s", op)
		}
		var list []string
		for _, v := range values {
			st, ok := statusFromMLflow[strings.ToUpper(v)]
			if !ok {
				if atelier.RunStatus(v).Valid() {
					st = []atelier.RunStatus{atelier.RunStatus(v)}
				} else {
					return "", invalidParam("filter: invalid run status %q: use RUNNING, SCHEDULED, FINISHED, FAILED or KILLED", v)
				}
			}
			for _, x := range st {
				list = append(list, "'"+string(x)+"'")
			}
		}
		if neg {
			out = append(out, "not")
		}
		out = append(out, "in", "("+strings.Join(list, ", ")+")")
		i = j
	}
	return strings.Join(out, " "), nil
}

// translateOrderBy joins MLflow's order_by list into an atelier ordering.
func translateOrderBy(terms []string) (string, error) {
	var out []string
	for _, term := range terms {
		toks, err := tokenize(term)
		if err != nil {
			return "", err
		}
		var parts []string
		for _, t := range toks {
			if t.kind == kWord {
				t.text = renameAttribute(t.text)
			}
			parts = append(parts, t.text)
		}
		if len(parts) > 0 {
			out = append(out, strings.Join(parts, " "))
		}
	}
	return strings.Join(out, ", "), nil
}

// isStatusField reports whether a word names the status attribute.
func isStatusField(w string) bool {
	prefix, name, dotted := strings.Cut(strings.ToLower(w), ".")
	if !dotted {
		return prefix == "status"
	}
	return name == "status" && (prefix == "attributes" || prefix == "attribute" || prefix == "attr" || prefix == "run")
}

// renameAttribute maps MLflow attribute names atelier does not know itself.
func renameAttribute(w string) string {
	prefix, name, dotted := strings.Cut(w, ".")
	if !dotted {
		return w
	}
	switch strings.ToLower(prefix) {
	case "attributes", "attribute", "attr", "run":
	default:
		return w
	}
	switch strings.ToLower(name) {
	case "created", "start_time":
		return "started_at"
	case "end_time":
		return "ended_at"
	case "run_id":
		return "id"
	case "run_name":
		return "name"
	case "user_id":
		return "created_by"
	}
	if strings.ToLower(prefix) == "run" {
		return "attributes." + name
	}
	return w
}

type tokKind int

const (
	kWord tokKind = iota
	kString
	kOp
	kLParen
	kRParen
	kComma
)

type tok struct {
	kind tokKind
	text string // as written
	str  string // the unquoted value of a string
}

// tokenize splits a filter into tokens without losing any text: words (fields, keywords and
// numbers, a field's quoted name included), strings, operators and punctuation.
func tokenize(s string) ([]tok, error) {
	var toks []tok
	i := 0
	for i < len(s) {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '(':
			toks = append(toks, tok{kind: kLParen, text: "("})
			i++
		case c == ')':
			toks = append(toks, tok{kind: kRParen, text: ")"})
			i++
		case c == ',':
			toks = append(toks, tok{kind: kComma, text: ","})
			i++
		case c == '=' || c == '!' || c == '<' || c == '>':
			j := i
			for j < len(s) && strings.IndexByte("=!<>", s[j]) >= 0 {
				j++
			}
			toks = append(toks, tok{kind: kOp, text: s[i:j]})
			i = j
		case c == '\'' || c == '"' || c == '`':
			str, end, err := scanQuoted(s, i)
			if err != nil {
				return nil, err
			}
			if c == '`' {
				// a bare quoted identifier: `my metric` as a whole field is not MLflow's
				toks = append(toks, tok{kind: kWord, text: s[i:end]})
			} else {
				toks = append(toks, tok{kind: kString, text: s[i:end], str: str})
			}
			i = end
		default:
			j := i
			for j < len(s) && strings.IndexByte(" \t\n\r(),=!<>'\"`", s[j]) < 0 {
				j++
			}
			// prefix."quoted name" or prefix.`quoted name` is one field
			if j < len(s) && j > i && s[j-1] == '.' && (s[j] == '"' || s[j] == '`') {
				_, end, err := scanQuoted(s, j)
				if err != nil {
					return nil, err
				}
				j = end
			}
			toks = append(toks, tok{kind: kWord, text: s[i:j]})
			i = j
		}
	}
	return toks, nil
}

// scanQuoted scans the string quoted at s[i], with atelier's escapes (a doubled quote or a
// backslash), and returns its value and the index after it.
func scanQuoted(s string, i int) (string, int, error) {
	q := s[i]
	var b strings.Builder
	for j := i + 1; j < len(s); j++ {
		c := s[j]
		switch {
		case c == '\\' && j+1 < len(s) && (s[j+1] == q || s[j+1] == '\\'):
			j++
			b.WriteByte(s[j])
		case c == q && j+1 < len(s) && s[j+1] == q:
			j++
			b.WriteByte(q)
		case c == q:
			return b.String(), j + 1, nil
		default:
			b.WriteByte(c)
		}
	}
	return "", 0, invalidParam("filter: unterminated string starting at position %d", i+1)
}

// quote writes s as a filter string literal.
func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

var nameAdjectives = []string{"amber", "bold", "brave", "calm", "clever", "crisp", "eager", "fair", "gentle",
	"glad", "keen", "lively", "merry", "nimble", "proud", "quick", "quiet", "sharp", "smart", "sunny", "swift", "wise"}
var nameNouns = []string{"ant", "bass", "bear", "crane", "deer", "dove", "eel", "finch", "fox", "gull", "hawk",
	"lark", "lynx", "mole", "newt", "owl", "panda", "seal", "shrew", "snail", "trout", "wolf"}

// randomRunName returns a name such as "swift-owl-274", as MLflow's server gives unnamed runs.
func randomRunName() string {
	pick := func(n int) int {
		v, _ := rand.Int(rand.Reader, big.NewInt(int64(n)))
		return int(v.Int64())
	}
	return fmt.Sprintf("%s-%s-%d", nameAdjectives[pick(len(nameAdjectives))], nameNouns[pick(len(nameNouns))], pick(1000))
}
