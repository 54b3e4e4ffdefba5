package datastore_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/datastore"
)

func TestParseLocation(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "key.json")
	if err := os.WriteFile(keyFile, []byte(`{"type": "service_account"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"AWS_ACCESS_KEY_ID": "AKID", "AWS_SECRET_ACCESS_KEY": "s3cret",
		"AZURE_STORAGE_ACCOUNT": "envaccount", "AZURE_STORAGE_KEY": "a2V5",
		"GOOGLE_APPLICATION_CREDENTIALS": keyFile,
	}
	getenv := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	for _, tc := range []struct {
		url   string
		env   map[string]string
		want  *atelier.Datastore
		creds atelier.DatastoreCredentials
		err   string // a part of the error message
	}{
		{url: "file:///srv/atelier", want: &atelier.Datastore{Kind: "files", Path: "/srv/atelier"}},
		{url: "s3://lake/atelier/prod?endpoint=http://127.0.0.1:9000&region=eu-west-1&path_style=true",
			want:  &atelier.Datastore{Kind: "s3", Bucket: "lake", Prefix: "atelier/prod/", Endpoint: "http://127.0.0.1:9000", Region: "eu-west-1", PathStyle: true},
			creds: atelier.DatastoreCredentials{AccessKey: "AKID", SecretKey: "s3cret"}},
		{url: "s3://lake", want: &atelier.Datastore{Kind: "s3", Bucket: "lake"}, creds: atelier.DatastoreCredentials{AccessKey: "AKID", SecretKey: "s3cret"}},
		{url: "azblob://artifacts/p?account=acct1", want: &atelier.Datastore{Kind: "azureblob", Container: "artifacts", Account: "acct1", Prefix: "p/"},
			creds: atelier.DatastoreCredentials{AccountKey: "a2V5"}},
		{url: "azblob://artifacts", want: &atelier.Datastore{Kind: "azureblob", Container: "artifacts", Account: "envaccount"},
			creds: atelier.DatastoreCredentials{AccountKey: "a2V5"}},
		{url: "gs://bucket-1/x?endpoint=http://127.0.0.1:4443", want: &atelier.Datastore{Kind: "gcs", Bucket: "bucket-1", Prefix: "x/", Endpoint: "http://127.0.0.1:4443"},
			creds: atelier.DatastoreCredentials{CredentialsJSON: `{"type": "service_account"}`}},

		{url: "file://relative/dir", err: "want file:///absolute/dir"},
		{url: "ftp://host/x", err: `unsupported scheme "ftp"`},
		{url: "s3://AKID:s3cret@lake", err: "credentials do not belong in the URL"},
		{url: "s3://lake?secret=x", err: `unknown parameter "secret"`},
		{url: "s3://lake?path_style=maybe", err: "path_style must be true or false"},
		{url: "s3://Bad_Bucket", err: "invalid S3 bucket name"},
		{url: "s3://lake?endpoint=ftp://x", err: "invalid endpoint"},
		{url: "s3://lake/../up", err: "invalid prefix"},
		{url: "s3://lake", env: map[string]string{}, err: "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"},
		{url: "azblob://artifacts?account=acct1", env: map[string]string{"AZURE_STORAGE_KEY": "a2V5", "AZURE_STORAGE_SAS_TOKEN": "sv=1"}, err: "set exactly one of"},
		{url: "gs://bucket-1", env: map[string]string{}, err: "set GOOGLE_APPLICATION_CREDENTIALS"},
		{url: "gs://bucket-1", env: map[string]string{"GOOGLE_APPLICATION_CREDENTIALS": "/nonexistent/key.json"}, err: "cannot be read"},
	} {
		t.Run(tc.url, func(t *testing.T) {
			e := env
			if tc.env != nil {
				e = tc.env
			}
			loc, err := datastore.ParseLocation("the artifact store", tc.url, getenv(e))
			if tc.err != "" {
				if atelier.ErrorCode(err) != atelier.EINVALID || !strings.Contains(atelier.ErrorMessage(err), tc.err) {
					t.Fatalf("ParseLocation = %v, want EINVALID with %q", err, tc.err)
				}
				for _, secret := range []string{"s3cret", "a2V5"} {
					if strings.Contains(atelier.ErrorMessage(err), secret) {
						t.Errorf("the error shows a secret: %v", err)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.want.Name = "the artifact store"
			tc.want.Credentials = tc.creds.Names()
			if diff := cmp.Diff(tc.want, loc.Datastore); diff != "" {
				t.Errorf("datastore (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.creds, loc.Credentials); diff != "" {
				t.Errorf("credentials (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLocationSub(t *testing.T) {
	for _, tc := range []struct {
		d    atelier.Datastore
		want string
	}{
		{atelier.Datastore{Kind: "s3", Bucket: "b"}, "s3://b/datastores"},
		{atelier.Datastore{Kind: "s3", Bucket: "b", Prefix: "p/"}, "s3://b/p/datastores"},
		{atelier.Datastore{Kind: "files", Path: "/srv"}, "file:///srv/datastores"},
	} {
		loc := &datastore.Location{Datastore: &tc.d}
		if got := loc.Sub("datastores").String(); got != tc.want {
			t.Errorf("Sub of %s = %s, want %s", loc, got, tc.want)
		}
		if sub := loc.Sub("datastores"); sub.Datastore == loc.Datastore {
			t.Errorf("Sub shares the datastore")
		}
	}
}
