package api

import (
	_ "embed"
	"net/http"
)

// openapiDoc is the API's OpenAPI 3 document, kept in the repository; a test checks that it
// and the route table agree.
//
//go:embed openapi.json
var openapiDoc []byte

func (s *Server) openapi(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Content-Type", "application/json")
	_, err := w.Write(openapiDoc)
	return err
}
