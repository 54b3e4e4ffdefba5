package datastore

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/atelier-ml/atelier"
)

// Location is a storage location the server itself uses (its artifact store), given by the
// operator as a URL. It is described as a datastore so that it is opened by the same code as
// the registered ones.
type Location struct {
	Datastore   *atelier.Datastore
	Credentials atelier.DatastoreCredentials
}

// Credential variables: the standard ones of each cloud's own tools, so a server configured for
// them needs nothing new, and no secret is ever a command-line argument (which any user of the
// machine can read in the process list).
const (
	EnvAWSAccessKey          = "AWS_ACCESS_KEY_ID"
	EnvAWSSecretKey          = "AWS_SECRET_ACCESS_KEY"
	EnvAzureAccount          = "AZURE_STORAGE_ACCOUNT"
	EnvAzureKey              = "AZURE_STORAGE_KEY"
	EnvAzureSAS              = "AZURE_STORAGE_SAS_TOKEN"
	EnvAzureConnectionString = "AZURE_STORAGE_CONNECTION_STRING"
	EnvGoogleCredentials     = "GOOGLE_APPLICATION_CREDENTIALS"
)

// CredentialVariables are the variables above: a server that read its credentials from them
// removes them from its environment, so the scripts it runs do not inherit them.
var CredentialVariables = []string{EnvAWSAccessKey, EnvAWSSecretKey, EnvAzureKey, EnvAzureSAS, EnvAzureConnectionString, EnvGoogleCredentials}

// LocationHelp documents the URL forms ParseLocation accepts, for --help texts.
const LocationHelp = `  file:///abs/dir                     a folder of the server
  s3://BUCKET[/PREFIX]?endpoint=URL&region=R&path_style=true
                                      credentials from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY
  azblob://CONTAINER[/PREFIX]?account=A&endpoint=URL
                                      AZURE_STORAGE_ACCOUNT (if no account=), and one of
                                      AZURE_STORAGE_KEY, AZURE_STORAGE_SAS_TOKEN or
                                      AZURE_STORAGE_CONNECTION_STRING
  gs://BUCKET[/PREFIX]?endpoint=URL   GOOGLE_APPLICATION_CREDENTIALS: a service account key file`

// ParseLocation parses a location URL (see LocationHelp); name is what the location is called in
// errors. Secrets are read with getenv (os.Getenv in the server), never from the URL.
func ParseLocation(name, raw string, getenv func(string) string) (*Location, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, atelier.Errorf(atelier.EINVALID, "%s: not a URL", name)
	}
	// Shown without user information or query, either of which may hold a secret.
	shown := url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}
	bad := func(format string, args ...any) error {
		return atelier.Errorf(atelier.EINVALID, "%s %s: %s", name, shown.String(), fmt.Sprintf(format, args...))
	}
	if u.User != nil {
		return nil, bad("credentials do not belong in the URL (command lines are visible to every user of the machine): set them in the environment")
	}
	q := u.Query()
	spec := atelier.DatastoreSpec{Name: "artifacts"}
	take := func(key string) string {
		v := q.Get(key)
		q.Del(key)
		return v
	}
	bucketAndPrefix := func() (string, string) {
		return u.Host, strings.Trim(u.Path, "/")
	}
	switch u.Scheme {
	case "file":
		spec.Kind = atelier.DatastoreFiles
		if (u.Host != "" && u.Host != "localhost") || !filepath.IsAbs(filepath.FromSlash(u.Path)) {
			return nil, bad("want file:///absolute/dir")
		}
		spec.Path = filepath.Clean(filepath.FromSlash(u.Path))
	case "s3":
		spec.Kind = atelier.DatastoreS3
		spec.Bucket, spec.Prefix = bucketAndPrefix()
		spec.Endpoint, spec.Region = take("endpoint"), take("region")
		if v := take("path_style"); v != "" {
			if spec.PathStyle, err = strconv.ParseBool(v); err != nil {
				return nil, bad("path_style must be true or false")
			}
		}
		spec.AccessKey, spec.SecretKey = getenv(EnvAWSAccessKey), getenv(EnvAWSSecretKey)
		if spec.AccessKey == "" || spec.SecretKey == "" {
			return nil, bad("set %s and %s in the server's environment", EnvAWSAccessKey, EnvAWSSecretKey)
		}
	case "azblob", "azureblob":
		spec.Kind = atelier.DatastoreAzureBlob
		spec.Container, spec.Prefix = bucketAndPrefix()
		spec.Endpoint, spec.Account = take("endpoint"), take("account")
		if spec.Account == "" {
			spec.Account = getenv(EnvAzureAccount)
		}
		spec.AccountKey, spec.SAS, spec.ConnectionString = getenv(EnvAzureKey), getenv(EnvAzureSAS), getenv(EnvAzureConnectionString)
		if n := len(spec.Credentials().Names()); n != 1 {
			return nil, bad("set exactly one of %s, %s or %s in the server's environment (%d are set)", EnvAzureKey, EnvAzureSAS, EnvAzureConnectionString, n)
		}
	case "gs", "gcs":
		spec.Kind = atelier.DatastoreGCS
		spec.Bucket, spec.Prefix = bucketAndPrefix()
		spec.Endpoint = take("endpoint")
		file := getenv(EnvGoogleCredentials)
		if file == "" {
			return nil, bad("set %s to a service account key file in the server's environment", EnvGoogleCredentials)
		}
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, bad("%s cannot be read: %v", EnvGoogleCredentials, unwrapPathError(err))
		}
		spec.CredentialsJSON = string(data)
	default:
		return nil, bad("unsupported scheme %q: use file, s3, azblob or gs", u.Scheme)
	}
	for k := range q {
		return nil, bad("unknown parameter %q", k)
	}
	if spec.Prefix != "" {
		spec.Prefix += "/"
	}
	if err := spec.Validate(); err != nil {
		return nil, bad("%s", atelier.ErrorMessage(err))
	}
	d := spec.Datastore()
	d.Name = name
	return &Location{Datastore: d, Credentials: spec.Credentials()}, nil
}

// Sub returns the location of the folder sub (slash-separated) inside l.
func (l *Location) Sub(sub string) *Location {
	d := *l.Datastore
	sub = strings.Trim(sub, "/")
	if d.Kind == atelier.DatastoreFiles {
		d.Path = filepath.Join(d.Path, filepath.FromSlash(sub))
	} else {
		d.Prefix = strings.TrimLeft(strings.TrimRight(d.Prefix, "/")+"/"+sub+"/", "/")
	}
	return &Location{Datastore: &d, Credentials: l.Credentials}
}

// String is the location as a URL without its query: for logs and messages.
func (l *Location) String() string {
	d := l.Datastore
	var s string
	switch d.Kind {
	case atelier.DatastoreFiles:
		return "file://" + filepath.ToSlash(d.Path)
	case atelier.DatastoreS3:
		s = "s3://" + d.Bucket
	case atelier.DatastoreAzureBlob:
		s = "azblob://" + d.Container
	case atelier.DatastoreGCS:
		s = "gs://" + d.Bucket
	}
	if p := strings.Trim(d.Prefix, "/"); p != "" {
		s += "/" + p
	}
	return s
}
