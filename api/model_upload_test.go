package api_test

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/atelier-ml/atelier"
	"github.com/google/go-cmp/cmp"
)

// memFiles is a ModelFileStream over in-memory files.
type memFiles struct {
	files [][2]string // path, content
	i     int
	r     io.Reader
	// failAt makes Read fail once this many files were started (0: never).
	failAt int
}

func (m *memFiles) Next() (*atelier.ModelFile, error) {
	if m.i == len(m.files) {
		return nil, io.EOF
	}
	f := m.files[m.i]
	m.i++
	m.r = strings.NewReader(f[1])
	return &atelier.ModelFile{Path: f[0], Size: int64(len(f[1]))}, nil
}

func (m *memFiles) Read(p []byte) (int, error) {
	if m.failAt > 0 && m.i >= m.failAt {
		return 0, errors.New("disk on fire")
	}
	return m.r.Read(p)
}

// mustTar builds a tar stream of entries; a header with Size > len(content) makes it cut short.
func mustTar(tb testing.TB, close bool, entries ...tarEntry) string {
	tb.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := e.h
		if h.Typeflag == 0 {
			h.Typeflag, h.Mode, h.Size = tar.TypeReg, 0o644, int64(len(e.content))
		}
		if err := tw.WriteHeader(&h); err != nil {
			tb.Fatal(err)
		}
		if _, err := tw.Write([]byte(e.content)); err != nil {
			tb.Fatal(err)
		}
	}
	if close {
		if err := tw.Close(); err != nil {
			tb.Fatal(err)
		}
	}
	return buf.String()
}

type tarEntry struct {
	h       tar.Header
	content string
}

func file(name, content string) tarEntry {
	return tarEntry{h: tar.Header{Name: name}, content: content}
}

func TestModelUpload(t *testing.T) {
	s := MustStack(t)
	c, ctx := s.Client, Ctx(t)
	big := strings.Repeat("0123456789abcdef", 1<<16) // 1 MiB: several reads per file
	files, err := c.UploadModelFiles(ctx, "default", &memFiles{files: [][2]string{
		{"model/weights.bin", big}, {"model/conf.json", "{}"}, {"model/empty", ""}, {"model/copy.json", "{}"}}})
	if err != nil {
		t.Fatal(err)
	}
	want := []atelier.ModelFile{
		{Path: "model/conf.json", Digest: Sum([]byte("{}")), Size: 2},
		{Path: "model/copy.json", Digest: Sum([]byte("{}")), Size: 2},
		{Path: "model/empty", Digest: Sum(nil), Size: 0},
		{Path: "model/weights.bin", Digest: Sum([]byte(big)), Size: int64(len(big))},
	}
	if diff := cmp.Diff(want, files); diff != "" {
		t.Fatalf("uploaded files (-want +got):\n%s", diff)
	}
	// The workspace holds the objects: the manifest registers as it is.
	v := mustRegister(t, c, atelier.ModelRegister{Name: "uploaded", Files: files})
	if v.Size != int64(len(big))+4 || v.FileCount != 4 {
		t.Errorf("registered %+v", v)
	}
	_, rc, err := c.OpenModelFile(ctx, "default", v.Ref(), "model/weights.bin")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if string(got) != big {
		t.Errorf("downloaded %d bytes, not the uploaded content", len(got))
	}
	missing, err := c.MissingObjects(ctx, "default", []string{Sum([]byte(big)), Sum(nil)})
	if err != nil || len(missing) != 0 {
		t.Errorf("MissingObjects after the upload = %v, %v; want none", missing, err)
	}

	// Directories in the stream are skipped, "./" prefixes dropped.
	resp := s.MustDo(t, Request{Method: "POST", Path: "/api/v1/workspaces/default/models/uploads", ContentType: "application/x-tar",
		Body: mustTar(t, true, tarEntry{h: tar.Header{Name: "./m/", Typeflag: tar.TypeDir, Mode: 0o755}}, file("./m/a.txt", "a"))})
	if resp.Status != 200 || !strings.Contains(string(resp.Body), `"path":"m/a.txt"`) {
		t.Errorf("upload with a directory: %d %s", resp.Status, resp.Body)
	}
}

func TestModelUploadBadInput(t *testing.T) {
	s := MustStack(t)
	path := "/api/v1/workspaces/default/models/uploads"
	tarReq := func(body string) Request {
		return Request{Method: "POST", Path: path, Body: body, ContentType: "application/x-tar"}
	}
	full := mustTar(t, true, file("m/ok.bin", "kept nowhere"), file("m/b.bin", strings.Repeat("b", 5000)))
	for _, tc := range []struct {
		name   string
		req    Request
		status int
		want   []string
	}{
		{"not a tar stream", tarReq(strings.Repeat("not a tar ", 100)), 400, []string{"not a valid tar stream"}},
		{"empty", tarReq(""), 400, []string{"no files"}},
		{"cut short", tarReq(full[:1024+512+100]), 400, []string{"ended in the middle of a file"}},
		{"escaping path", tarReq(mustTar(t, true, file("m/ok.bin", "kept nowhere"), file("../evil", "x"))), 400, []string{"invalid path", "../evil"}},
		{"absolute path", tarReq(mustTar(t, true, file("/etc/passwd", "x"))), 400, []string{"invalid path"}},
		{"symbolic link", tarReq(mustTar(t, true, file("m/ok.bin", "kept nowhere"), tarEntry{h: tar.Header{Name: "m/link", Typeflag: tar.TypeSymlink, Linkname: "/etc/passwd"}})), 400, []string{"m/link", "not a regular file"}},
		{"a path twice", tarReq(mustTar(t, true, file("m/ok.bin", "kept nowhere"), file("m/ok.bin", "y"))), 400, []string{"appears twice"}},
		{"a file that is also a directory", tarReq(mustTar(t, true, file("m", "kept nowhere"), file("m/x", "y"))), 400, []string{"also the directory"}},
		{"JSON", Request{Method: "POST", Path: path, Body: `{"files":[]}`}, 400, []string{"tar stream", "application/json"}},
		{"unknown workspace", Request{Method: "POST", Path: "/api/v1/workspaces/nope/models/uploads", Body: full, ContentType: "application/x-tar"}, 404, []string{"nope"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			MustAPIError(t, s.MustDo(t, tc.req), tc.status, tc.want...)
		})
	}
	// Nothing half-written: the workspace holds none of the files of the failed uploads.
	missing, err := s.Client.MissingObjects(Ctx(t), "default", []string{Sum([]byte("kept nowhere"))})
	if err != nil || len(missing) != 1 {
		t.Errorf("MissingObjects after failed uploads = %v, %v; want the object missing", missing, err)
	}

	// A stream the sender cannot read: its error, not a broken connection.
	_, err = s.Client.UploadModelFiles(Ctx(t), "default", &memFiles{files: [][2]string{{"a", "aaa"}, {"b", "bbb"}}, failAt: 2})
	if err == nil || !strings.Contains(err.Error(), "disk on fire") {
		t.Errorf("upload of a failing stream: %v, want its error", err)
	}
	// A refusal while the client is still sending 32 MiB: the server's message, not a write error.
	_, err = s.Client.UploadModelFiles(Ctx(t), "default", &memFiles{files: [][2]string{{"../evil", strings.Repeat("x", 32<<20)}}})
	if atelier.ErrorCode(err) != atelier.EINVALID || !strings.Contains(atelier.ErrorMessage(err), "../evil") {
		t.Errorf("upload refused early: %v, want the server's invalid path", err)
	}
}
