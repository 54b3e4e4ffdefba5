// Package datastore opens registered datastores (a server folder, S3 and S3-compatible
// servers, Azure Blob, GCS) as gocloud.dev buckets, and serves them as atelier.DatastoreBucket
// with errors that name the datastore and say what the user can fix.
package datastore

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"cloud.google.com/go/storage"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go/middleware"
	"gocloud.dev/blob"
	"gocloud.dev/blob/azureblob"
	"gocloud.dev/blob/gcsblob"
	"gocloud.dev/blob/s3blob"
	"gocloud.dev/gcp"
	"golang.org/x/oauth2/google"
	"google.golang.org/api/option"

	"github.com/atelier-ml/atelier"
)

var _ atelier.DatastoreOpener = (*Opener)(nil)

// Opener opens datastores. One HTTP client is shared by every cloud datastore it opens, so
// connections are pooled across requests.
type Opener struct {
	// Root holds the built-in files datastores, one folder per workspace: <Root>/<workspace>.
	Root string
	// BuiltIn, when set, is a cloud bucket that holds the built-in datastores instead of Root,
	// one folder per workspace: the server's artifact location when that is a bucket, so the
	// server keeps no datastore files on its own disk either. (A folder location is Root.)
	BuiltIn *Location
	// HTTP is the client for the cloud SDKs; a default with sane timeouts when nil.
	HTTP *http.Client
	// Digests caches the sha256 of the files of files datastores (nil: computed each time).
	Digests *DigestCache
}

// NewOpener returns an Opener whose built-in datastores live under root.
func NewOpener(root string) *Opener {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 64
	t.ResponseHeaderTimeout = 2 * time.Minute
	return &Opener{Root: root, HTTP: &http.Client{Transport: t}, Digests: NewDigestCache(digestCacheSize)}
}

// digestCacheSize bounds the digest cache: about 200 bytes an entry.
const digestCacheSize = 200_000

// OpenDatastore opens d as a bucket limited to its prefix, or to its folder.
func (o *Opener) OpenDatastore(ctx context.Context, d *atelier.Datastore, creds atelier.DatastoreCredentials) (atelier.DatastoreBucket, error) {
	builtIn := d.Kind == atelier.DatastoreFiles && d.Path == "" && o.BuiltIn != nil
	if d.Kind == atelier.DatastoreFiles && !builtIn {
		f, err := o.openFolder(d)
		if err != nil {
			return nil, err
		}
		return &Bucket{name: d.Name, folder: f, digests: o.Digests}, nil
	}
	b, err := o.OpenBucket(ctx, d, creds)
	if err != nil {
		return nil, err
	}
	nb := NewBucket(d.Name, b)
	nb.serverCreds = builtIn
	return nb, nil
}

// openFolder opens the folder of the files datastore d: its registered path, or for the
// built-in datastore its workspace's folder under Root, made at its first use.
func (o *Opener) openFolder(d *atelier.Datastore) (*folder, error) {
	dir, create := d.Path, false
	if dir == "" {
		if o.Root == "" {
			return nil, atelier.Errorf(atelier.EUNAVAILABLE, "datastore %q: the server has no folder for built-in datastores", d.Name)
		}
		if err := atelier.ValidateName("workspace", d.Workspace); err != nil {
			return nil, err
		}
		dir, create = filepath.Join(o.Root, d.Workspace), true
	}
	f, err := openFolder(dir, create)
	if err != nil {
		return nil, atelier.Errorf(atelier.ENOTFOUND, "datastore %q: folder %s cannot be opened: %v", d.Name, dir, unwrapPathError(err))
	}
	return f, nil
}

// builtIn returns where the built-in datastore d lives when the server keeps them in BuiltIn.
func (o *Opener) builtIn(d *atelier.Datastore) (*atelier.Datastore, atelier.DatastoreCredentials, error) {
	if err := atelier.ValidateName("workspace", d.Workspace); err != nil {
		return nil, atelier.DatastoreCredentials{}, err
	}
	loc := o.BuiltIn.Sub(d.Workspace)
	loc.Datastore.Name, loc.Datastore.Workspace = d.Name, d.Workspace
	return loc.Datastore, loc.Credentials, nil
}

// OpenBucket opens d as a gocloud bucket, limited to its prefix.
func (o *Opener) OpenBucket(ctx context.Context, d *atelier.Datastore, creds atelier.DatastoreCredentials) (*blob.Bucket, error) {
	if o.HTTP == nil {
		o.HTTP = http.DefaultClient
	}
	var b *blob.Bucket
	var err error
	if d.Kind == atelier.DatastoreFiles && d.Path == "" && o.BuiltIn != nil {
		// The built-in datastore: the server's location and credentials, never the record's.
		if d, creds, err = o.builtIn(d); err != nil {
			return nil, err
		}
	}
	switch d.Kind {
	case atelier.DatastoreFiles:
		// A folder is no gocloud bucket: OpenDatastore opens it beneath its root.
		return nil, atelier.Errorf(atelier.EINVALID, "datastore %q is a server folder: it opens as a datastore, not as a bucket", d.Name)
	case atelier.DatastoreS3:
		b, err = OpenS3(ctx, o.HTTP, d, creds)
	case atelier.DatastoreAzureBlob:
		b, err = OpenAzureBlob(ctx, o.HTTP, d, creds)
	case atelier.DatastoreGCS:
		b, err = OpenGCS(ctx, o.HTTP, d, creds)
	default:
		return nil, atelier.Errorf(atelier.EINVALID, "datastore %q has the unknown kind %q", d.Name, d.Kind)
	}
	if err != nil {
		if atelier.ErrorCode(err) != atelier.EINTERNAL {
			return nil, err
		}
		return nil, atelier.Errorf(atelier.EINVALID, "datastore %q cannot be opened: %v", d.Name, err)
	}
	if p := strings.Trim(d.Prefix, "/"); p != "" {
		b = blob.PrefixedBucket(b, p+"/")
	}
	return b, nil
}

func unwrapPathError(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}

// OpenS3 opens an S3 bucket (or one of an S3-compatible server at d.Endpoint) with the
// datastore's static keys: the server's own ambient credentials are never used, so a user
// cannot borrow them.
func OpenS3(ctx context.Context, hc *http.Client, d *atelier.Datastore, creds atelier.DatastoreCredentials) (*blob.Bucket, error) {
	region := d.Region
	if region == "" {
		region = "us-east-1"
	}
	cfg := aws.Config{
		Region:      region,
		Credentials: credentials.NewStaticCredentialsProvider(creds.AccessKey, creds.SecretKey, ""),
		HTTPClient:  hc,
		// Checksums are computed only where the API requires them: S3-compatible servers differ
		// in what they accept.
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
		RetryMaxAttempts:           3,
	}
	cli := s3.NewFromConfig(cfg, func(o *s3.Options) {
		if d.Endpoint != "" {
			o.BaseEndpoint = aws.String(d.Endpoint)
		}
		o.UsePathStyle = d.PathStyle
		o.APIOptions = append(o.APIOptions, signWithKnownSHA256)
	})
	return s3blob.OpenBucket(ctx, cli, d.Bucket, nil)
}

// contentSHA256Key is the context key of the sha256 of what a write stores, when it is known
// before the upload (see withContentSHA256).
type contentSHA256Key struct{}

// withContentSHA256 tells the S3 client the sha256 of the content a write stores.
func withContentSHA256(ctx context.Context, sum string) context.Context {
	return context.WithValue(ctx, contentSHA256Key{}, sum)
}

// signWithKnownSHA256 signs a PutObject whose content's sha256 is known (withContentSHA256)
// with it: SigV4 signs the sha256 of the body, which for a PutObject (an upload in one
// request) is the whole content, so the signer need not hash it a second time, which cost as
// much CPU as reading it (0.65 ms a MiB here). Parts of a multipart upload are hashed as usual;
// and a body that is not what was hashed is refused by the storage.
func signWithKnownSHA256(stack *middleware.Stack) error {
	return stack.Finalize.Add(middleware.FinalizeMiddlewareFunc("atelier.KnownContentSHA256",
		func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
			if sum, _ := ctx.Value(contentSHA256Key{}).(string); sum != "" && awsmiddleware.GetOperationName(ctx) == "PutObject" {
				ctx = v4.SetPayloadHash(ctx, sum)
			}
			return next.HandleFinalize(ctx, in)
		}), middleware.Before)
}

// OpenAzureBlob opens an Azure Blob container with a shared key, a SAS or a connection string.
// d.Endpoint is the service URL (e.g. Azurite's http://127.0.0.1:10000/devstoreaccount1).
func OpenAzureBlob(ctx context.Context, hc *http.Client, d *atelier.Datastore, creds atelier.DatastoreCredentials) (*blob.Bucket, error) {
	opts := &container.ClientOptions{ClientOptions: azcore.ClientOptions{Transport: hc,
		Retry: policy.RetryOptions{MaxRetries: 2, RetryDelay: 200 * time.Millisecond}}}
	service := strings.TrimRight(d.Endpoint, "/")
	if service == "" {
		service = "https://" + d.Account + ".blob.core.windows.net"
	}
	containerURL := service + "/" + d.Container
	var cli *container.Client
	var err error
	switch {
	case creds.ConnectionString != "":
		cli, err = container.NewClientFromConnectionString(creds.ConnectionString, d.Container, opts)
	case creds.AccountKey != "":
		var cred *container.SharedKeyCredential
		if cred, err = container.NewSharedKeyCredential(d.Account, creds.AccountKey); err != nil {
			return nil, atelier.Errorf(atelier.EINVALID, "datastore %q: the account key is not valid base64", d.Name)
		}
		cli, err = container.NewClientWithSharedKeyCredential(containerURL, cred, opts)
	case creds.SAS != "":
		cli, err = container.NewClientWithNoCredential(containerURL+"?"+strings.TrimPrefix(creds.SAS, "?"), opts)
	default:
		return nil, atelier.Errorf(atelier.EINVALID, "datastore %q has no credentials", d.Name)
	}
	if err != nil {
		// The SDK's messages about malformed connection strings hold no secret values.
		return nil, atelier.Errorf(atelier.EINVALID, "datastore %q: %v", d.Name, err)
	}
	return azureblob.OpenBucket(ctx, cli, nil)
}

// OpenGCS opens a GCS bucket with a service-account (or authorized-user) key file. Other
// credential types, which can make the server fetch URLs or run programs, are refused.
func OpenGCS(ctx context.Context, hc *http.Client, d *atelier.Datastore, creds atelier.DatastoreCredentials) (*blob.Bucket, error) {
	var head struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal([]byte(creds.CredentialsJSON), &head); err != nil {
		return nil, atelier.Errorf(atelier.EINVALID, "datastore %q: the credentials are not JSON", d.Name)
	}
	var typ google.CredentialsType
	switch head.Type {
	case string(google.ServiceAccount):
		typ = google.ServiceAccount
	case string(google.AuthorizedUser):
		typ = google.AuthorizedUser
	default:
		return nil, atelier.Errorf(atelier.EINVALID, "datastore %q: credentials of type %q are not supported: use a service account key", d.Name, head.Type)
	}
	gc, err := google.CredentialsFromJSONWithType(ctx, []byte(creds.CredentialsJSON), typ, "https://www.googleapis.com/auth/devstorage.read_write")
	if err != nil {
		return nil, atelier.Errorf(atelier.EINVALID, "datastore %q: the credentials cannot be used: %s", d.Name, strings.SplitN(err.Error(), "\n", 2)[0])
	}
	tr := hc.Transport
	if tr == nil {
		tr = http.DefaultTransport
	}
	client, err := gcp.NewHTTPClient(tr, gc.TokenSource)
	if err != nil {
		return nil, err
	}
	var opts gcsblob.Options
	if d.Endpoint != "" {
		opts.ClientOptions = []option.ClientOption{option.WithEndpoint(strings.TrimRight(d.Endpoint, "/") + "/storage/v1/")}
	}
	b, err := gcsblob.OpenBucket(ctx, client, d.Bucket, &opts)
	if err != nil {
		return nil, err
	}
	// The client retries a failed connection until the request's context ends: an endpoint
	// that does not answer would hang every call instead of saying so.
	var sc *storage.Client
	if b.As(&sc) {
		sc.SetRetry(storage.WithMaxAttempts(3))
	}
	return b, nil
}
