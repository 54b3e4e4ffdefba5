package blob_test

import (
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	gcblob "gocloud.dev/blob"
	"gocloud.dev/blob/azureblob"
	"gocloud.dev/blob/gcsblob"
	"gocloud.dev/blob/s3blob"
	"gocloud.dev/gcp"
	"google.golang.org/api/option"

	"github.com/atelier-ml/atelier/blob"
	"github.com/atelier-ml/atelier/blob/blobtest"
	"github.com/atelier-ml/atelier/datastore/datastoretest"
)

var prefixes atomic.Int64

// uniquePrefix gives each subtest an empty folder of a shared bucket.
func uniquePrefix() string { return fmt.Sprintf("t%d/", prefixes.Add(1)) }

// The object store over a real S3-compatible server (versitygw): staged objects are promoted by
// server-side copy, aborted writes leave nothing.
func TestS3Store(t *testing.T) {
	srv := datastoretest.StartVersityGW(t)
	cli := s3.NewFromConfig(aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider(srv.AccessKey, srv.SecretKey, ""),
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired, ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired},
		func(o *s3.Options) { o.BaseEndpoint = aws.String(srv.Endpoint); o.UsePathStyle = true })
	if _, err := cli.CreateBucket(t.Context(), &s3.CreateBucketInput{Bucket: aws.String("objects")}); err != nil {
		t.Fatal(err)
	}
	open := func(t *testing.T) *gcblob.Bucket {
		b, err := s3blob.OpenBucket(t.Context(), cli, "objects", nil)
		if err != nil {
			t.Fatal(err)
		}
		return gcblob.PrefixedBucket(b, uniquePrefix())
	}
	blobtest.TestStore(t, func(t *testing.T) *blob.Store { return newStore(t, open(t)) })
	t.Run("NothingLeft", func(t *testing.T) { blobtest.TestNothingLeft(t, open(t)) })
}

// The object store over Azurite, the Azure Storage emulator.
func TestAzureStore(t *testing.T) {
	service := datastoretest.StartAzurite(t)
	cc, err := datastoretest.CreateAzuriteContainer(t.Context(), service, "objects")
	if err != nil {
		t.Fatal(err)
	}
	open := func(t *testing.T) *gcblob.Bucket {
		b, err := azureblob.OpenBucket(t.Context(), cc, nil)
		if err != nil {
			t.Fatal(err)
		}
		return gcblob.PrefixedBucket(b, uniquePrefix())
	}
	blobtest.TestStore(t, func(t *testing.T) *blob.Store { return newStore(t, open(t)) })
	t.Run("NothingLeft", func(t *testing.T) { blobtest.TestNothingLeft(t, open(t)) })
}

func newStore(t *testing.T, b *gcblob.Bucket) *blob.Store {
	s := blob.New(b)
	t.Cleanup(func() { s.Close() })
	return s
}

// The object store over fake-gcs-server, the GCS emulator (without authentication: the
// datastore tests cover the token exchange).
func TestGCSStore(t *testing.T) {
	srv := datastoretest.StartFakeGCS(t)
	if err := srv.CreateBucket(t.Context(), "objects"); err != nil {
		t.Fatal(err)
	}
	client := gcp.NewAnonymousHTTPClient(http.DefaultTransport)
	open := func(t *testing.T) *gcblob.Bucket {
		b, err := gcsblob.OpenBucket(t.Context(), client, "objects", &gcsblob.Options{ClientOptions: []option.ClientOption{
			option.WithEndpoint(srv.Endpoint + "/storage/v1/"), option.WithoutAuthentication()}})
		if err != nil {
			t.Fatal(err)
		}
		return gcblob.PrefixedBucket(b, uniquePrefix())
	}
	blobtest.TestStore(t, func(t *testing.T) *blob.Store { return newStore(t, open(t)) })
	t.Run("NothingLeft", func(t *testing.T) { blobtest.TestNothingLeft(t, open(t)) })
}
