package slurm

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/atelier-ml/atelier"
)

// APIVersion is the slurmrestd OpenAPI plugin the driver speaks: the newest that Slurm 22.05
// (Debian 12) serves, also served by 23.02 and 23.11 (slurmrestd -s openapi/v0.0.38).
const APIVersion = "v0.0.38"

// Slurm error numbers the driver tells apart (slurm_errno.h).
const (
	errInvalidJobID     = 2017 // ESLURM_INVALID_JOB_ID: not (or no longer) known to slurmctld
	errInvalidPartition = 2000 // ESLURM_INVALID_PARTITION_NAME
	errAlreadyDone      = 2021 // ESLURM_ALREADY_DONE: the job has ended
)

// rest is a slurmrestd reached with a JWT for one compute target.
type rest struct {
	target string // the compute target's name, for messages
	base   string // slurmrestd's URL, without a trailing slash
	user   string // the token's user ("sun" claim)
	token  string
	http   *http.Client
}

// slurmError is one entry of a response's errors.
type slurmError struct {
	Error       string `json:"error"`
	ErrorNumber int    `json:"error_number"`
	Errno       int    `json:"errno"`
	Description string `json:"description"`
	Source      string `json:"source"`
}

func (e slurmError) number() int {
	if e.ErrorNumber != 0 {
		return e.ErrorNumber
	}
	return e.Errno
}

func (e slurmError) String() string {
	parts := []string{}
	for _, s := range []string{e.Description, e.Error} {
		if s != "" && !contains(parts, s) {
			parts = append(parts, s)
		}
	}
	if e.Source != "" {
		parts = append(parts, "in "+e.Source)
	}
	return strings.Join(parts, ", ")
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// apiError is a response slurmrestd answered with errors.
type apiError struct {
	status int
	errors []slurmError
}

func (e *apiError) Error() string {
	var msgs []string
	for _, s := range e.errors {
		msgs = append(msgs, s.String())
	}
	if len(msgs) == 0 {
		return fmt.Sprintf("HTTP %d", e.status)
	}
	return strings.Join(msgs, "; ")
}

// has reports whether the response carries Slurm error number n.
func (e *apiError) has(n int) bool {
	for _, s := range e.errors {
		if s.number() == n {
			return true
		}
	}
	return false
}

// claims reads a JWT's payload without checking its signature (slurmctld does): the user it
// names and when it expires.
func claims(token string) (user string, expires time.Time, err error) {
	parts := strings.Split(strings.TrimSpace(token), ".")
	if len(parts) != 3 {
		return "", expires, errors.New("the token is not a JWT (three base64 parts separated by dots), as `scontrol token` prints after SLURM_JWT=")
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return "", expires, errors.New("the token's payload is not base64url: it is not a JWT")
	}
	var c struct {
		Sun string   `json:"sun"`
		Exp *float64 `json:"exp"`
	}
	if err := json.Unmarshal(payload, &c); err != nil {
		return "", expires, errors.New("the token's payload is not JSON: it is not a JWT")
	}
	if c.Sun == "" {
		return "", expires, errors.New("the token names no Slurm user (no \"sun\" claim): make one with `scontrol token username=USER`")
	}
	if c.Exp != nil {
		expires = time.Unix(int64(*c.Exp), 0).UTC()
	}
	return c.Sun, expires, nil
}

// newREST returns the client of a slurm target; the token must name its user.
func newREST(hc *http.Client, t *atelier.ComputeTarget, token string) (*rest, error) {
	if t.Slurm == nil {
		return nil, atelier.Errorf(atelier.EINVALID, "compute target %s has no slurm configuration", t.Name)
	}
	if token == "" {
		return nil, atelier.Errorf(atelier.EINVALID, "compute target %s has no token for slurmrestd (slurm.token_secret or credentials.token)", t.Name)
	}
	user, _, err := claims(token)
	if err != nil {
		return nil, atelier.Errorf(atelier.EINVALID, "compute target %s: %v", t.Name, err)
	}
	return &rest{target: t.Name, base: strings.TrimRight(t.Slurm.URL, "/"), user: user, token: strings.TrimSpace(token), http: hc}, nil
}

// do sends a request to /slurm/<APIVersion>/<path> and decodes the answer into out. A
// response with errors is an *apiError (whatever its HTTP status); an unreachable server or
// an answer that is not slurmrestd's is an EUNAVAILABLE error.
func (r *rest) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	u := r.base + "/slurm/" + APIVersion + "/" + path
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return atelier.Errorf(atelier.EINVALID, "compute target %s: slurm.url: %v", r.target, err)
	}
	req.Header.Set("X-SLURM-USER-NAME", r.user)
	req.Header.Set("X-SLURM-USER-TOKEN", r.token)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := r.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return atelier.Errorf(atelier.EUNAVAILABLE, "compute target %s: slurmrestd at %s did not answer in time", r.target, r.base)
		}
		var op *net.OpError
		var ue *url.Error
		msg := err.Error()
		if errors.As(err, &op) {
			msg = op.Err.Error()
		} else if errors.As(err, &ue) {
			msg = ue.Err.Error()
		}
		return atelier.Errorf(atelier.EUNAVAILABLE, "compute target %s: cannot reach slurmrestd at %s: %s", r.target, r.base, msg)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return atelier.Errorf(atelier.EUNAVAILABLE, "compute target %s: reading slurmrestd's answer: %v", r.target, err)
	}
	switch resp.StatusCode {
	case http.StatusUnauthorized, http.StatusForbidden:
		return atelier.Errorf(atelier.EINVALID, "compute target %s: slurmrestd at %s refused the token for user %q (HTTP %d %s): is it started with -a rest_auth/jwt, and is the token one of this cluster's?",
			r.target, r.base, r.user, resp.StatusCode, strings.TrimSpace(string(data)))
	case http.StatusNotFound:
		if !bytes.Contains(data, []byte(`"errors"`)) {
			return atelier.Errorf(atelier.EINVALID, "compute target %s: %s does not serve Slurm's REST API %s (HTTP 404 for %s): start slurmrestd with -s openapi/%s",
				r.target, r.base, APIVersion, req.URL.Path, APIVersion)
		}
	}
	var envelope struct {
		Errors []slurmError `json:"errors"`
	}
	if err := json.Unmarshal(data, &envelope); err != nil {
		return atelier.Errorf(atelier.EUNAVAILABLE, "compute target %s: %s answered HTTP %d with something that is not slurmrestd's JSON: %.200s",
			r.target, r.base, resp.StatusCode, strings.TrimSpace(string(data)))
	}
	if len(envelope.Errors) > 0 || resp.StatusCode >= 300 {
		return &apiError{status: resp.StatusCode, errors: envelope.Errors}
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return atelier.Errorf(atelier.EUNAVAILABLE, "compute target %s: decoding slurmrestd's answer to %s %s: %v", r.target, method, path, err)
		}
	}
	return nil
}

// jobInfo is what the driver reads of a job (v0.0.38 job_response_properties).
type jobInfo struct {
	JobID       int    `json:"job_id"`
	JobState    string `json:"job_state"`
	StateReason string `json:"state_reason"`
	ExitCode    int    `json:"exit_code"` // the batch script's wait status
	StartTime   int64  `json:"start_time"`
	BatchHost   string `json:"batch_host"`
	Nodes       string `json:"nodes"`
	TimeLimit   int    `json:"time_limit"` // minutes
	SubmitTime  int64  `json:"submit_time"`
}

// job reads a job; nil when slurmctld does not know it (never did, or forgot it MinJobAge
// after it ended).
func (r *rest) job(ctx context.Context, id int) (*jobInfo, error) {
	var resp struct {
		Jobs []jobInfo `json:"jobs"`
	}
	err := r.do(ctx, http.MethodGet, fmt.Sprintf("job/%d", id), nil, &resp)
	var ae *apiError
	if errors.As(err, &ae) && ae.has(errInvalidJobID) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	for i := range resp.Jobs {
		if resp.Jobs[i].JobID == id {
			return &resp.Jobs[i], nil
		}
	}
	return nil, nil
}

// jobs reads every job slurmctld knows.
func (r *rest) jobs(ctx context.Context) ([]jobInfo, error) {
	var resp struct {
		Jobs []jobInfo `json:"jobs"`
	}
	if err := r.do(ctx, http.MethodGet, "jobs", nil, &resp); err != nil {
		return nil, err
	}
	return resp.Jobs, nil
}

// exitCode reads a wait status as a shell does: the exit code, or 128 plus the signal.
func exitCode(status int) int {
	if sig := status & 0x7f; sig != 0 {
		return 128 + sig
	}
	return (status >> 8) & 0xff
}
