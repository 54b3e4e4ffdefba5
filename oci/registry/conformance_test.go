package registry_test

import (
	"context"
	"encoding/xml"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/atelier-ml/atelier/oci/registry"
	"github.com/atelier-ml/atelier/sqlite"
)

// conformanceBinary is where conformance.sh caches the suite.
func conformanceBinary() string {
	if p := os.Getenv("ATELIER_OCI_CONFORMANCE"); p != "" {
		return p
	}
	home, _ := os.UserHomeDir()
	matches, _ := filepath.Glob(filepath.Join(home, ".cache", "atelier-test", "oci-conformance-v*"))
	for _, m := range matches {
		if !strings.HasSuffix(m, ".tmp") {
			return m
		}
	}
	return ""
}

// junit is what the suite's junit.xml tells of its results.
type junit struct {
	Tests    int `xml:"tests,attr"`
	Errors   int `xml:"errors,attr"`
	Failures int `xml:"failures,attr"`
	Skipped  int `xml:"skipped,attr"`
	Disabled int `xml:"disabled,attr"`
	Suites   []struct {
		Cases []struct {
			Name   string `xml:"name,attr"`
			Status string `xml:"status,attr"`
			Out    string `xml:"system-out"`
		} `xml:"testcase"`
	} `xml:"testsuite"`
}

// TestConformance runs the OCI distribution-spec conformance suite against the registry, with
// every API (pull, push, content discovery with referrers, content management, upload cancel,
// tag parameters, required digest headers) and every data set (sha512 and empty blobs included)
// enabled, authenticating through the bearer token flow, and requires every test to pass.
// Sparse manifests stay disabled: the registry refuses a manifest naming blobs it does not hold.
//
// It runs over each pair of stores: the disk stores, and the server's (blobs in the artifact
// store, as a folder and on S3, metadata in SQLite).
func TestConformance(t *testing.T) {
	bin := conformanceBinary()
	if bin == "" {
		t.Skip("the OCI conformance suite is not built: run oci/registry/conformance.sh (or set ATELIER_OCI_CONFORMANCE)")
	}
	t.Run("Disk", func(t *testing.T) { runConformance(t, bin, MustServe(t)) })
	t.Run("ArtifactFolderAndSQLite", func(t *testing.T) {
		dir := t.TempDir()
		blobs := registry.NewBucketBlobs(openFileBucket(t, dir), dir, nil)
		runConformance(t, bin, MustServe(t, func(o *registry.Options) { o.Blobs, o.Metadata = blobs, sqliteMetadata(t) }))
	})
	t.Run("ArtifactS3AndSQLite", func(t *testing.T) {
		blobs := registry.NewBucketBlobs(openS3Bucket(t), "", nil)
		runConformance(t, bin, MustServe(t, func(o *registry.Options) { o.Blobs, o.Metadata = blobs, sqliteMetadata(t) }))
	})
}

func sqliteMetadata(t *testing.T) registry.Metadata {
	db, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "atelier.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db.Registry()
}

func runConformance(t *testing.T, bin string, reg *testRegistry) {
	reg.Auth.grant("conformance", "conformance-password", "conformance/", registry.Pull, registry.Push, registry.Delete)
	results := t.TempDir()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin)
	cmd.Dir = results // no oci-conformance.yaml of the working directory is read
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "OCI_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env,
		"OCI_REGISTRY="+reg.Host,
		"OCI_TLS=disabled",
		"OCI_REPO1=conformance/repo1",
		"OCI_REPO2=conformance/repo2",
		"OCI_USERNAME=conformance",
		"OCI_PASSWORD=conformance-password",
		"OCI_RESULTS_DIR="+results,
		"OCI_VERSION=1.1",
		"OCI_LOG=warn",
		"OCI_API_PULL=true",
		"OCI_API_PUSH=true",
		"OCI_API_BLOBS_ATOMIC=true",
		"OCI_API_BLOBS_DELETE=true",
		"OCI_API_BLOBS_DIGEST_HEADER=true",
		"OCI_API_BLOBS_MOUNT_ANONYMOUS=true",
		"OCI_API_BLOBS_UPLOAD_CANCEL=true",
		"OCI_API_MANIFESTS_ATOMIC=true",
		"OCI_API_MANIFESTS_DELETE=true",
		"OCI_API_MANIFESTS_DIGEST_HEADER=true",
		"OCI_API_MANIFESTS_TAG_PARAM=true",
		"OCI_API_TAGS_ATOMIC=true",
		"OCI_API_TAGS_DELETE=true",
		"OCI_API_TAGS_LIST=true",
		"OCI_API_REFERRER=true",
		"OCI_DATA_IMAGE=true",
		"OCI_DATA_INDEX=true",
		"OCI_DATA_INDEX_LIST=true",
		"OCI_DATA_SPARSE=false",
		"OCI_DATA_ARTIFACT=true",
		"OCI_DATA_SUBJECT=true",
		"OCI_DATA_SUBJECT_MISSING=true",
		"OCI_DATA_ARTIFACT_LIST=true",
		"OCI_DATA_SUBJECT_LIST=true",
		"OCI_DATA_DATA_FIELD=true",
		"OCI_DATA_NONDISTRIBUTABLE=true",
		"OCI_DATA_CUSTOM_FIELDS=true",
		"OCI_DATA_NO_LAYERS=true",
		"OCI_DATA_EMPTY_BLOB=true",
		"OCI_DATA_SHA512=true",
	)
	start := time.Now()
	out, runErr := cmd.CombinedOutput()
	took := time.Since(start)
	b, err := os.ReadFile(filepath.Join(results, "junit.xml"))
	if err != nil {
		t.Fatalf("the suite wrote no junit.xml (%v): %v\n%s", runErr, err, out)
	}
	var j junit
	if err := xml.Unmarshal(b, &j); err != nil {
		t.Fatalf("reading junit.xml: %v", err)
	}
	passed := j.Tests - j.Errors - j.Failures - j.Skipped - j.Disabled
	t.Logf("OCI conformance: %d tests, %d passed, %d failed, %d errors, %d skipped, %d disabled, in %s",
		j.Tests, passed, j.Failures, j.Errors, j.Skipped, j.Disabled, took.Round(time.Millisecond))
	if os.Getenv("ATELIER_OCI_CONFORMANCE_REPORT") != "" { // print the suite's full report
		t.Logf("%s", out)
	}
	if j.Tests == 0 || passed != j.Tests || runErr != nil {
		for _, s := range j.Suites {
			for _, c := range s.Cases {
				if c.Status != "passed" {
					t.Errorf("%s: %s\n%s", c.Name, c.Status, c.Out)
				}
			}
		}
		t.Fatalf("the conformance suite did not pass every test (exit: %v); its report:\n%s", runErr, out)
	}
}
