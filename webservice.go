package atelier

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// A web service serves an image (models + score.py) as an HTTP scoring endpoint: replicas of
// the image run on a deployment target, behind the gateway at /services/<workspace>/<name>/,
// which authenticates callers with the service's keys, balances requests over ready replicas,
// queues them while all are busy and scales the replicas with the load. A service is desired
// state: stored, then reconciled by the server holding its lease (kind "service"), so it comes
// back after a restart.
type WebService struct {
	Workspace   string            `json:"workspace"`
	Name        string            `json:"name"`
	Description string            `json:"description,omitempty"`
	Tags        map[string]string `json:"tags"`
	// Target is the deployment target: local (replica processes on the server's machine),
	// podman (containers), or the name of a kubernetes compute target of the workspace.
	Target string `json:"target"`
	// Images are the images the service serves and each one's share of the traffic in percent
	// (one image at 100 %, or two while traffic is split between versions).
	Images []ServiceImage   `json:"images"`
	Config WebServiceConfig `json:"config"`
	State  WebServiceState  `json:"state"`
	Error  string           `json:"error,omitempty"`
	// Replicas is the live state of the replicas (filled by the server running the service).
	Replicas ReplicaCounts `json:"replicas"`
	// Events are the service's last replica and scale events on the server running it, oldest
	// first.
	Events []ServiceEvent `json:"events,omitempty"`
	// ScoringURI and SwaggerURI are the gateway's addresses of the service (from the server's URL).
	ScoringURI string `json:"scoring_uri,omitempty"`
	SwaggerURI string `json:"swagger_uri,omitempty"`

	CreatedBy string    `json:"created_by"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// ServiceImage is one image a service serves, with its share of the traffic.
type ServiceImage struct {
	Image   string `json:"image"` // name:version
	Percent int    `json:"percent"`
}

// ReplicaCounts says how many replicas a service has: wanted, started and ready, busy.
type ReplicaCounts struct {
	Desired int `json:"desired"`
	Ready   int `json:"ready"`
	Busy    int `json:"busy"`
	// Queued is how many requests wait for a replica.
	Queued int `json:"queued"`
}

// WebServiceState is where a service is, as Azure ML names it.
type WebServiceState string

const (
	ServiceTransitioning WebServiceState = "Transitioning" // being deployed or updated
	ServiceHealthy       WebServiceState = "Healthy"
	ServiceUnhealthy     WebServiceState = "Unhealthy" // deployed, but fewer replicas ready than wanted
	ServiceFailed        WebServiceState = "Failed"    // could not be deployed: Error says why
)

// WebServiceConfig is how a service is run, with Azure ML's deployment configuration's names
// and defaults.
type WebServiceConfig struct {
	// Replicas is the number of replicas when autoscaling is off.
	Replicas int `json:"replicas"`
	// Autoscale: utilization (busy replicas / ready replicas) is measured every
	// RefreshSeconds; above TargetUtilization replicas are added at once, below it they are
	// removed after ScaleDownDelaySeconds of lower load. MinReplicas 0 scales to zero: the
	// first request then waits for a replica to start.
	AutoscaleEnabled      bool `json:"autoscale_enabled"`
	MinReplicas           int  `json:"autoscale_min_replicas"`
	MaxReplicas           int  `json:"autoscale_max_replicas"`
	TargetUtilization     int  `json:"autoscale_target_utilization"`
	RefreshSeconds        int  `json:"autoscale_refresh_seconds"`
	ScaleDownDelaySeconds int  `json:"autoscale_scale_down_delay_seconds"`
	// MaxConcurrentRequestsPerReplica is how many requests a replica gets at once.
	MaxConcurrentRequestsPerReplica int `json:"replica_max_concurrent_requests"`
	// MaxRequestWaitMs is how long a request waits for a free replica before a 503.
	MaxRequestWaitMs int `json:"max_request_wait_time"`
	// ScoringTimeoutMs is how long run() may take before a 504 (and the replica is recycled).
	ScoringTimeoutMs int `json:"scoring_timeout_ms"`
	// AuthEnabled asks for a service key; TokenAuthEnabled for a workspace token instead.
	// With neither, anyone who reaches the gateway may score.
	AuthEnabled      bool `json:"auth_enabled"`
	TokenAuthEnabled bool `json:"token_auth_enabled"`
	// CollectModelData lets score.py's ModelDataCollector write inputs and predictions to the
	// workspace's default datastore, and keeps request bodies in the request log.
	CollectModelData bool    `json:"collect_model_data"`
	CPUCores         float64 `json:"cpu_cores,omitempty"`
	MemoryGB         float64 `json:"memory_gb,omitempty"`
	// ReplicaStart is how the local target starts a replica: fork (the default) forks it from a
	// template that imported score.py once; process starts a Python of its own, for a score.py
	// whose imports do not survive a fork. Other targets start a process (a container, a pod).
	ReplicaStart string `json:"replica_start,omitempty"`
}

// How replicas start (WebServiceConfig.ReplicaStart).
const (
	ReplicaFork    = "fork"
	ReplicaProcess = "process"
)

// Defaults of a service's configuration (Azure ML's).
const (
	DefaultTargetUtilization     = 70
	DefaultRefreshSeconds        = 1
	DefaultScaleDownDelaySeconds = 60
	DefaultMaxRequestWaitMs      = 500
	DefaultScoringTimeoutMs      = 60000
	MaxServiceReplicas           = 100
)

// Fill sets the defaults of what is unset.
func (c *WebServiceConfig) Fill() {
	if c.AutoscaleEnabled {
		if c.MaxReplicas == 0 {
			c.MaxReplicas = max(c.MinReplicas, 10)
		}
	} else if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.TargetUtilization == 0 {
		c.TargetUtilization = DefaultTargetUtilization
	}
	if c.RefreshSeconds == 0 {
		c.RefreshSeconds = DefaultRefreshSeconds
	}
	if c.ScaleDownDelaySeconds == 0 {
		c.ScaleDownDelaySeconds = DefaultScaleDownDelaySeconds
	}
	if c.MaxConcurrentRequestsPerReplica == 0 {
		c.MaxConcurrentRequestsPerReplica = 1
	}
	if c.MaxRequestWaitMs == 0 {
		c.MaxRequestWaitMs = DefaultMaxRequestWaitMs
	}
	if c.ScoringTimeoutMs == 0 {
		c.ScoringTimeoutMs = DefaultScoringTimeoutMs
	}
}

// Validate checks a filled configuration.
func (c *WebServiceConfig) Validate() error {
	bad := func(format string, a ...any) error { return Errorf(EINVALID, format, a...) }
	switch {
	case c.Replicas < 0 || c.Replicas > MaxServiceReplicas:
		return bad("replicas must be from 1 to %d, not %d", MaxServiceReplicas, c.Replicas)
	case c.AutoscaleEnabled && (c.MinReplicas < 0 || c.MaxReplicas < 1 || c.MinReplicas > c.MaxReplicas || c.MaxReplicas > MaxServiceReplicas):
		return bad("autoscale replicas %d,%d: give min,max with 0 <= min <= max, 1 <= max <= %d", c.MinReplicas, c.MaxReplicas, MaxServiceReplicas)
	case c.TargetUtilization < 1 || c.TargetUtilization > 100:
		return bad("autoscale_target_utilization must be a percentage from 1 to 100, not %d", c.TargetUtilization)
	case c.RefreshSeconds < 1 || c.RefreshSeconds > 3600:
		return bad("autoscale_refresh_seconds must be from 1 to 3600, not %d", c.RefreshSeconds)
	case c.ScaleDownDelaySeconds < 0 || c.ScaleDownDelaySeconds > 86400:
		return bad("autoscale_scale_down_delay_seconds must be from 0 to 86400, not %d", c.ScaleDownDelaySeconds)
	case c.MaxConcurrentRequestsPerReplica < 1 || c.MaxConcurrentRequestsPerReplica > 1000:
		return bad("replica_max_concurrent_requests must be from 1 to 1000, not %d", c.MaxConcurrentRequestsPerReplica)
	case c.MaxRequestWaitMs < 0 || c.MaxRequestWaitMs > 3600_000:
		return bad("max_request_wait_time must be from 0 to 3600000 ms, not %d", c.MaxRequestWaitMs)
	case c.ScoringTimeoutMs < 1 || c.ScoringTimeoutMs > 3600_000:
		return bad("scoring_timeout_ms must be from 1 to 3600000, not %d", c.ScoringTimeoutMs)
	case c.AuthEnabled && c.TokenAuthEnabled:
		return bad("give auth_enabled (keys) or token_auth_enabled (tokens), not both")
	case c.CPUCores < 0 || c.MemoryGB < 0:
		return bad("cpu_cores and memory_gb cannot be negative")
	case c.ReplicaStart != "" && c.ReplicaStart != ReplicaFork && c.ReplicaStart != ReplicaProcess:
		return bad("replica_start must be %s or %s, not %q", ReplicaFork, ReplicaProcess, c.ReplicaStart)
	}
	return nil
}

// WebServiceDeploy asks for a service to be deployed (or, in UpdateWebService, changed: the
// fields given replace the service's).
type WebServiceDeploy struct {
	Name        string            `json:"name"`
	Description string            `json:"description,omitempty"`
	Tags        map[string]string `json:"tags,omitempty"`
	Target      string            `json:"target,omitempty"`
	// Image is the image to serve: name:version, or name (its latest version). Images splits
	// the traffic between two (each name:version=percent); give one or the other.
	Image  string            `json:"image,omitempty"`
	Images []ServiceImage    `json:"images,omitempty"`
	Config *WebServiceConfig `json:"config,omitempty"`
}

// ParseTrafficSplit parses "img:2=10" (10 % to img:2, the rest to the service's other image).
func ParseTrafficSplit(s string) (ServiceImage, error) {
	ref, pct, ok := strings.Cut(s, "=")
	n, err := strconv.Atoi(pct)
	if !ok || err != nil || n < 0 || n > 100 {
		return ServiceImage{}, Errorf(EINVALID, "invalid traffic split %q: give IMAGE:VERSION=PERCENT, e.g. diabetes-svc:2=10", s)
	}
	if _, err := ParseImageRef(ref); err != nil {
		return ServiceImage{}, err
	}
	return ServiceImage{Image: ref, Percent: n}, nil
}

// ValidateTraffic checks a service's images: one or two distinct name:version images whose
// shares add up to 100.
func ValidateTraffic(images []ServiceImage) error {
	if len(images) == 0 || len(images) > 2 {
		return Errorf(EINVALID, "a service serves one image, or two while its traffic is split (got %d)", len(images))
	}
	sum := 0
	for i, im := range images {
		ref, err := ParseImageRef(im.Image)
		if err != nil {
			return err
		}
		if ref.Version == 0 {
			return Errorf(EINVALID, "image %q: give its version (name:version)", im.Image)
		}
		if im.Percent < 0 || im.Percent > 100 {
			return Errorf(EINVALID, "image %s: a traffic share is a percentage from 0 to 100, not %d", im.Image, im.Percent)
		}
		if i == 1 && images[0].Image == im.Image {
			return Errorf(EINVALID, "image %s is listed twice", im.Image)
		}
		sum += im.Percent
	}
	if sum != 100 {
		return Errorf(EINVALID, "the traffic shares of the images add up to %d %%, not 100 %%", sum)
	}
	return nil
}

// ServiceEvent is something that happened to a service's replicas: a replica started, failed,
// exited or was recycled, or the autoscaler changed their number.
type ServiceEvent struct {
	Time    time.Time `json:"time"`
	Kind    string    `json:"kind"` // replica.started, replica.failed, replica.exited, replica.recycled, replica.stopped, scale
	Message string    `json:"message"`
}

// ServiceKeys are a service's two keys: either authenticates a scoring request, so one can be
// regenerated while clients still use the other.
type ServiceKeys struct {
	Primary   string `json:"primary_key"`
	Secondary string `json:"secondary_key"`
}

// WebServiceStore keeps web services. Keys are kept sealed (the service layer seals them).
type WebServiceStore interface {
	// CreateWebService stores a new service (ECONFLICT when the name is taken), recording that
	// it uses its images' models.
	CreateWebService(ctx context.Context, workspace string, svc *WebService, sealedKeys []byte) error
	FindWebService(ctx context.Context, workspace, name string) (*WebService, error)
	// ListWebServices lists a workspace's services by name; workspace "" lists every
	// workspace's (for the controllers).
	ListWebServices(ctx context.Context, workspace string) ([]*WebService, error)
	// UpdateWebService replaces a service's images, configuration, description, tags, state
	// and error.
	UpdateWebService(ctx context.Context, workspace string, svc *WebService) error
	// SetWebServiceState records where a service is (the controller's view); it leaves
	// updated_at, which marks changes of what is wanted, alone.
	SetWebServiceState(ctx context.Context, workspace, name string, state WebServiceState, msg string) error
	WebServiceKeys(ctx context.Context, workspace, name string) ([]byte, error)
	SetWebServiceKeys(ctx context.Context, workspace, name string, sealed []byte) error
	DeleteWebService(ctx context.Context, workspace, name string) error
}

// LeaseKindService is the kind of the leases of deployed web services.
const LeaseKindService = "service"

// ServiceLeaseID names a service's lease.
func ServiceLeaseID(workspace, name string) string { return workspace + "/" + name }

// ServiceImageRef parses a ServiceImage's image.
func (si ServiceImage) Ref() ImageRef {
	ref, _ := ParseImageRef(si.Image)
	return ref
}

func (si ServiceImage) String() string { return fmt.Sprintf("%s=%d%%", si.Image, si.Percent) }

// ValidateServiceName checks a web service's name as Azure ML does (and as a Kubernetes object
// name must be): 3 to 32 lowercase letters, digits and '-', starting with a letter, not ending
// with '-'.
func ValidateServiceName(name string) error {
	ok := len(name) >= 3 && len(name) <= 32 && name[0] >= 'a' && name[0] <= 'z' && name[len(name)-1] != '-'
	for i := 0; ok && i < len(name); i++ {
		c := name[i]
		ok = c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-'
	}
	if !ok {
		return Errorf(EINVALID, "invalid web service name %q: use 3-32 lowercase letters, digits and '-', starting with a letter and not ending with '-'", name)
	}
	return nil
}

// WebServiceService deploys and keeps a workspace's web services.
type WebServiceService interface {
	DeployWebService(ctx context.Context, workspace string, d WebServiceDeploy) (*WebService, error)
	// UpdateWebService changes a service (d.Name names it); unset fields are kept.
	UpdateWebService(ctx context.Context, workspace string, d WebServiceDeploy) (*WebService, error)
	FindWebService(ctx context.Context, workspace, name string) (*WebService, error)
	ListWebServices(ctx context.Context, workspace string) ([]*WebService, error)
	DeleteWebService(ctx context.Context, workspace, name string) error
	// WebServiceKeys returns the keys, after regenerating one ("primary", "secondary") if asked.
	WebServiceKeys(ctx context.Context, workspace, name, regenerate string) (ServiceKeys, error)
	// WebServiceLog writes the service's log from offset and returns the offset after it.
	WebServiceLog(ctx context.Context, workspace, name string, offset int64, w io.Writer) (int64, error)
}
