package edge_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/edge"
)

// tokens is an AuthService of fixed tokens; "" is refused, as a server with tokens does.
type tokens map[string]*atelier.Principal

func (t tokens) Authenticate(_ context.Context, bearer string) (*atelier.Principal, error) {
	if p := t[bearer]; p != nil {
		return p, nil
	}
	return nil, atelier.Errorf(atelier.EUNAUTHORIZED, "invalid or missing token")
}

var alice = &atelier.Principal{Kind: atelier.PrincipalUser, Name: "alice", TokenID: "t1"}

func TestAuthenticate(t *testing.T) {
	a := edge.Authenticator{Auth: tokens{"atl_alice": alice, "atl_session": alice}}
	basic := func(scheme, token string) string {
		return scheme + " " + base64.StdEncoding.EncodeToString([]byte("me:"+token))
	}
	for _, tc := range []struct {
		name, method, auth, cookie, csrf, form string
		code                                   string // "" when alice is authenticated
		msg                                    string
	}{
		{name: "bearer", method: "GET", auth: "Bearer atl_alice"},
		{name: "bearer any case", method: "POST", auth: "bEaReR  atl_alice"},
		{name: "basic", method: "GET", auth: basic("Basic", "atl_alice")},
		{name: "basic any case", method: "POST", auth: basic("BASIC", "atl_alice")},
		{name: "wrong token", method: "GET", auth: "Bearer atl_nope", code: atelier.EUNAUTHORIZED},
		{name: "other scheme", method: "GET", auth: "Token atl_alice", code: atelier.EUNAUTHORIZED, msg: `"Token"`},
		{name: "basic not base64", method: "GET", auth: "basic %%%", code: atelier.EUNAUTHORIZED, msg: "base64"},
		{name: "nothing", method: "GET", code: atelier.EUNAUTHORIZED},
		{name: "session read", method: "GET", cookie: "atl_session"},
		{name: "session write without CSRF", method: "POST", cookie: "atl_session", code: atelier.EFORBIDDEN, msg: "CSRF"},
		{name: "session write, wrong CSRF", method: "DELETE", cookie: "atl_session", csrf: edge.CSRFToken("other"), code: atelier.EFORBIDDEN},
		{name: "session write with CSRF", method: "POST", cookie: "atl_session", csrf: edge.CSRFToken("atl_session")},
		{name: "session form with CSRF", method: "POST", cookie: "atl_session", form: edge.CSRFToken("atl_session")},
		{name: "wrong session", method: "GET", cookie: "atl_nope", code: atelier.EUNAUTHORIZED},
		{name: "header before cookie", method: "POST", auth: "Bearer atl_alice", cookie: "atl_session"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var body io.Reader
			if tc.form != "" {
				body = strings.NewReader(url.Values{edge.CSRFFormField: {tc.form}}.Encode())
			}
			r := httptest.NewRequest(tc.method, "/x", body)
			if tc.form != "" {
				r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			}
			if tc.auth != "" {
				r.Header.Set("Authorization", tc.auth)
			}
			if tc.cookie != "" {
				r.AddCookie(&http.Cookie{Name: edge.SessionCookie, Value: tc.cookie})
			}
			if tc.csrf != "" {
				r.Header.Set(edge.CSRFHeader, tc.csrf)
			}
			p, err := a.Authenticate(r)
			if code := atelier.ErrorCode(err); code != tc.code || !strings.Contains(atelier.ErrorMessage(err), tc.msg) {
				t.Fatalf("error %v, want code %q saying %q", err, tc.code, tc.msg)
			}
			if tc.code == "" && p != alice {
				t.Errorf("principal %+v, want alice", p)
			}
		})
	}
}

// auditLog is an Auditor that keeps what it is given.
type auditLog struct {
	mu      sync.Mutex
	entries []atelier.AuditEntry
}

func (l *auditLog) RecordAudit(_ context.Context, e *atelier.AuditEntry) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.entries = append(l.entries, *e)
}

// storage is a StorageMonitor that keeps what it observes.
type storage struct{ observed []error }

func (s *storage) Observe(err error) { s.observed = append(s.observed, err) }

// storeWrite is a store's write: it takes the request's pending audit entry into its
// transaction (stored under id 7) when it commits.
func storeWrite(ctx context.Context, commits bool) {
	p := atelier.AuditFromContext(ctx)
	if p == nil {
		return
	}
	if _, ok := p.Claim(); ok {
		if commits {
			p.Release(7)
		} else {
			p.Release(0)
		}
	}
}

type errorBody struct{ Code, Message string }

func TestServe(t *testing.T) {
	var logged bytes.Buffer
	errs := edge.Errors{Log: slog.New(slog.NewTextHandler(&logged, nil)), Map: func(err error) (int, any) {
		return edge.StatusOf(map[string]int{atelier.EINVALID: 400, atelier.EUNAUTHORIZED: 401, atelier.ETOOLARGE: 413, atelier.ENOSPACE: 507}, err),
			errorBody{atelier.ErrorCode(err), atelier.ErrorMessage(err)}
	}}
	for _, tc := range []struct {
		name    string
		call    edge.Call
		auth    string
		handler func(w http.ResponseWriter, r *http.Request) error
		status  int
		code    string
		audit   []atelier.AuditEntry // the entries recorded apart from the write
		observe []string             // the codes Storage is told ("" for a write that stored)
	}{
		{name: "read", call: edge.Call{}, handler: func(w http.ResponseWriter, r *http.Request) error {
			if atelier.PrincipalFromContext(r.Context()) != alice {
				return errors.New("no principal")
			}
			return edge.WriteJSON(w, 200, "ok")
		}, status: 200},
		{name: "write stored with its entry", call: edge.Call{Write: true, Workspace: "ws"}, handler: func(w http.ResponseWriter, r *http.Request) error {
			storeWrite(r.Context(), true)
			return edge.WriteJSON(w, 200, "ok")
		}, status: 200, observe: []string{""}},
		{name: "write stored, other status", call: edge.Call{Write: true, Workspace: "ws"}, handler: func(w http.ResponseWriter, r *http.Request) error {
			storeWrite(r.Context(), true)
			w.WriteHeader(http.StatusNoContent)
			return nil
		}, status: 204, audit: []atelier.AuditEntry{{ID: 7, Workspace: "ws", Status: 204}}, observe: []string{""}},
		{name: "write whose transaction failed", call: edge.Call{Write: true}, handler: func(w http.ResponseWriter, r *http.Request) error {
			storeWrite(r.Context(), false)
			return atelier.Errorf(atelier.EINVALID, "bad")
		}, status: 400, code: atelier.EINVALID, audit: []atelier.AuditEntry{{Status: 400}}, observe: []string{atelier.EINVALID}},
		{name: "full disk named here", call: edge.Call{Write: true}, handler: func(w http.ResponseWriter, r *http.Request) error {
			return &fsError{}
		}, status: 507, code: atelier.ENOSPACE, audit: []atelier.AuditEntry{{Status: 507}}, observe: []string{atelier.ENOSPACE}},
		{name: "internal cause logged, not shown", call: edge.Call{}, handler: func(w http.ResponseWriter, r *http.Request) error {
			return atelier.Wrap(errors.New("secret detail"), "reading the thing")
		}, status: 500, code: atelier.EINTERNAL, observe: []string{atelier.EINTERNAL}},
		{name: "body too large", call: edge.Call{Write: true}, handler: func(w http.ResponseWriter, r *http.Request) error {
			_, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 2))
			return err
		}, status: 413, code: atelier.ETOOLARGE, audit: []atelier.AuditEntry{{Status: 413}}, observe: []string{atelier.ETOOLARGE}},
		{name: "unauthenticated", call: edge.Call{Write: true}, auth: "Bearer atl_nope", status: 401, code: atelier.EUNAUTHORIZED},
		{name: "public write", call: edge.Call{Public: true, Write: true}, auth: "-", handler: func(w http.ResponseWriter, r *http.Request) error {
			if atelier.PrincipalFromContext(r.Context()) != nil || atelier.AuditFromContext(r.Context()) != nil {
				return errors.New("a public request has a principal or an audit")
			}
			return edge.WriteJSON(w, 200, "ok")
		}, status: 200, observe: []string{""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			logged.Reset()
			log, st := &auditLog{}, &storage{}
			d := edge.Door{Auth: edge.Authenticator{Auth: tokens{"atl_alice": alice}}, Errors: errs, Audit: log, Storage: st}
			r := httptest.NewRequest("POST", "/things", strings.NewReader("a body"))
			r.RemoteAddr = "192.0.2.1:5555"
			switch tc.auth {
			case "":
				r.Header.Set("Authorization", "Bearer atl_alice")
			case "-":
			default:
				r.Header.Set("Authorization", tc.auth)
			}
			w := httptest.NewRecorder()
			d.Serve(w, r, tc.call, tc.handler)
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.status, w.Body)
			}
			if tc.code != "" {
				var b errorBody
				if err := json.Unmarshal(w.Body.Bytes(), &b); err != nil || b.Code != tc.code || strings.Contains(b.Message, "secret") {
					t.Errorf("body %s (%v), want code %s and no internal detail", w.Body, err, tc.code)
				}
			}
			if tc.status == 401 && w.Header().Get("WWW-Authenticate") == "" {
				t.Errorf("a 401 without WWW-Authenticate")
			}
			for i := range tc.audit {
				tc.audit[i].User, tc.audit[i].Kind, tc.audit[i].TokenID = "alice", atelier.PrincipalUser, "t1"
				tc.audit[i].Method, tc.audit[i].Path, tc.audit[i].Remote = "POST", "/things", "192.0.2.1"
			}
			if len(log.entries) != len(tc.audit) || len(tc.audit) > 0 && log.entries[0] != tc.audit[0] {
				t.Errorf("recorded %+v, want %+v", log.entries, tc.audit)
			}
			var observed []string
			for _, err := range st.observed {
				observed = append(observed, atelier.ErrorCode(err))
			}
			if strings.Join(observed, ",") != strings.Join(tc.observe, ",") {
				t.Errorf("storage observed %q, want %q", observed, tc.observe)
			}
			if internal := strings.Contains(logged.String(), "secret detail"); internal != (tc.code == atelier.EINTERNAL) ||
				internal && !strings.Contains(logged.String(), "path=/things") {
				t.Errorf("log %q: the cause of an internal error (only) is logged, with the path", logged.String())
			}
		})
	}
}

// fsError is what the operating system says of a full disk.
type fsError struct{}

func (*fsError) Error() string { return "write /data/x: no space left on device" }
func (*fsError) Unwrap() error { return syscall.ENOSPC }

// A client that went away is not answered, nor is its cancellation logged.
func TestErrorsClientGone(t *testing.T) {
	var logged bytes.Buffer
	errs := edge.Errors{Log: slog.New(slog.NewTextHandler(&logged, nil)), Map: func(err error) (int, any) { return 500, nil }}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	w := httptest.NewRecorder()
	errs.Write(w, httptest.NewRequest("GET", "/x", nil).WithContext(ctx), context.Canceled)
	if w.Body.Len() != 0 || logged.Len() != 0 {
		t.Errorf("answered %q, logged %q", w.Body, logged.String())
	}
}

// StatusWriter keeps what the response it wraps can do: stream (Flush, and through
// http.ResponseController), and take a file by ReadFrom (sendfile).
func TestStatusWriterKeepsTheResponse(t *testing.T) {
	first := make(chan struct{})
	var readFrom bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &edge.StatusWriter{ResponseWriter: w}
		_, readFrom = any(sw).(io.ReaderFrom)
		io.WriteString(sw, "first\n")
		if err := http.NewResponseController(sw).Flush(); err != nil {
			t.Errorf("flush through the controller: %v", err)
		}
		<-first // the client has read the first line before the handler ends
		if _, err := io.Copy(sw, strings.NewReader("second\n")); err != nil {
			t.Error(err)
		}
		if sw.Status != http.StatusOK {
			t.Errorf("status %d", sw.Status)
		}
	}))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	line := make([]byte, len("first\n"))
	if _, err := io.ReadFull(resp.Body, line); err != nil || string(line) != "first\n" {
		t.Fatalf("first line %q, %v", line, err)
	}
	close(first)
	rest, _ := io.ReadAll(resp.Body)
	if string(rest) != "second\n" || !readFrom {
		t.Errorf("rest %q, ReadFrom %v", rest, readFrom)
	}
}
