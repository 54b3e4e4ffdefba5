package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/atelier-ml/atelier/edge"
)

// The OpenAPI document (openapi.json) is generated from the route table and the Go types:
//
//   - paths: one operation per route of Routes(), in its order; the path parameters from the
//     pattern, security from Route.Public, the words, the other parameters, the bodies and the
//     responses from openapiOps (openapi_ops.go), where each body and response names its Go
//     type;
//   - components.schemas: one schema per entry of openapiSchemas (openapi_schemas.go), whose
//     fields, types, required list and nullability are read from its Go type by reflection;
//     the entry only adds the words and the rules (descriptions, enums, patterns, ranges,
//     examples);
//   - the rest (info, tags, shared parameters and responses) from openapi_meta.go.
//
// openapi.json is the generated document, pinned by TestOpenAPIGolden: after changing a route,
// a Go type or a table, run `go test ./api -run TestOpenAPIGolden -update` and commit the file.

// S is a piece of the document written out as JSON (a schema, a parameter, a response).
type S = map[string]any

// schemaDoc documents one component schema.
type schemaDoc struct {
	Name string
	// Type is a value of the Go type the schema describes (its zero value): the schema's
	// structure is read from it. A reflect.Type is taken as is (see listType).
	Type any
	// Response says the type is sent by the server: every field without omitempty is always
	// there, so it is required.
	Response bool
	// Required lists the fields a request must give (for a type that is not a Response).
	Required []string
	Desc     string
	// Fields document the fields, by JSON name.
	Fields map[string]fieldDoc
	// Extra keywords are added to the schema (an example, minProperties).
	Extra S
	// Schema is the whole schema of a type reflection cannot describe (Float's oneOf); Type
	// and Fields are then unused.
	Schema S
}

// fieldDoc documents one field of a schema.
type fieldDoc struct {
	Desc string
	// Extra keywords are added to the field's schema: the rules the Go type cannot say
	// (pattern, minimum, maxLength, enum, format, example).
	Extra S
	// Ref names the component schema of a field whose Go type is a plain string or number
	// (an enum the Go type does not name).
	Ref string
	// Schema replaces the field's schema (Desc is still added), for a field whose JSON is not
	// its Go type's (a custom MarshalJSON).
	Schema S
}

// opDoc documents the operation of one route.
type opDoc struct {
	Route   string // "METHOD /path", as in the route table ({name...} written {name})
	ID      string // operationId
	Tag     string
	Summary string
	Desc    string
	// Params are the operation's own parameters (the path's come from the pattern): the name
	// of a components.parameters entry, or an S.
	Params []any
	// Body is the request body: a Go value whose type is a component schema (a required
	// application/json body), or an S, the whole requestBody object.
	Body any
	// BodyExample is the example of a JSON body.
	BodyExample any
	// Status and Returns are the success response: Returns is a Go value whose type is a
	// component schema (application/json), nil for no content, or an S, the whole response
	// object; Says is its description.
	Status  int
	Says    string
	Returns any
	// Errors are the error statuses the operation answers beyond those of its route (see
	// routeErrors), e.g. "400 409": each is a components.responses entry (see errorResponse).
	Errors string
	// Responses are other responses written out, by status.
	Responses map[string]S
}

// errorResponse names the components.responses entry of an error status.
func errorResponse(status string) (string, bool) {
	name, ok := map[string]string{
		"400": "BadRequest",
		"401": "Unauthorized",
		"403": "Forbidden",
		"404": "NotFound",
		"409": "Conflict",
		"413": "TooLarge",
		"503": "Unavailable",
		"507": "StorageFull",
	}[status]
	return name, ok
}

// listType is the type of a list response written as {"key": [...]}.
func listType(key string, elem any) reflect.Type {
	return reflect.StructOf([]reflect.StructField{{
		Name: "List",
		Type: reflect.SliceOf(reflect.TypeOf(elem)),
		Tag:  reflect.StructTag(`json:"` + key + `"`),
	}})
}

func typeOf(v any) reflect.Type {
	if t, ok := v.(reflect.Type); ok {
		return t
	}
	return reflect.TypeOf(v)
}

// openapiGen builds the document.
type openapiGen struct {
	names   map[reflect.Type]string // component schema of each Go type
	schemas map[string]schemaDoc
	errs    []string
}

func (g *openapiGen) errorf(format string, args ...any) {
	g.errs = append(g.errs, fmt.Sprintf(format, args...))
}

var (
	timeType = reflect.TypeOf(time.Time{})
	rawType  = reflect.TypeOf(json.RawMessage(nil))
)

// GenerateOpenAPI returns the OpenAPI document of the routes, encoded as openapi.json is.
func GenerateOpenAPI(routes []Route) ([]byte, error) {
	g := &openapiGen{names: map[reflect.Type]string{}, schemas: map[string]schemaDoc{}}
	schemaDocs := openapiSchemas()
	for _, sd := range schemaDocs {
		if _, dup := g.schemas[sd.Name]; dup {
			g.errorf("schema %s is documented twice", sd.Name)
		}
		g.schemas[sd.Name] = sd
		if sd.Type != nil {
			t := typeOf(sd.Type)
			if other, dup := g.names[t]; dup {
				g.errorf("schemas %s and %s have the same Go type %s", other, sd.Name, t)
			}
			g.names[t] = sd.Name
		}
	}
	schemas := ordered{}
	for _, sd := range schemaDocs {
		schemas = append(schemas, kv{sd.Name, g.schema(sd)})
	}
	paths := g.paths(routes)
	components := S{
		"securitySchemes": openapiSecuritySchemes(),
		"parameters":      openapiParameters(),
		"responses":       openapiResponses(),
		"schemas":         schemas,
	}
	doc := ordered{
		{"openapi", "3.0.3"},
		{"info", openapiInfo()},
		{"tags", openapiTags()},
		{"security", []any{S{"bearerAuth": []any{}}}},
		{"paths", paths},
		{"components", components},
	}
	if len(g.errs) > 0 {
		return nil, fmt.Errorf("the OpenAPI document:\n\t%s", strings.Join(g.errs, "\n\t"))
	}
	var buf bytes.Buffer
	writeJSONValue(&buf, doc, "")
	buf.WriteByte('\n')
	return buf.Bytes(), nil
}

// schema builds one component schema.
func (g *openapiGen) schema(sd schemaDoc) any {
	if sd.Schema != nil {
		s := clone(sd.Schema)
		if sd.Desc != "" {
			s["description"] = sd.Desc
		}
		return s
	}
	if sd.Type == nil {
		g.errorf("schema %s has neither a Go type nor a Schema", sd.Name)
		return S{}
	}
	t := typeOf(sd.Type)
	var s S
	if t.Kind() == reflect.Struct && t != timeType {
		s = g.object(sd, t)
	} else {
		s = g.typeSchema(t, false, false)
	}
	if sd.Desc != "" {
		s["description"] = sd.Desc
	}
	merge(s, sd.Extra)
	return s
}

// jsonField is one field of a struct as encoding/json sees it.
type jsonField struct {
	name      string
	typ       reflect.Type
	omitempty bool
}

// jsonFields lists the JSON fields of a struct type, embedded structs flattened.
func jsonFields(t reflect.Type) []jsonField {
	var out []jsonField
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" && opts == "" {
			continue
		}
		if f.Anonymous && name == "" {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				out = append(out, jsonFields(ft)...)
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		omit := slices.Contains(strings.Split(opts, ","), "omitempty") || slices.Contains(strings.Split(opts, ","), "omitzero")
		out = append(out, jsonField{name: name, typ: f.Type, omitempty: omit})
	}
	return out
}

func (g *openapiGen) object(sd schemaDoc, t reflect.Type) S {
	fields := jsonFields(t)
	props := ordered{}
	var required []any
	known := map[string]bool{}
	for _, f := range fields {
		known[f.name] = true
		fd := sd.Fields[f.name]
		var fs S
		switch {
		case fd.Schema != nil:
			fs = clone(fd.Schema)
		case fd.Ref != "":
			fs = S{"$ref": "#/components/schemas/" + fd.Ref}
		default:
			// A pointer is null when absent only in a response field without omitempty: in
			// a request it means optional, and null is refused.
			fs = g.typeSchema(f.typ, true, sd.Response && !f.omitempty)
		}
		if fd.Desc != "" {
			if _, ref := fs["$ref"]; ref {
				fs = S{"allOf": []any{fs}} // a $ref takes no siblings in OpenAPI 3.0
			}
			fs["description"] = fd.Desc
		}
		merge(fs, fd.Extra)
		props = append(props, kv{f.name, fs})
		if sd.Response && !f.omitempty {
			required = append(required, f.name)
		}
	}
	for name := range sd.Fields {
		if !known[name] {
			g.errorf("schema %s documents field %s, which %s does not have", sd.Name, name, t)
		}
	}
	if !sd.Response {
		for _, r := range sd.Required {
			if !known[r] {
				g.errorf("schema %s requires field %s, which %s does not have", sd.Name, r, t)
			}
			required = append(required, r)
		}
	} else if sd.Required != nil {
		g.errorf("schema %s is a response: its required fields are those without omitempty", sd.Name)
	}
	s := S{"type": "object", "properties": props, "additionalProperties": false}
	if len(required) > 0 {
		s["required"] = required
	}
	return s
}

// typeSchema is the schema of a Go type: a reference to its component schema if it has one
// (and useRef), else its JSON shape. A pointer is nullable if nullable says so.
func (g *openapiGen) typeSchema(t reflect.Type, useRef, nullable bool) S {
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	} else {
		nullable = false
	}
	s := g.shape(t, useRef)
	if nullable {
		if _, ref := s["$ref"]; ref {
			// A $ref takes no siblings in OpenAPI 3.0.
			s = S{"allOf": []any{s}, "nullable": true}
		} else {
			s["nullable"] = true
		}
	}
	return s
}

func (g *openapiGen) shape(t reflect.Type, useRef bool) S {
	if name, ok := g.names[t]; ok && useRef {
		return S{"$ref": "#/components/schemas/" + name}
	}
	switch {
	case t == timeType:
		return S{"type": "string", "format": "date-time"}
	case t == rawType, t.Kind() == reflect.Interface:
		return S{}
	}
	switch t.Kind() {
	case reflect.String:
		return S{"type": "string"}
	case reflect.Bool:
		return S{"type": "boolean"}
	case reflect.Int64, reflect.Uint64:
		return S{"type": "integer", "format": "int64"}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32:
		return S{"type": "integer"}
	case reflect.Float32, reflect.Float64:
		return S{"type": "number"}
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return S{"type": "string", "format": "byte"}
		}
		return S{"type": "array", "items": g.typeSchema(t.Elem(), true, false)}
	case reflect.Map:
		return S{"type": "object", "additionalProperties": g.typeSchema(t.Elem(), true, false)}
	case reflect.Struct:
		return g.object(schemaDoc{Name: t.String(), Response: true}, t)
	}
	g.errorf("no schema for Go type %s", t)
	return S{}
}

// paths builds the operations of the routes, grouped by path in the routes' order.
func (g *openapiGen) paths(routes []Route) ordered {
	opDocs := openapiOps()
	ops := map[string]opDoc{}
	for _, op := range opDocs {
		if _, dup := ops[op.Route]; dup {
			g.errorf("operation %s is documented twice", op.Route)
		}
		ops[op.Route] = op
	}
	paths := ordered{}
	items := map[string]*ordered{}
	seen := map[string]bool{}
	for _, rt := range routes {
		key := patternWildcard.ReplaceAllString(rt.Pattern, "{$1}")
		method, path, _ := strings.Cut(key, " ")
		op, ok := ops[key]
		if !ok {
			g.errorf("route %s has no operation in openapiOps (openapi_ops.go)", key)
			continue
		}
		seen[key] = true
		item := items[path]
		if item == nil {
			item = &ordered{}
			if params := pathParams(path); len(params) > 0 {
				*item = append(*item, kv{"parameters", params})
			}
			items[path] = item
			paths = append(paths, kv{path, item})
		}
		*item = append(*item, kv{strings.ToLower(method), g.operation(op, rt)})
	}
	for _, op := range opDocs {
		if !seen[op.Route] {
			g.errorf("operation %s of openapiOps is not a route", op.Route)
		}
	}
	return paths
}

func (g *openapiGen) operation(op opDoc, rt Route) S {
	o := S{"operationId": op.ID, "tags": []any{op.Tag}, "summary": op.Summary}
	if op.Desc != "" {
		o["description"] = op.Desc
	}
	if rt.Public {
		o["security"] = []any{}
	}
	if len(op.Params) > 0 {
		var params []any
		for _, p := range op.Params {
			if name, ok := p.(string); ok {
				params = append(params, S{"$ref": "#/components/parameters/" + name})
			} else {
				params = append(params, p)
			}
		}
		o["parameters"] = params
	}
	switch b := op.Body.(type) {
	case nil:
	case S:
		o["requestBody"] = b
	default:
		media := S{"schema": g.typeSchema(typeOf(b), true, false)}
		if op.BodyExample != nil {
			media["example"] = op.BodyExample
		}
		o["requestBody"] = S{"required": true, "content": S{"application/json": media}}
	}
	responses := S{}
	status := strconv.Itoa(op.Status)
	switch r := op.Returns.(type) {
	case S:
		responses[status] = r
	case nil:
		responses[status] = S{"description": op.Says}
	default:
		responses[status] = S{"description": op.Says, "content": S{"application/json": S{"schema": g.typeSchema(typeOf(r), true, false)}}}
	}
	if op.Status == 0 {
		g.errorf("%s has no success status", op.Route)
	}
	method, path, _ := strings.Cut(op.Route, " ")
	for _, e := range slices.Concat(routeErrors(rt, method, path), strings.Fields(op.Errors)) {
		name, ok := errorResponse(e)
		if !ok {
			g.errorf("%s: no shared response for status %s", op.Route, e)
		}
		responses[e] = S{"$ref": "#/components/responses/" + name}
	}
	for code, r := range op.Responses {
		responses[code] = r
	}
	if !rt.Public {
		responses["default"] = S{"$ref": "#/components/responses/Error"}
	}
	o["responses"] = responses
	return o
}

// routeErrors are the error statuses every route like rt answers, whatever its handler does:
// 401 without a valid token (unless public), 403 when its policy turns some callers away, 404
// when its path names something (a workspace, a run), 507 when it writes (the edge refuses
// writes while the storage is full).
func routeErrors(rt Route, method, path string) []string {
	var out []string
	if !rt.Public {
		out = append(out, "401")
	}
	switch rt.Policy {
	case PolicyUser, PolicyWrite, PolicyRun, PolicyOwner, PolicyAdmin:
		out = append(out, "403")
	}
	if strings.Contains(path, "{") {
		out = append(out, "404")
	}
	if rt.Policy != PolicyRead && rt.Policy != PolicyReadScoped && edge.IsWrite(method) {
		out = append(out, "507")
	}
	return out
}

// pathParams are the parameters of a path template: each {name} is a components.parameters
// entry, found by its name (see pathParamComponents).
func pathParams(path string) []any {
	var out []any
	pathParam := regexp.MustCompile(`\{([^{}]+)\}`)
	for _, m := range pathParam.FindAllStringSubmatchIndex(path, -1) {
		name := path[m[2]:m[3]]
		out = append(out, S{"$ref": "#/components/parameters/" + pathParamComponent(path[:m[0]], name)})
	}
	return out
}

// pathParamComponent names the components.parameters entry of the path parameter name that
// follows prefix: by its name, or for a name several resources use, by the resource.
func pathParamComponent(prefix, name string) string {
	switch name {
	case "path":
		switch {
		case strings.HasSuffix(prefix, "/logs/"):
			return "LogPath"
		case strings.Contains(prefix, "/models/"):
			return "ModelFilePath"
		case strings.Contains(prefix, "/datastores/"):
			return "DatastoreFilePath"
		}
		return "FilePath"
	case "version":
		if strings.Contains(prefix, "/models/") {
			return "ModelVersion"
		}
		return "DatasetVersion"
	case "key":
		return "TagKey"
	case "alias":
		return "ModelAlias"
	}
	return strings.ToUpper(name[:1]) + name[1:]
}

// merge adds the keywords of extra to s; an object in both (items, properties, a property)
// is merged in turn.
func merge(s S, extra S) {
	for k, v := range extra {
		sub, ok := v.(S)
		if !ok {
			s[k] = v
			continue
		}
		switch cur := s[k].(type) {
		case S:
			cur = clone(cur)
			merge(cur, sub)
			s[k] = cur
		case ordered:
			s[k] = mergeOrdered(cur, sub)
		default:
			s[k] = v
		}
	}
}

func mergeOrdered(o ordered, extra S) ordered {
	out := slices.Clone(o)
	for k, v := range extra {
		i := slices.IndexFunc(out, func(e kv) bool { return e.key == k })
		sub, isObj := v.(S)
		cur, curObj := any(nil), false
		if i >= 0 {
			cur = out[i].val
			_, curObj = cur.(S)
		}
		switch {
		case i < 0:
			out = append(out, kv{k, v})
		case isObj && curObj:
			c := clone(cur.(S))
			merge(c, sub)
			out[i].val = c
		default:
			out[i].val = v
		}
	}
	return out
}

func clone(s S) S {
	out := make(S, len(s))
	for k, v := range s {
		out[k] = v
	}
	return out
}

// ordered is a JSON object whose keys keep their order (paths, properties, the document).
type ordered []kv

type kv struct {
	key string
	val any
}

// keyRank orders the keys of an object written as a map: the usual OpenAPI order, then the
// alphabet.
func keyRank(key string) int {
	i := slices.Index([]string{
		"$ref", "name", "in", "operationId", "tags", "summary", "type", "format", "title",
		"version", "description", "required", "security", "parameters", "requestBody", "schema",
		"content", "responses",
	}, key)
	if i < 0 {
		return 1000
	}
	return i
}

// writeJSONValue writes v as indented JSON (two spaces, HTML characters as they are).
func writeJSONValue(buf *bytes.Buffer, v any, indent string) {
	in := indent + "  "
	switch v := v.(type) {
	case *ordered:
		writeJSONValue(buf, *v, indent)
	case ordered:
		if len(v) == 0 {
			buf.WriteString("{}")
			return
		}
		buf.WriteString("{\n")
		for i, e := range v {
			buf.WriteString(in)
			writeJSONString(buf, e.key)
			buf.WriteString(": ")
			writeJSONValue(buf, e.val, in)
			if i < len(v)-1 {
				buf.WriteByte(',')
			}
			buf.WriteByte('\n')
		}
		buf.WriteString(indent + "}")
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.SortFunc(keys, func(a, b string) int {
			if ra, rb := keyRank(a), keyRank(b); ra != rb {
				return ra - rb
			}
			return strings.Compare(a, b)
		})
		o := make(ordered, len(keys))
		for i, k := range keys {
			o[i] = kv{k, v[k]}
		}
		writeJSONValue(buf, o, indent)
	case []any:
		if len(v) == 0 {
			buf.WriteString("[]")
			return
		}
		buf.WriteString("[\n")
		for i, e := range v {
			buf.WriteString(in)
			writeJSONValue(buf, e, in)
			if i < len(v)-1 {
				buf.WriteByte(',')
			}
			buf.WriteByte('\n')
		}
		buf.WriteString(indent + "]")
	case []string:
		a := make([]any, len(v))
		for i, s := range v {
			a[i] = s
		}
		writeJSONValue(buf, a, indent)
	case string:
		writeJSONString(buf, v)
	default:
		b, err := json.Marshal(v)
		if err != nil {
			panic(fmt.Sprintf("openapi: %T: %v", v, err))
		}
		buf.Write(b)
	}
}

func writeJSONString(buf *bytes.Buffer, s string) {
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	enc.Encode(s)
	buf.Truncate(buf.Len() - 1) // Encode's newline
}
