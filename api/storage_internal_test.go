package api

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/edge"
)

// Every route that stores something documents the 507 of a full disk, and the health check
// its degraded status.
func TestOpenAPIStorageFull(t *testing.T) {
	doc := mustOpenAPIDoc(t)
	responses := map[string]map[string]any{}
	for _, o := range openapiOperations(t, doc) {
		responses[o.String()], _ = o.Op["responses"].(map[string]any)
	}
	for _, rt := range NewServer(nil, nil, nil).Routes() {
		method, _, _ := strings.Cut(rt.Pattern, " ")
		stores := edge.IsWrite(method) && rt.Policy != PolicyRead && rt.Policy != PolicyReadScoped
		r, _ := responses[routeKey(rt.Pattern)]["507"].(map[string]any)
		if stores && r["$ref"] != "#/components/responses/StorageFull" {
			t.Errorf("%s stores something but does not document 507 (#/components/responses/StorageFull)", rt.Pattern)
		} else if !stores && r != nil {
			t.Errorf("%s stores nothing but documents 507", rt.Pattern)
		}
	}
	if statusOf[atelier.ENOSPACE] != http.StatusInsufficientStorage {
		t.Errorf("storage_full answers %d, want 507", statusOf[atelier.ENOSPACE])
	}
	health, _ := resolvePointer(doc, "#/components/schemas/Health")
	status, _ := resolvePointer(health, "#/properties/status/enum")
	if fmt.Sprint(status) != "[ok degraded]" {
		t.Errorf("Health.status enum %v, want [ok degraded]", status)
	}
}
