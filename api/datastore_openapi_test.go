package api

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/atelier-ml/atelier"
)

// TestOpenAPIDatastoreSchemas checks the datastores' schemas against their Go types, as
// TestOpenAPISchemasMatchGoTypes does for the rest of the API. No schema may describe a field
// that is never sent (Datastore.Sealed is json:"-").
func TestOpenAPIDatastoreSchemas(t *testing.T) {
	doc := mustOpenAPIDoc(t)
	schemas, _ := doc["components"].(map[string]any)["schemas"].(map[string]any)
	for _, tt := range []struct {
		schema   string
		typ      any
		response bool
	}{
		{"Datastore", atelier.Datastore{}, true},
		{"DatastoreSpec", atelier.DatastoreSpec{}, false},
		{"DatastoreCredentials", atelier.DatastoreCredentials{}, false},
		{"DatastoreFile", atelier.DatastoreFile{}, true},
		{"DatastoreFilePage", atelier.DatastoreFilePage{}, true},
		{"DatastoreList", DatastoreList{}, true},
		{"DatastoreDeleted", DatastoreDeleted{}, true},
	} {
		t.Run(tt.schema, func(t *testing.T) {
			s, ok := schemas[tt.schema].(map[string]any)
			if !ok {
				t.Fatalf("components/schemas/%s is missing", tt.schema)
			}
			props, _ := s["properties"].(map[string]any)
			var required []string
			list, _ := s["required"].([]any)
			for _, r := range list {
				name, _ := r.(string)
				required = append(required, name)
				if props[name] == nil {
					t.Errorf("required field %s is not a property", name)
				}
			}
			typ := reflect.TypeOf(tt.typ)
			fields := map[string]bool{}
			for i := range typ.NumField() {
				f := typ.Field(i)
				name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
				if name == "-" || !f.IsExported() {
					continue
				}
				if name == "" {
					name = f.Name
				}
				fields[name] = true
				if props[name] == nil {
					t.Errorf("%s.%s (json %q) is not documented", typ.Name(), f.Name, name)
				}
				omitempty := slices.Contains(strings.Split(opts, ","), "omitempty")
				if tt.response && !omitempty && !slices.Contains(required, name) {
					t.Errorf("%s is always sent but not required", name)
				}
			}
			for name := range props {
				if !fields[name] {
					t.Errorf("property %s is not a field of %s", name, typ)
				}
			}
		})
	}
}
