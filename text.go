package atelier

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// Text the server keeps (names, descriptions, tags, params) is UTF-8, stored as it was sent.
// Text that is not is refused, never replaced: a name stored other than it was sent could not
// be found again by the bytes its author holds, and two different keys could become one.

// invalidUTF8 is the error of a field that is not valid UTF-8.
func invalidUTF8(field string) error {
	return Errorf(EINVALID, "%s is not valid UTF-8", field)
}

// ValidateJSONText refuses a JSON document (a request body) holding text that is not valid
// Unicode: bytes that are not UTF-8, or a \u escape of half a UTF-16 surrogate pair (as Python's
// json.dumps writes for a string decoded with surrogateescape). encoding/json decodes both into
// U+FFFD without a word, so the front doors call this before decoding. The error names the field
// and the byte.
func ValidateJSONText(doc []byte) error {
	at, why := invalidJSONText(doc)
	if at < 0 {
		return nil
	}
	return Errorf(EINVALID, "invalid JSON body at byte %d: %s is not valid UTF-8 (%s)", at, jsonFieldAt(doc, at), why)
}

// invalidJSONText returns the offset of doc's first invalid text and why, or -1.
func invalidJSONText(doc []byte) (int, string) {
	if utf8.Valid(doc) && !bytes.Contains(doc, []byte(`\ud`)) && !bytes.Contains(doc, []byte(`\uD`)) {
		return -1, "" // the common case, in two fast passes
	}
	inString := false
	for i := 0; i < len(doc); {
		c := doc[i]
		switch {
		case c >= utf8.RuneSelf:
			r, n := utf8.DecodeRune(doc[i:])
			if r == utf8.RuneError && n == 1 {
				return i, fmt.Sprintf("the byte 0x%02x", c)
			}
			i += n
		case c == '"':
			inString = !inString
			i++
		case c == '\\' && inString:
			if r, ok := hexRune(doc, i); ok && utf16.IsSurrogate(r) {
				low, ok := hexRune(doc, i+6)
				if !ok || utf16.DecodeRune(r, low) == utf8.RuneError {
					return i, fmt.Sprintf("an unpaired surrogate \\u%04x", r)
				}
				i += 12
				continue
			}
			i += 2 // an escape: \" does not end the string
		default:
			i++
		}
	}
	return -1, ""
}

// hexRune reads the \uXXXX escape at doc[at:].
func hexRune(doc []byte, at int) (rune, bool) {
	if at+6 > len(doc) || doc[at] != '\\' || doc[at+1] != 'u' {
		return 0, false
	}
	v, err := strconv.ParseUint(string(doc[at+2:at+6]), 16, 32)
	return rune(v), err == nil
}

var identifier = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// jsonFieldAt names the field of doc that holds offset at: "tags.k", "params[0].value", "a key
// of tags", or "the body" (at the top, or when doc is not JSON at all).
func jsonFieldAt(doc []byte, at int) string {
	type level struct {
		object  bool
		wantKey bool   // an object's next token is a key
		key     string // an object's current key
		index   int    // an array's current index
	}
	var stack []*level
	// path names the place of stack[depth-1]'s current key or index.
	path := func(depth int) string {
		var b bytes.Buffer
		for _, l := range stack[:depth] {
			switch {
			case !l.object:
				fmt.Fprintf(&b, "[%d]", l.index)
			case identifier.MatchString(l.key):
				if b.Len() > 0 {
					b.WriteByte('.')
				}
				b.WriteString(l.key)
			default:
				fmt.Fprintf(&b, "[%q]", l.key)
			}
		}
		if b.Len() == 0 {
			return "the body"
		}
		return b.String()
	}
	dec := json.NewDecoder(bytes.NewReader(doc))
	for {
		start := int(dec.InputOffset())
		tok, err := dec.Token()
		if err != nil {
			return "the body"
		}
		here := start <= at && at < int(dec.InputOffset())
		var top *level
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if d, ok := tok.(json.Delim); ok && (d == '}' || d == ']') {
			stack = stack[:len(stack)-1]
			if len(stack) > 0 && stack[len(stack)-1].object {
				stack[len(stack)-1].wantKey = true
			}
			continue
		}
		if top != nil && top.object && top.wantKey {
			if here {
				if len(stack) == 1 {
					return "a key"
				}
				return "a key of " + path(len(stack)-1)
			}
			top.key, top.wantKey = tok.(string), false
			continue
		}
		if top != nil && !top.object {
			top.index++
		}
		if here {
			return path(len(stack))
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &level{object: true, wantKey: true})
		case json.Delim('['):
			stack = append(stack, &level{index: -1})
		default:
			if top != nil && top.object {
				top.wantKey = true
			}
		}
	}
}
