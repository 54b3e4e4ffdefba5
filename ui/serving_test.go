package ui_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/server/servertest"
)

// TestImagesAndServicesPages: the images and web services pages list what the workspace has,
// a service's page shows its state, scoring URI, replicas and log; a Reader sees them too, and a
// service that does not exist is the 404 page.
func TestImagesAndServicesPages(t *testing.T) {
	s := servertest.New(t, servertest.WithoutScheduler())
	ctx := context.Background()
	if err := s.DB.CreateImage(ctx, "default", &atelier.Image{Name: "diabetes-svc", Models: []atelier.ImageModel{},
		EntryScript: "score.py", SnapshotID: "none"}); err != nil {
		t.Fatal(err)
	}
	digest := "sha256:" + strings.Repeat("ab", 32)
	if _, err := s.DB.EndImageBuild(ctx, "default", atelier.ImageRef{Name: "diabetes-svc", Version: 1}, &atelier.ImageBuildResult{Digest: digest, Size: 3 << 20}, ""); err != nil {
		t.Fatal(err)
	}
	cfg := atelier.WebServiceConfig{AuthEnabled: true, AutoscaleEnabled: true, MinReplicas: 1, MaxReplicas: 8}
	cfg.Fill()
	if err := s.DB.CreateWebService(ctx, "default", &atelier.WebService{Name: "diabetes", Target: "local",
		Images: []atelier.ServiceImage{{Image: "diabetes-svc:1", Percent: 100}}, Config: cfg, State: atelier.ServiceFailed}, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.DB.SetWebServiceState(ctx, "default", "diabetes", atelier.ServiceFailed, "image diabetes-svc:1: <b>init() failed</b>"); err != nil {
		t.Fatal(err)
	}
	get := func(path string) (int, string) {
		req, _ := http.NewRequest("GET", s.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+s.Token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, tc := range []struct {
		path string
		want []string
	}{
		{"/w/default/images", []string{"diabetes-svc:1", "Succeeded", digest, "3.0 MiB"}},
		{"/w/default/services", []string{`href="/w/default/services/diabetes"`, "Failed", "diabetes-svc:1 100%", "/services/default/diabetes/score"}},
		{"/w/default/services/diabetes", []string{"Failed", "&lt;b&gt;init() failed&lt;/b&gt;", "autoscale 1–8 at 70%", "atelier service keys diabetes", `id="service-log"`}},
	} {
		code, body := get(tc.path)
		if code != 200 {
			t.Fatalf("%s: %d\n%s", tc.path, code, body)
		}
		for _, w := range tc.want {
			if !strings.Contains(body, w) {
				t.Errorf("%s lacks %q", tc.path, w)
			}
		}
	}
	if code, _ := get("/w/default/services/nosuch"); code != 404 {
		t.Fatalf("an unknown service: %d", code)
	}
}
