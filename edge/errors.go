package edge

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"

	"github.com/atelier-ml/atelier"
)

// Errors writes a door's errors: the protocol's own table from error codes to HTTP statuses and
// bodies (Map), the rest shared. The cause of a server-side failure is logged with the request's
// method and path, and never shown: the body has only the code and the message.
type Errors struct {
	Log *slog.Logger
	// Map returns the status and JSON body of err in the door's protocol; an error whose code
	// the protocol's table does not know is a 500.
	Map func(err error) (status int, body any)
}

// Write answers err.
func (e Errors) Write(w http.ResponseWriter, r *http.Request, err error) {
	err = named(err)
	if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
		return // the client went away; nobody reads the answer
	}
	status, body := e.Map(err)
	// A full disk is logged once an episode, by the door's StorageMonitor.
	if status >= 500 && atelier.ErrorCode(err) != atelier.ENOSPACE && e.Log != nil {
		e.Log.Error("request failed", "method", r.Method, "path", r.URL.Path, "code", atelier.ErrorCode(err), "err", err)
	}
	WriteJSON(w, status, body)
}

// named gives a code to the errors of the server's own making whose code is no adapter's to
// give: a body over its limit, a full disk an adapter did not name (a temporary file, say).
func named(err error) error {
	var maxErr *http.MaxBytesError
	if errors.As(err, &maxErr) {
		return atelier.Errorf(atelier.ETOOLARGE, "request body is larger than %d bytes", maxErr.Limit)
	}
	return atelier.StorageFull(err)
}

// StatusOf is the status of err by a door's table: the status of its code, 500 for a code the
// table does not have, 200 for no error.
func StatusOf(table map[string]int, err error) int {
	if err == nil {
		return http.StatusOK
	}
	if s, ok := table[atelier.ErrorCode(err)]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// WriteJSON answers v as JSON with the status.
func WriteJSON(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	return json.NewEncoder(w).Encode(v)
}
