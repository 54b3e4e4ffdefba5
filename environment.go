package atelier

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"regexp"
	"strings"
	"time"
)

// An environment is a registered, versioned definition of what a run or an image needs to run
// (Azure ML v1's Environment: Python packages, conda or pip requirements, variables, a base
// image). The server keeps the definition as the client gives it (a JSON object) with the hash
// of its canonical form: registering the definition a name already holds at its latest version
// gives that version back, and a run configured with the same definition inline resolves to
// the same environment build (the cache is keyed by content, not by name).

// Limits of environments.
const (
	MaxEnvironmentSpec = 1 << 20 // bytes of JSON
	// ReservedEnvironmentPrefix starts the names of Azure ML's curated environments, which
	// cannot be registered (compared without case).
	ReservedEnvironmentPrefix = "AzureML-"
)

// Environment is one version of a registered environment.
type Environment struct {
	Workspace   string            `json:"workspace"`
	Name        string            `json:"name"`
	Version     int               `json:"version"`
	Spec        json.RawMessage   `json:"spec"`
	SpecHash    string            `json:"spec_hash"`
	Description string            `json:"description"`
	Tags        map[string]string `json:"tags"`
	CreatedBy   string            `json:"created_by"`
	CreatedAt   time.Time         `json:"created_at"`
}

// EnvironmentRegister is the body of POST .../environments.
type EnvironmentRegister struct {
	Name        string            `json:"name"`
	Spec        json.RawMessage   `json:"spec"`
	Description string            `json:"description,omitempty"`
	Tags        map[string]string `json:"tags,omitempty"`
}

var environmentNamePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$`)

// ValidateEnvironmentName checks a name (letters, digits, '.', '_' or '-', starting with a letter
// or digit), and refuses Azure's reserved prefix.
func ValidateEnvironmentName(name string) error {
	if !environmentNamePattern.MatchString(name) {
		return Errorf(EINVALID, "name: invalid environment name %q: use 1-%d letters, digits, '.', '_' or '-', starting with a letter or digit", name, MaxDatasetName)
	}
	if strings.HasPrefix(strings.ToLower(name), strings.ToLower(ReservedEnvironmentPrefix)) {
		return Errorf(EINVALID, "name: environment names starting with %q are reserved for Azure ML's curated environments: register %q under another name", ReservedEnvironmentPrefix, name)
	}
	return nil
}

// Validate checks a registration and returns the hash of its spec's canonical JSON.
func (r *EnvironmentRegister) Validate() (string, error) {
	if err := ValidateEnvironmentName(r.Name); err != nil {
		return "", err
	}
	if len(r.Spec) > MaxEnvironmentSpec {
		return "", Errorf(EINVALID, "spec: at most %d bytes", MaxEnvironmentSpec)
	}
	var spec map[string]any
	if len(r.Spec) == 0 || json.Unmarshal(r.Spec, &spec) != nil || spec == nil {
		return "", Errorf(EINVALID, "spec: a JSON object (the environment's definition) is required")
	}
	if len(r.Description) > MaxDatasetDescription {
		return "", Errorf(EINVALID, "description: at most %d bytes", MaxDatasetDescription)
	}
	if err := ValidateKeyValues("tag", r.Tags, MaxTagValue); err != nil {
		return "", err
	}
	return EnvironmentSpecHash(spec), nil
}

// EnvironmentSpecHash is the sha256 of a spec's canonical JSON (keys sorted, no spaces), so
// equal definitions have equal hashes however their JSON was written.
func EnvironmentSpecHash(spec map[string]any) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(spec) // maps encode with sorted keys
	sum := sha256.Sum256(bytes.TrimSpace(b.Bytes()))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// EnvironmentStore keeps environments. Versions count from 1 per name.
type EnvironmentStore interface {
	// CreateEnvironmentVersion stores e as the next version of e.Name and sets e.Version.
	CreateEnvironmentVersion(ctx context.Context, e *Environment) error
	// FindEnvironment returns a version; version 0 is the latest.
	FindEnvironment(ctx context.Context, workspace, name string, version int) (*Environment, error)
	// ListEnvironments returns the latest version of each name, by name.
	ListEnvironments(ctx context.Context, workspace string) ([]*Environment, error)
	ListEnvironmentVersions(ctx context.Context, workspace, name string) ([]*Environment, error)
	// DeleteEnvironment deletes a version, or every version with version 0.
	DeleteEnvironment(ctx context.Context, workspace, name string, version int) error
}

// EnvironmentService is the environments' part of the service: members (and runs' tokens)
// read, Contributors register and delete.
type EnvironmentService interface {
	RegisterEnvironment(ctx context.Context, workspace string, req EnvironmentRegister) (*Environment, error)
	FindEnvironment(ctx context.Context, workspace, name string, version int) (*Environment, error)
	ListEnvironments(ctx context.Context, workspace string) ([]*Environment, error)
	ListEnvironmentVersions(ctx context.Context, workspace, name string) ([]*Environment, error)
	DeleteEnvironment(ctx context.Context, workspace, name string, version int) error
}

// EnvironmentNotFound is the error of a missing environment or version.
func EnvironmentNotFound(workspace, name string, version int) error {
	if version > 0 {
		return Errorf(ENOTFOUND, "environment %q has no version %d in workspace %q", name, version, workspace)
	}
	return Errorf(ENOTFOUND, "environment %q not found in workspace %q", name, workspace)
}
