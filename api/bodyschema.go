package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"

	"github.com/atelier-ml/atelier"
)

// The shape of a JSON body (an object where the document says object, the fields it lists as
// required, no null where it does not say nullable) is checked against the OpenAPI document
// itself, so the two cannot drift apart: encoding/json cannot tell a missing field from a zero
// one, and decodes null into anything. The values' rules (names, lengths, ranges) stay with the
// service, which every front door shares.

// bodySchema is the JSON request body of one operation of the document.
type bodySchema struct {
	name   string         // the component's name, e.g. "WorkspaceCreate"
	schema map[string]any // the schema, references unresolved
}

// bodySchemas maps each route pattern ("POST /api/v1/workspaces/{workspace}/runs") to the
// schema of its application/json request body, read from doc.
type bodySchemas struct {
	doc    map[string]any
	routes map[string]bodySchema
}

var patternWildcard = regexp.MustCompile(`\{([^{}]+)\.\.\.\}`)

func newBodySchemas(docJSON []byte) (*bodySchemas, error) {
	var doc map[string]any
	if err := json.Unmarshal(docJSON, &doc); err != nil {
		return nil, fmt.Errorf("the OpenAPI document: %w", err)
	}
	b := &bodySchemas{doc: doc, routes: map[string]bodySchema{}}
	paths, _ := doc["paths"].(map[string]any)
	for p, item := range paths {
		ops, _ := item.(map[string]any)
		for method, op := range ops {
			body, _ := dig(op, "requestBody", "content", "application/json", "schema").(map[string]any)
			if body == nil {
				continue
			}
			bs := bodySchema{schema: body}
			if ref, ok := body["$ref"].(string); ok {
				bs.name = ref[strings.LastIndexByte(ref, '/')+1:]
			}
			b.routes[strings.ToUpper(method)+" "+p] = bs
		}
	}
	return b, nil
}

// forPattern returns the body schema of the route registered as pattern (a {name...}
// wildcard is the document's {name}).
func (b *bodySchemas) forPattern(pattern string) (bodySchema, bool) {
	bs, ok := b.routes[patternWildcard.ReplaceAllString(pattern, "{$1}")]
	return bs, ok
}

func dig(v any, keys ...string) any {
	for _, k := range keys {
		m, _ := v.(map[string]any)
		v = m[k]
	}
	return v
}

// resolve follows a local $ref.
func (b *bodySchemas) resolve(s map[string]any) map[string]any {
	for range 32 { // a cycle of bare references is a broken document; stop anyway
		ref, ok := s["$ref"].(string)
		if !ok {
			return s
		}
		keys := strings.Split(strings.TrimPrefix(ref, "#/"), "/")
		next, _ := dig(b.doc, keys...).(map[string]any)
		if next == nil {
			return map[string]any{}
		}
		s = next
	}
	return s
}

// checkShape checks the JSON value data against the shape of bs: an object where one is
// expected, every required field present, null only where the schema allows it.
func (b *bodySchemas) checkShape(bs bodySchema, data []byte) error {
	var v any
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return jsonError(err)
	}
	if v == nil {
		want := "a JSON object"
		if bs.name != "" {
			want = "a " + bs.name + " object"
		}
		return atelier.Errorf(atelier.EINVALID, "invalid JSON body: null, want %s", want)
	}
	return b.walk(bs.schema, v, "")
}

func (b *bodySchemas) walk(s map[string]any, v any, at string) error {
	s = b.resolve(s)
	if v == nil {
		if b.allowsNull(s) {
			return nil
		}
		return atelier.Errorf(atelier.EINVALID, "invalid JSON body: %s is null, want %s", fieldName(at), b.describe(s))
	}
	for _, sub := range schemaList(s["allOf"]) {
		if err := b.walk(sub, v, at); err != nil {
			return err
		}
	}
	switch v := v.(type) {
	case map[string]any:
		props, _ := s["properties"].(map[string]any)
		required, _ := s["required"].([]any)
		for _, r := range required {
			name, _ := r.(string)
			if _, ok := v[name]; !ok {
				return atelier.Errorf(atelier.EINVALID, "invalid JSON body: the required field %q is missing", join(at, name))
			}
		}
		extra, _ := s["additionalProperties"].(map[string]any)
		for _, k := range slices.Sorted(maps.Keys(v)) { // the same error for the same body
			e := v[k]
			ps, _ := props[k].(map[string]any)
			if ps == nil {
				ps = extra
			}
			if ps == nil {
				continue // unknown fields are refused by the strict decoder
			}
			if err := b.walk(ps, e, join(at, k)); err != nil {
				return err
			}
		}
	case []any:
		items, _ := s["items"].(map[string]any)
		if items == nil {
			return nil
		}
		for i, e := range v {
			if err := b.walk(items, e, fmt.Sprintf("%s[%d]", at, i)); err != nil {
				return err
			}
		}
	}
	return nil
}

// allowsNull: nullable, or no type at all ("any JSON value"), or an alternative that does.
func (b *bodySchemas) allowsNull(s map[string]any) bool {
	if s["nullable"] == true {
		return true
	}
	if alts := append(schemaList(s["oneOf"]), schemaList(s["anyOf"])...); len(alts) > 0 {
		for _, alt := range alts {
			if b.allowsNull(b.resolve(alt)) {
				return true
			}
		}
		return false
	}
	if all := schemaList(s["allOf"]); len(all) > 0 {
		for _, sub := range all {
			if !b.allowsNull(b.resolve(sub)) {
				return false
			}
		}
		return true
	}
	return s["type"] == nil && s["properties"] == nil && s["items"] == nil && s["enum"] == nil
}

// describe names what a schema wants, for a message: "an object", "a string", "a number or a
// string".
func (b *bodySchemas) describe(s map[string]any) string {
	if alts := append(schemaList(s["oneOf"]), schemaList(s["anyOf"])...); len(alts) > 0 {
		var names []string
		for _, alt := range alts {
			names = append(names, b.describe(b.resolve(alt)))
		}
		return strings.Join(names, " or ")
	}
	if all := schemaList(s["allOf"]); len(all) > 0 {
		return b.describe(b.resolve(all[0]))
	}
	switch t, _ := s["type"].(string); t {
	case "object", "array", "integer":
		return "an " + t
	case "":
		if s["properties"] != nil {
			return "an object"
		}
		return "a value"
	default:
		return "a " + t
	}
}

func schemaList(v any) []map[string]any {
	list, _ := v.([]any)
	var out []map[string]any
	for _, e := range list {
		if m, ok := e.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}

func join(at, name string) string {
	if at == "" {
		return name
	}
	return at + "." + name
}

func fieldName(at string) string {
	if at == "" {
		return "the body"
	}
	return at
}
