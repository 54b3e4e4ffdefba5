package atelier

import (
	"context"
	"encoding/json"
	"io"
	"net/url"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"
)

// A datastore is named storage a workspace reads data from and writes results to: a folder on
// the server, an S3 (or S3-compatible) bucket, an Azure Blob container or a GCS bucket. Its
// credentials are kept encrypted and never leave the server; users refer to it by name.

// Datastore kinds.
const (
	DatastoreFiles     = "files"
	DatastoreS3        = "s3"
	DatastoreAzureBlob = "azureblob"
	DatastoreGCS       = "gcs"
)

// DefaultDatastore is the name of the datastore every workspace has: a folder inside the
// server's data directory, managed by the server.
const DefaultDatastore = "default"

// Datastore is a registered datastore as users see it: its configuration, never its secrets.
type Datastore struct {
	Name      string `json:"name"`
	Workspace string `json:"workspace"`
	Kind      string `json:"kind"`
	// IsDefault marks the workspace's default datastore (exactly one per workspace).
	IsDefault bool `json:"is_default"`
	// Path is the folder of a files datastore; empty for the built-in one, which lives in the
	// server's data directory.
	Path string `json:"path,omitempty"`
	// Endpoint is an S3-compatible server, an Azure Blob service URL or a GCS endpoint; empty
	// means the cloud's own.
	Endpoint  string `json:"endpoint,omitempty"`
	Region    string `json:"region,omitempty"`
	Bucket    string `json:"bucket,omitempty"`
	Account   string `json:"account,omitempty"`
	Container string `json:"container,omitempty"`
	// Prefix is a folder inside the bucket or container that the datastore is limited to.
	Prefix    string `json:"prefix,omitempty"`
	PathStyle bool   `json:"path_style,omitempty"`
	// Credentials names the kinds of secret stored (e.g. "access_key", "sas"), not their values.
	Credentials []string  `json:"credentials"`
	CreatedAt   time.Time `json:"created_at"`
	CreatedBy   string    `json:"created_by"`
	UpdatedAt   time.Time `json:"updated_at"`

	// Sealed is the encrypted DatastoreCredentials, opaque to the store. It is never sent.
	Sealed []byte `json:"-"`
}

// DatastoreCredentials are a datastore's secrets. Only the fields of the datastore's kind apply.
type DatastoreCredentials struct {
	AccessKey        string `json:"access_key,omitempty"`
	SecretKey        string `json:"secret_key,omitempty"`
	AccountKey       string `json:"account_key,omitempty"`
	SAS              string `json:"sas,omitempty"`
	ConnectionString string `json:"connection_string,omitempty"`
	CredentialsJSON  string `json:"credentials_json,omitempty"`
}

// Names lists the secrets that are set, by their JSON names.
func (c DatastoreCredentials) Names() []string {
	names := []string{}
	for _, f := range c.fields() {
		if *f.value != "" {
			names = append(names, f.name)
		}
	}
	return names
}

func (c *DatastoreCredentials) fields() []struct {
	name  string
	value *string
} {
	return []struct {
		name  string
		value *string
	}{{"access_key", &c.AccessKey}, {"secret_key", &c.SecretKey}, {"account_key", &c.AccountKey},
		{"sas", &c.SAS}, {"connection_string", &c.ConnectionString}, {"credentials_json", &c.CredentialsJSON}}
}

// MaxDatastoreSecret bounds each secret (a GCS service-account key is about 2.4 KB).
const MaxDatastoreSecret = 16 << 10

// Validate checks the credentials against the datastore kind they are for.
func (c DatastoreCredentials) Validate(kind string) error {
	for _, f := range c.fields() {
		if len(*f.value) > MaxDatastoreSecret || !utf8.ValidString(*f.value) || strings.ContainsRune(*f.value, 0) {
			return Errorf(EINVALID, "%s must be valid UTF-8 of at most %d bytes", f.name, MaxDatastoreSecret)
		}
	}
	allowed := map[string][]string{
		DatastoreFiles:     {},
		DatastoreS3:        {"access_key", "secret_key"},
		DatastoreAzureBlob: {"account_key", "sas", "connection_string"},
		DatastoreGCS:       {"credentials_json"},
	}[kind]
	for _, n := range c.Names() {
		if !contains(allowed, n) {
			return Errorf(EINVALID, "%s does not apply to a %s datastore", n, kind)
		}
	}
	switch kind {
	case DatastoreS3:
		if (c.AccessKey == "") != (c.SecretKey == "") || c.AccessKey == "" {
			return Errorf(EINVALID, "an s3 datastore needs both access_key and secret_key")
		}
	case DatastoreAzureBlob:
		if n := len(c.Names()); n != 1 {
			return Errorf(EINVALID, "an azureblob datastore needs exactly one of account_key, sas or connection_string")
		}
		if c.SAS != "" {
			if _, err := url.ParseQuery(strings.TrimPrefix(c.SAS, "?")); err != nil {
				return Errorf(EINVALID, "sas is not a valid shared access signature query string")
			}
		}
	case DatastoreGCS:
		var v struct {
			Type string `json:"type"`
		}
		if c.CredentialsJSON == "" {
			return Errorf(EINVALID, "a gcs datastore needs credentials_json (a service account key file)")
		}
		if err := json.Unmarshal([]byte(c.CredentialsJSON), &v); err != nil || v.Type == "" {
			return Errorf(EINVALID, "credentials_json is not a Google credentials file: want a JSON object with a \"type\"")
		}
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// DatastoreSpec registers a datastore: its configuration and its credentials.
type DatastoreSpec struct {
	Name      string `json:"name"`
	Kind      string `json:"kind"`
	Path      string `json:"path,omitempty"`
	Endpoint  string `json:"endpoint,omitempty"`
	Region    string `json:"region,omitempty"`
	Bucket    string `json:"bucket,omitempty"`
	Account   string `json:"account,omitempty"`
	Container string `json:"container,omitempty"`
	Prefix    string `json:"prefix,omitempty"`
	PathStyle bool   `json:"path_style,omitempty"`
	// Default makes it the workspace's default datastore.
	Default          bool   `json:"default,omitempty"`
	AccessKey        string `json:"access_key,omitempty"`
	SecretKey        string `json:"secret_key,omitempty"`
	AccountKey       string `json:"account_key,omitempty"`
	SAS              string `json:"sas,omitempty"`
	ConnectionString string `json:"connection_string,omitempty"`
	CredentialsJSON  string `json:"credentials_json,omitempty"`
}

// Credentials returns the spec's secrets.
func (s *DatastoreSpec) Credentials() DatastoreCredentials {
	return DatastoreCredentials{AccessKey: s.AccessKey, SecretKey: s.SecretKey, AccountKey: s.AccountKey, SAS: s.SAS,
		ConnectionString: s.ConnectionString, CredentialsJSON: s.CredentialsJSON}
}

// Datastore returns the datastore the spec describes (without its sealed credentials).
func (s *DatastoreSpec) Datastore() *Datastore {
	return &Datastore{Name: s.Name, Kind: s.Kind, IsDefault: s.Default, Path: s.Path, Endpoint: s.Endpoint, Region: s.Region,
		Bucket: s.Bucket, Account: s.Account, Container: s.Container, Prefix: s.Prefix, PathStyle: s.PathStyle,
		Credentials: s.Credentials().Names()}
}

var (
	s3BucketPattern    = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)
	gcsBucketPattern   = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$`)
	azAccountPattern   = regexp.MustCompile(`^[a-z0-9]{3,24}$`)
	azContainerPattern = regexp.MustCompile(`^[a-z0-9](?:[a-z0-9]|-[a-z0-9]){2,62}$`)
	regionPattern      = regexp.MustCompile(`^[a-z0-9-]{1,64}$`)
)

// Validate checks a registration: the name, the fields of its kind (and no others), and its
// credentials. A files path must be absolute; the service decides which folders are allowed.
func (s *DatastoreSpec) Validate() error {
	if err := ValidateName("datastore", s.Name); err != nil {
		return err
	}
	if s.Name == DefaultDatastore {
		return Errorf(EINVALID, "the datastore name %q is reserved for the workspace's built-in datastore", s.Name)
	}
	fields := map[string]bool{"path": s.Path != "", "endpoint": s.Endpoint != "", "region": s.Region != "", "bucket": s.Bucket != "",
		"account": s.Account != "", "container": s.Container != "", "prefix": s.Prefix != "", "path_style": s.PathStyle}
	var allowed []string
	switch s.Kind {
	case DatastoreFiles:
		allowed = []string{"path"}
		if !isAbsPath(s.Path) {
			return Errorf(EINVALID, "a files datastore needs an absolute path on the server, not %q", s.Path)
		}
		if len(s.Path) > 4096 || !utf8.ValidString(s.Path) || strings.ContainsRune(s.Path, 0) {
			return Errorf(EINVALID, "invalid path %q", s.Path)
		}
	case DatastoreS3:
		allowed = []string{"endpoint", "region", "bucket", "prefix", "path_style"}
		if !s3BucketPattern.MatchString(s.Bucket) {
			return Errorf(EINVALID, "invalid S3 bucket name %q: use 3-63 lowercase letters, digits, '.' or '-'", s.Bucket)
		}
		if s.Region != "" && !regionPattern.MatchString(s.Region) {
			return Errorf(EINVALID, "invalid region %q", s.Region)
		}
	case DatastoreAzureBlob:
		allowed = []string{"endpoint", "account", "container", "prefix"}
		if s.ConnectionString == "" && !azAccountPattern.MatchString(s.Account) {
			return Errorf(EINVALID, "invalid Azure storage account %q: use 3-24 lowercase letters or digits", s.Account)
		}
		if s.Account != "" && !azAccountPattern.MatchString(s.Account) {
			return Errorf(EINVALID, "invalid Azure storage account %q: use 3-24 lowercase letters or digits", s.Account)
		}
		if !azContainerPattern.MatchString(s.Container) {
			return Errorf(EINVALID, "invalid Azure container name %q: use 3-63 lowercase letters, digits or single '-'", s.Container)
		}
	case DatastoreGCS:
		allowed = []string{"endpoint", "bucket", "prefix"}
		if !gcsBucketPattern.MatchString(s.Bucket) {
			return Errorf(EINVALID, "invalid GCS bucket name %q", s.Bucket)
		}
	default:
		return Errorf(EINVALID, "unknown datastore kind %q: use files, s3, azureblob or gcs", s.Kind)
	}
	for _, f := range []string{"path", "endpoint", "region", "bucket", "account", "container", "prefix", "path_style"} {
		if fields[f] && !contains(allowed, f) {
			return Errorf(EINVALID, "%s does not apply to a %s datastore", f, s.Kind)
		}
	}
	if s.Endpoint != "" {
		if err := validateEndpoint(s.Endpoint); err != nil {
			return err
		}
	}
	if s.Prefix != "" {
		if err := ValidatePath(strings.TrimSuffix(s.Prefix, "/")); err != nil {
			return Errorf(EINVALID, "invalid prefix %q: a relative folder path with '/' separators", s.Prefix)
		}
	}
	return s.Credentials().Validate(s.Kind)
}

func isAbsPath(p string) bool {
	return strings.HasPrefix(p, "/") || (len(p) > 2 && p[1] == ':' && (p[2] == '\\' || p[2] == '/'))
}

func validateEndpoint(e string) error {
	u, err := url.Parse(e)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || len(e) > 2048 {
		return Errorf(EINVALID, "invalid endpoint %q: want an http:// or https:// URL without credentials or query", e)
	}
	return nil
}

// DatastoreFile is a file in a datastore.
type DatastoreFile struct {
	Path string `json:"path"`
	Size int64  `json:"size"`
	// MD5 is the hex MD5 of the content when the storage reports one in listings (S3
	// single-part uploads, GCS, Azure blobs written in one request); empty otherwise (files
	// datastores, S3 multipart uploads, Azure blobs written in blocks).
	MD5        string    `json:"md5,omitempty"`
	ModifiedAt time.Time `json:"modified_at"`
	// SHA256 is the content's sha256 where it is known: on the answer to an upload (computed
	// while streaming) and in the answer to DatastoreBucket.Digest.
	SHA256 string `json:"sha256,omitempty"`
	// Dir marks a folder in a non-recursive listing; its Path ends with '/'.
	Dir bool `json:"dir,omitempty"`
	// ETag is cloud storage's tag of this version of the object, set where the server keeps
	// the digest of the object rather than the object itself (see DatastoreDigest).
	ETag string `json:"-"`
}

// DatastoreDigest is the sha256 of a cloud storage object that the server keeps because the
// object could not carry it: a large file passed over the server's socket is hashed while it
// uploads, and cloud storage takes an object's metadata only when its upload starts. It holds
// while the object keeps its ETag.
type DatastoreDigest struct {
	ETag   string
	SHA256 string
}

// DatastoreFileQuery lists a datastore's files.
type DatastoreFileQuery struct {
	// Prefix keeps the keys that start with it: "data/" lists a folder.
	Prefix string `json:"prefix,omitempty"`
	// Recursive lists everything under Prefix; otherwise sub-folders are returned as Dir entries.
	Recursive bool   `json:"recursive,omitempty"`
	Limit     int    `json:"limit,omitempty"`
	PageToken string `json:"page_token,omitempty"`
}

// DefaultDatastoreFileLimit is the default page size of a file listing.
const DefaultDatastoreFileLimit = 1000

// Validate checks the query.
func (q *DatastoreFileQuery) Validate() error {
	if q.Prefix != "" {
		if err := ValidatePath(strings.TrimSuffix(q.Prefix, "/")); err != nil {
			return Errorf(EINVALID, "invalid prefix %q: a relative path with '/' separators", q.Prefix)
		}
	}
	if q.Limit < 0 || q.Limit > MaxPageSize {
		return Errorf(EINVALID, "limit %d is out of range (0 to %d)", q.Limit, MaxPageSize)
	}
	if len(q.PageToken) > 4096 {
		return Errorf(EINVALID, "invalid page token")
	}
	return nil
}

// DatastoreFilePage is one page of a listing; NextPageToken is empty on the last page.
type DatastoreFilePage struct {
	Files         []*DatastoreFile `json:"files"`
	NextPageToken string           `json:"next_page_token"`
}

// DatastoreBucket is an opened datastore. Paths are relative, slash-separated and clean. Errors
// name the datastore and the path; a backend's refusal of credentials is EFORBIDDEN, a missing
// bucket ENOTFOUND, an unreachable endpoint EUNAVAILABLE: never EINTERNAL for what the user
// configured.
type DatastoreBucket interface {
	// Write stores r under path. When sha256 is given and the content differs, nothing is
	// stored (EINVALID). Nothing partial is ever visible under path. The file returned has
	// the content's sha256 where the write computed it (cloud storage, or when sha256 was
	// given); a files datastore leaves it to Digest, so that a write copies without hashing.
	// Cloud storage is not asked again after the write (the time is the server's, and the
	// MD5, if any, shows in listings), except for a large local file (an *os.File) written
	// without a given sha256: it is hashed while it uploads, and the file returned has its
	// ETag, for the server to keep the digest (see DatastoreDigest).
	Write(ctx context.Context, path string, r io.Reader, sha256, contentType string) (*DatastoreFile, error)
	Open(ctx context.Context, path string) (*DatastoreFile, io.ReadCloser, error)
	Stat(ctx context.Context, path string) (*DatastoreFile, error)
	// Digest is Stat with the content's sha256, where it can be had without sending the
	// content to the client: the digest stored with the object when it was written with one
	// (cloud storage), or computed by the server (a files datastore, cached by path, size and
	// modification time). SHA256 stays empty otherwise (an object another program wrote).
	Digest(ctx context.Context, path string) (*DatastoreFile, error)
	List(ctx context.Context, q DatastoreFileQuery) (*DatastoreFilePage, error)
	Delete(ctx context.Context, path string) error
	Close() error
}

// MaxDatastoreDigests bounds the paths of one request for digests.
const MaxDatastoreDigests = 1000

// DatastoreOpener opens datastores: the cmd wires one implementation (package datastore).
type DatastoreOpener interface {
	OpenDatastore(ctx context.Context, d *Datastore, creds DatastoreCredentials) (DatastoreBucket, error)
}

// SecretBox encrypts secrets at rest. aad binds a ciphertext to what owns it, so a sealed value
// copied onto another record does not open.
type SecretBox interface {
	Seal(plaintext, aad []byte) ([]byte, error)
	Open(ciphertext, aad []byte) ([]byte, error)
}

// DatastoreStore is the part of the metadata store that keeps the datastore registry. Exactly
// one datastore of a workspace is its default: the first one created becomes it.
type DatastoreStore interface {
	// CreateDatastore stores d (ECONFLICT if the name is taken); with d.IsDefault it becomes
	// the default.
	CreateDatastore(ctx context.Context, workspace string, d *Datastore) error
	// FindDatastore returns the datastore with its sealed credentials.
	FindDatastore(ctx context.Context, workspace, name string) (*Datastore, error)
	ListDatastores(ctx context.Context, workspace string) ([]*Datastore, error)
	// UpdateDatastoreCredentials replaces the sealed credentials and their names.
	UpdateDatastoreCredentials(ctx context.Context, workspace, name string, sealed []byte, names []string) (*Datastore, error)
	// SetDefaultDatastore makes name the default.
	SetDefaultDatastore(ctx context.Context, workspace, name string) (*Datastore, error)
	// DeleteDatastore removes a datastore; the default refuses (ECONFLICT) unless force is set,
	// and then fallback becomes the default.
	DeleteDatastore(ctx context.Context, workspace, name string, force bool, fallback string) error
	// DatastoreRuns returns the ids of up to limit runs whose lineage names the datastore
	// (newest first) and how many there are in all.
	DatastoreRuns(ctx context.Context, workspace, name string, limit int) (ids []string, total int, err error)
	// SaveDatastoreDigest keeps the digest of the object at path (replacing any); it goes
	// with the datastore.
	SaveDatastoreDigest(ctx context.Context, workspace, name, path string, d DatastoreDigest) error
	// DatastoreDigests returns the digests kept for those of paths that have one.
	DatastoreDigests(ctx context.Context, workspace, name string, paths []string) (map[string]DatastoreDigest, error)
}

// DatastoreService is the datastore registry and its files, as users see them.
type DatastoreService interface {
	RegisterDatastore(ctx context.Context, workspace string, spec DatastoreSpec) (*Datastore, error)
	FindDatastore(ctx context.Context, workspace, name string) (*Datastore, error)
	ListDatastores(ctx context.Context, workspace string) ([]*Datastore, error)
	UpdateDatastoreCredentials(ctx context.Context, workspace, name string, creds DatastoreCredentials) (*Datastore, error)
	SetDefaultDatastore(ctx context.Context, workspace, name string) (*Datastore, error)
	// DeleteDatastore forgets a datastore (its data stays where it is). The default datastore
	// needs force; the built-in one cannot be deleted.
	DeleteDatastore(ctx context.Context, workspace, name string, force bool) error

	// DatastoreAccess checks that the caller may read the datastore's files, or with write
	// change them: nil, or the error a file operation would give (ENOTFOUND, EFORBIDDEN). A
	// client asks before a long transfer, rather than fail at its first file.
	DatastoreAccess(ctx context.Context, workspace, name string, write bool) error
	WriteDatastoreFile(ctx context.Context, workspace, name, path string, r io.Reader, sha256, contentType string) (*DatastoreFile, error)
	OpenDatastoreFile(ctx context.Context, workspace, name, path string) (*DatastoreFile, io.ReadCloser, error)
	ListDatastoreFiles(ctx context.Context, workspace, name string, q DatastoreFileQuery) (*DatastoreFilePage, error)
	// DatastoreFileDigests returns the files at paths (at most MaxDatastoreDigests) with their
	// sha256 where the datastore can tell it (DatastoreBucket.Digest); missing files are left out.
	DatastoreFileDigests(ctx context.Context, workspace, name string, paths []string) ([]*DatastoreFile, error)
	// DeleteDatastoreFiles deletes a file, or with recursive every file under the folder path;
	// it returns how many were deleted.
	DeleteDatastoreFiles(ctx context.Context, workspace, name, path string, recursive bool) (int, error)
}
