package archive

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/atelier-ml/atelier"
	"github.com/google/go-cmp/cmp"
)

// memEntries returns snapshot entries for files (path → content, "#!" for executables) and an
// open function serving them.
func memEntries(files map[string]string) ([]atelier.SnapshotEntry, func(atelier.SnapshotEntry) (io.ReadCloser, error)) {
	var es []atelier.SnapshotEntry
	for p, c := range files {
		es = append(es, atelier.SnapshotEntry{Path: p, Digest: sum(c), Size: int64(len(c)), Executable: strings.HasPrefix(c, "#!")})
	}
	return es, func(e atelier.SnapshotEntry) (io.ReadCloser, error) {
		return io.NopCloser(strings.NewReader(files[e.Path])), nil
	}
}

func TestExtract(t *testing.T) {
	files := map[string]string{"run.sh": "#!/bin/sh\n", "a/b/c.txt": "c", "a/d.txt": "d", "empty": ""}
	entries, open := memEntries(files)
	dest := filepath.Join(t.TempDir(), "new")
	if err := Extract(t.Context(), entries, dest, open); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"run.sh": "#x #!/bin/sh\n", "a/b/c.txt": "c", "a/d.txt": "d", "empty": ""}
	if diff := cmp.Diff(want, ReadTree(t, dest)); diff != "" {
		t.Errorf("tree (-want +got):\n%s", diff)
	}
	// Again over the same files, with the x bit flipped: modes follow the snapshot.
	for i := range entries {
		entries[i].Executable = !entries[i].Executable
	}
	if err := Extract(t.Context(), entries, dest, open); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(filepath.Join(dest, "run.sh")); fi.Mode()&0o111 != 0 {
		t.Errorf("run.sh mode %v, want not executable", fi.Mode())
	}
}

func TestExtractRefuses(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, dest, outside string)
		path  string
		want  string
	}{
		{name: "parent", path: "../evil", want: `"../evil"`},
		{name: "absolute", path: "/etc/x", want: `"/etc/x"`},
		{name: "escape in the middle", path: "a/../../b", want: `"a/../../b"`},
		{name: "backslash", path: `..\evil`, want: `"..\\evil"`},
		{name: "drive letter", path: `C:\x`, want: `"C:\\x"`},
		{
			name: "symlink on the way out",
			setup: func(t *testing.T, dest, outside string) {
				if err := os.Symlink(outside, filepath.Join(dest, "link")); err != nil {
					t.Fatal(err)
				}
			},
			path: "link/x", want: "link is a symbolic link out of the destination directory",
		},
		{
			name: "deeper symlink on the way out",
			setup: func(t *testing.T, dest, outside string) {
				MustWriteTree(t, dest, map[string]string{"a/": ""})
				if err := os.Symlink("../..", filepath.Join(dest, "a", "up")); err != nil {
					t.Fatal(err)
				}
			},
			path: "a/up/x", want: "up is a symbolic link out",
		},
		{
			name: "file in the way",
			setup: func(t *testing.T, dest, outside string) {
				MustWriteTree(t, dest, map[string]string{"f": "file"})
			},
			path: "f/x", want: "f is a file, not a directory",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			dest, outside := filepath.Join(root, "dest"), filepath.Join(root, "outside")
			MustWriteTree(t, dest, map[string]string{"keep": ""})
			MustWriteTree(t, outside, map[string]string{"keep": ""})
			if tt.setup != nil {
				tt.setup(t, dest, outside)
			}
			entries, open := memEntries(map[string]string{tt.path: "evil"})
			wantInvalid(t, Extract(t.Context(), entries, dest, open), tt.want)
			if diff := cmp.Diff(map[string]string{"keep": ""}, ReadTree(t, outside)); diff != "" {
				t.Errorf("outside changed (-want +got):\n%s", diff)
			}
			if _, err := os.Stat(filepath.Join(root, "evil")); err == nil {
				t.Errorf("%s written outside", filepath.Join(root, "evil"))
			}
		})
	}
}

func TestExtractSymlinksInside(t *testing.T) {
	root := t.TempDir()
	dest, outside := filepath.Join(root, "dest"), filepath.Join(root, "outside")
	MustWriteTree(t, dest, map[string]string{"real/": ""})
	MustWriteTree(t, outside, map[string]string{"secret": "s"})
	// A link to a directory inside is fine to go through; a link at the target is replaced,
	// never written through.
	if err := os.Symlink("real", filepath.Join(dest, "alias")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, "secret"), filepath.Join(dest, "out")); err != nil {
		t.Fatal(err)
	}
	entries, open := memEntries(map[string]string{"alias/x": "x", "out": "mine"})
	if err := Extract(t.Context(), entries, dest, open); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(filepath.Join(dest, "real", "x")); string(data) != "x" {
		t.Errorf("real/x = %q", data)
	}
	if data, _ := os.ReadFile(filepath.Join(outside, "secret")); string(data) != "s" {
		t.Errorf("written through a symlink: outside/secret = %q", data)
	}
	if fi, err := os.Lstat(filepath.Join(dest, "out")); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("out is not a regular file: %v %v", fi, err)
	}
}

// Extract checks sizes; digests were verified when the object store stored the content.
func TestExtractChecksContent(t *testing.T) {
	entries, _ := memEntries(map[string]string{"a.txt": "right"})
	wrong := func(atelier.SnapshotEntry) (io.ReadCloser, error) {
		return io.NopCloser(strings.NewReader("wrong size")), nil
	}
	err := Extract(t.Context(), entries, t.TempDir(), wrong)
	if atelier.ErrorCode(err) != atelier.ECONFLICT {
		t.Errorf("got %v, want ECONFLICT", err)
	}
}
