package registry

import (
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/atelier-ml/atelier"
)

// The distribution spec's error codes (and the legacy TAG_INVALID).
const (
	BlobUnknown         = "BLOB_UNKNOWN"
	BlobUploadInvalid   = "BLOB_UPLOAD_INVALID"
	BlobUploadUnknown   = "BLOB_UPLOAD_UNKNOWN"
	DigestInvalid       = "DIGEST_INVALID"
	ManifestBlobUnknown = "MANIFEST_BLOB_UNKNOWN"
	ManifestInvalid     = "MANIFEST_INVALID"
	ManifestUnknown     = "MANIFEST_UNKNOWN"
	NameInvalid         = "NAME_INVALID"
	NameUnknown         = "NAME_UNKNOWN"
	SizeInvalid         = "SIZE_INVALID"
	TagInvalid          = "TAG_INVALID"
	Unauthorized        = "UNAUTHORIZED"
	Denied              = "DENIED"
	Unsupported         = "UNSUPPORTED"
	TooManyRequests     = "TOOMANYREQUESTS"
	// Unknown is what distribution answers for a server error; the spec defines codes for 4xx only.
	Unknown = "UNKNOWN"
)

// statusOf is the one table from a code to its usual HTTP status; an Error may override it
// (a chunk out of order is BLOB_UPLOAD_INVALID with 416).
var statusOf = map[string]int{
	BlobUnknown:         http.StatusNotFound,
	BlobUploadInvalid:   http.StatusBadRequest,
	BlobUploadUnknown:   http.StatusNotFound,
	DigestInvalid:       http.StatusBadRequest,
	ManifestBlobUnknown: http.StatusBadRequest,
	ManifestInvalid:     http.StatusBadRequest,
	ManifestUnknown:     http.StatusNotFound,
	NameInvalid:         http.StatusBadRequest,
	NameUnknown:         http.StatusNotFound,
	SizeInvalid:         http.StatusBadRequest,
	TagInvalid:          http.StatusBadRequest,
	Unauthorized:        http.StatusUnauthorized,
	Denied:              http.StatusForbidden,
	Unsupported:         http.StatusMethodNotAllowed,
	TooManyRequests:     http.StatusTooManyRequests,
	Unknown:             http.StatusInternalServerError,
}

// Error is a refusal in the distribution spec's terms.
type Error struct {
	Status  int
	Code    string
	Message string
}

func (e *Error) Error() string {
	return fmt.Sprintf("registry error %s (%d): %s", e.Code, e.Status, e.Message)
}

// errorf returns an Error with code's usual status.
func errorf(code, format string, args ...any) *Error {
	return &Error{Status: statusOf[code], Code: code, Message: fmt.Sprintf(format, args...)}
}

// withStatus overrides the status of e.
func (e *Error) withStatus(status int) *Error {
	e.Status = status
	return e
}

// asRegistryError maps an atelier error from a store or the authorizer onto the spec's codes;
// notFound is the code an ENOTFOUND becomes where it arose (an EINVALID is named where it can
// arise: a manifest's references). Other errors are internal.
func asRegistryError(err error, notFound string) error {
	msg := atelier.ErrorMessage(err)
	switch atelier.ErrorCode(err) {
	case atelier.ENOTFOUND:
		return errorf(notFound, "%s", msg)
	case atelier.EINVALID:
		return errorf(Unsupported, "%s", msg).withStatus(http.StatusBadRequest)
	case atelier.ECONFLICT:
		return errorf(Denied, "%s", msg).withStatus(http.StatusConflict)
	case atelier.EFORBIDDEN:
		return errorf(Denied, "%s", msg)
	case atelier.EUNAUTHORIZED:
		return errorf(Unauthorized, "%s", msg)
	case atelier.ETOOMANY:
		return errorf(TooManyRequests, "%s", msg)
	case atelier.ETOOLARGE:
		return errorf(SizeInvalid, "%s", msg).withStatus(http.StatusRequestEntityTooLarge)
	case atelier.ENOSPACE:
		return errorf(Unknown, "%s", msg).withStatus(http.StatusInsufficientStorage)
	case atelier.EUNAVAILABLE:
		return errorf(Unknown, "%s", msg).withStatus(http.StatusServiceUnavailable)
	}
	return err
}

// writeError answers with the spec's error body. Anything but an *Error is a server error: it is
// logged, and the client learns nothing of it.
func (reg *Registry) writeError(w http.ResponseWriter, r *http.Request, err error) {
	e, ok := err.(*Error)
	if !ok {
		if mapped, isReg := asRegistryError(err, NameUnknown).(*Error); isReg {
			e = mapped
		} else {
			reg.log.Error("registry request failed", "method", r.Method, "path", r.URL.Path, "error", err)
			e = errorf(Unknown, "internal error")
		}
	}
	body, _ := json.Marshal(map[string]any{"errors": []map[string]string{{"code": e.Code, "message": e.Message}}})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", fmt.Sprint(len(body)))
	w.WriteHeader(e.Status)
	if r.Method != http.MethodHead {
		w.Write(body)
	}
}
