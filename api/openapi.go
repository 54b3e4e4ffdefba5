package api

import (
	_ "embed"
	"net/http"
)

// openapiDoc is the API's OpenAPI 3 document, generated from the route table and the Go types
// (openapigen.go) and pinned by TestOpenAPIGolden.
//
//go:embed openapi.json
var openapiDoc []byte

func (s *Server) openapi(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Content-Type", "application/json")
	_, err := w.Write(openapiDoc)
	return err
}
