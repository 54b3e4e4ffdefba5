package server

import (
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/edge"
	"github.com/atelier-ml/atelier/service"
	"github.com/atelier-ml/atelier/serving"
)

// ServicesPrefix is where the gateway serves web services: /services/<workspace>/<name>/score,
// /swagger.json, /v2/... (the Open Inference Protocol), /invocations (MLflow's).
const ServicesPrefix = "/services/"

// openServices gives the service the local deployment target when bubblewrap is installed, and
// the podman target when podman is.
func (s *Server) openServices(cfg Config) {
	if p, err := exec.LookPath("bwrap"); err == nil {
		s.Service.Bwrap = p
	} else {
		s.log.Info("web services cannot be deployed on the local target: bubblewrap is not installed (apt install bubblewrap)")
	}
	if p, err := exec.LookPath("podman"); err == nil {
		s.Service.Podman = p
	}
	// The replicas these targets run share the machine's cores with the server (see
	// serving.CPUShare), unless GOMAXPROCS is set, by the user, for the server.
	if os.Getenv("GOMAXPROCS") == "" {
		cpus := runtime.GOMAXPROCS(0)
		s.Service.CPUShare = serving.NewCPUShare(cpus, func(procs, replicas int) {
			runtime.GOMAXPROCS(procs)
			s.log.Info("the server's share of the machine's cores changed: "+strconv.Itoa(replicas)+" web service replicas run here",
				"gomaxprocs", procs, "cores", cpus, "replicas", replicas)
		})
	}
}

// serveScoring is the gateway's front door: it authenticates with the service's keys (the
// service layer checks them), not with the workspace's tokens.
func (s *Server) serveScoring(w http.ResponseWriter, r *http.Request) {
	rest := strings.TrimPrefix(r.URL.Path, ServicesPrefix)
	ws, rest, ok1 := strings.Cut(rest, "/")
	name, sub, ok2 := strings.Cut(rest, "/")
	if !ok1 || ws == "" || name == "" {
		http.Error(w, `{"error": {"code": 404, "message": "a service's address is /services/WORKSPACE/NAME/score"}}`, http.StatusNotFound)
		return
	}
	path := "/" + sub
	if !ok2 {
		path = "/"
	}
	auth := edge.Authenticator{Auth: s.Service}
	s.Service.ServeScoring(w, r, service.ScoringRequest{Workspace: ws, Name: name, Path: path,
		Authenticate: func() (*atelier.Principal, error) { return auth.Authenticate(r) }})
}

// serveMetrics serves /metrics in Prometheus' text format: the web services of the workspaces
// the caller (a token, as for the API) may read.
func (s *Server) serveMetrics(w http.ResponseWriter, r *http.Request) {
	p, err := edge.Authenticator{Auth: s.Service}.Authenticate(r)
	if err == nil && p == nil {
		err = atelier.Errorf(atelier.EUNAUTHORIZED, "authentication required: send 'Authorization: Bearer TOKEN' (Prometheus: authorization.credentials)")
	}
	if err != nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="atelier"`)
		s.API.WriteError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	if err := s.Service.WriteServiceMetrics(atelier.NewContextWithPrincipal(r.Context(), p), w); err != nil {
		s.API.WriteError(w, r, err)
	}
}
