package main

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/api"
	"github.com/atelier-ml/atelier/archive"
	"github.com/spf13/cobra"
)

func newImageCmd(cfg *clientConfig) *cobra.Command {
	cmd := &cobra.Command{Use: "image", Short: "Build registered models and a scoring script into OCI images",
		Long: `Images: registered models, a scoring script (score.py with init() and run()) and its
dependencies, built by the server as OCI images (no Docker or Podman needed) into the
workspace image registry, served under /v2/ where an image is HOST/WORKSPACE/NAME:VERSION.
A reference (REF) is NAME (the latest version) or NAME:VERSION.`}
	cmd.AddCommand(imageCreateCmd(cfg), imageListCmd(cfg), imageShowCmd(cfg), imageLogsCmd(cfg),
		imageExportCmd(cfg), imageDeleteCmd(cfg), imageBaseCmd(cfg))
	return cmd
}

func parseImageRef(s string) (atelier.ImageRef, error) {
	ref, err := atelier.ParseImageRef(s)
	if err != nil {
		return ref, usagef("%s", atelier.ErrorMessage(err))
	}
	return ref, nil
}

// imageFailedError makes the process exit with exitRunFailed: the awaited build failed.
type imageFailedError struct{ img *atelier.Image }

func (e imageFailedError) Error() string {
	msg := fmt.Sprintf("image %s:%d %s", e.img.Name, e.img.Version, e.img.Status)
	if e.img.Error != "" {
		msg += ": " + e.img.Error
	}
	return msg
}

// inSourceDir names file p (a flag's value) as a path in the source directory dir: p is taken
// relative to dir, or, when it is a path from here (./serve/requirements.txt), it must lie
// inside dir.
func inSourceDir(flag, dir, p string) (string, error) {
	if !filepath.IsAbs(p) {
		if c := filepath.ToSlash(filepath.Clean(p)); c == ".." || strings.HasPrefix(c, "../") {
			return "", usagef("--%s %s is not inside the source directory %s: the image is built from that directory only", flag, p, dir)
		}
		if fi, err := os.Stat(filepath.Join(dir, p)); err == nil && fi.Mode().IsRegular() {
			return filepath.ToSlash(filepath.Clean(p)), nil
		}
	}
	absDir, err1 := filepath.Abs(dir)
	abs, err2 := filepath.Abs(p)
	if err1 == nil && err2 == nil {
		if fi, err := os.Stat(abs); err == nil && fi.Mode().IsRegular() {
			rel, err := filepath.Rel(absDir, abs)
			if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
				return "", usagef("--%s %s is not inside the source directory %s: the image is built from that directory only", flag, p, dir)
			}
			return filepath.ToSlash(rel), nil
		}
	}
	return "", usagef("--%s %s: no such file in the source directory %s", flag, p, dir)
}

func imageCreateCmd(cfg *clientConfig) *cobra.Command {
	var req atelier.ImageCreate
	var tags []string
	var dir string
	var wait bool
	var opt archive.Options
	cmd := &cobra.Command{
		Use:   "create NAME --model REF... --entry-script FILE --source-dir DIR [--requirements FILE | --conda FILE] [--wait]",
		Short: "Build a new version of an image from models and a scoring script",
		Long: `Build the next version of image NAME: the source directory is uploaded as a snapshot
(as run submit does, honouring .amlignore or .gitignore), then the server builds the models,
the entry script and the dependencies in --requirements on the base image (--base, else the
server's default Python base). The models are placed where Azure ML places them, under
/var/azureml-app/azureml-models/<name>/<version>/; $AZUREML_MODEL_DIR is that folder when the
image holds one model, else the folder above.

--entry-script and --requirements are paths in the source directory (score.py), or paths
from here that lie inside it (./serve/score.py).

Without --wait, print the new version (NAME:VERSION) and return while it builds; with
--wait, stream the build log, then print the image's digest, size and build time, and exit
7 if the build failed.`,
		Example: `  atelier image create diabetes-svc --model diabetes:3 --entry-script score.py --source-dir ./serve \
      --requirements requirements.txt --tag team=risk --wait`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var err error
			req.Name = args[0]
			if err := atelier.ValidateImageName(req.Name); err != nil {
				return usagef("%s", atelier.ErrorMessage(err))
			}
			if len(req.Models) == 0 {
				return usagef("--model is required: the registered model(s) the image holds (NAME, NAME:VERSION or NAME@ALIAS)")
			}
			if req.EntryScript == "" || dir == "" {
				return usagef("--entry-script and --source-dir are required: the scoring script (with init() and run()) and the directory it is in")
			}
			if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
				return usagef("--source-dir %s is not a directory", dir)
			}
			if req.EntryScript, err = inSourceDir("entry-script", dir, req.EntryScript); err != nil {
				return err
			}
			if req.Conda != "" {
				if req.Conda, err = inSourceDir("conda", dir, req.Conda); err != nil {
					return err
				}
			}
			if req.Requirements != "" {
				if req.Requirements, err = inSourceDir("requirements", dir, req.Requirements); err != nil {
					return err
				}
			}
			if req.Tags, err = parseKeyValues("tag", tags); err != nil {
				return err
			}
			req.SnapshotID = "-" // checked once uploaded
			if err := req.Validate(); err != nil {
				return usagef("%s", atelier.ErrorMessage(err))
			}
			c, err := cfg.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			snap, err := uploadSnapshot(ctx, c, cfg.workspace, dir, opt)
			if err != nil {
				return err
			}
			req.SnapshotID = snap.ID
			img, err := c.CreateImage(ctx, cfg.workspace, req)
			if err != nil {
				return err
			}
			if !wait {
				if cfg.output == "json" {
					return printJSON(cmd.OutOrStdout(), img)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s:%d\n", img.Name, img.Version)
				cfg.done("building %s:%d; follow it with: atelier image logs %s:%d --follow", img.Name, img.Version, img.Name, img.Version)
				return nil
			}
			fmt.Fprintf(os.Stderr, "image %s:%d queued\n", img.Name, img.Version)
			return followImage(cmd, cfg, c, img)
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&req.Models, "model", nil, "a registered model the image holds: NAME, NAME:VERSION or NAME@ALIAS (repeatable)")
	f.StringVar(&req.EntryScript, "entry-script", "", "the scoring script, with init() and run() (in the source directory)")
	f.StringVar(&dir, "source-dir", "", "the directory uploaded with the entry script")
	f.StringVar(&req.Requirements, "requirements", "", "pip requirements file (in the source directory)")
	f.StringVar(&req.Conda, "conda", "", "conda environment file (in the source directory) whose conda dependencies are only python (the base's version), pip, setuptools and wheel; its pip: section is installed")
	f.StringVar(&req.Base, "base", "", "base image: REPO:TAG of the workspace registry, or HOST/REPO:TAG of another registry (credentials: the vault secret REGISTRY_<HOST>, USER:PASSWORD) (default: the server's Python base)")
	f.StringArrayVar(&tags, "tag", nil, "tag KEY=VALUE (repeatable)")
	f.StringVar(&req.Description, "description", "", "description")
	f.BoolVar(&wait, "wait", false, "stream the build log until the build ends; exit 0 only if it Succeeded")
	snapshotFlags(cmd, &opt)
	return cmd
}

// followImage streams an image's build log until the build ends, then prints the image (-o
// json) or its digest, size and build time, and how to pull it. A failed build is an
// imageFailedError.
func followImage(cmd *cobra.Command, cfg *clientConfig, c *api.Client, img *atelier.Image) error {
	ctx := cmd.Context()
	logOut := cmd.OutOrStdout()
	if cfg.output == "json" {
		logOut = os.Stderr // stdout holds the JSON alone
	}
	final, err := streamImageLog(ctx, c, cfg.workspace, img, logOut)
	if err != nil && ctx.Err() != nil {
		return interruptedError{fmt.Sprintf("stopped following; image %s:%d keeps building (follow it again: atelier image logs %s:%d --follow)", img.Name, img.Version, img.Name, img.Version)}
	}
	if err != nil {
		return err
	}
	if cfg.output == "json" {
		if err := printJSON(cmd.OutOrStdout(), final); err != nil {
			return err
		}
	}
	if final.Status != atelier.ImageSucceeded {
		return imageFailedError{final}
	}
	if cfg.output != "json" {
		fmt.Fprintf(cmd.OutOrStdout(), "%s:%d %s %s built in %s\n", final.Name, final.Version, final.Digest, humanBytes(final.Size), buildTime(final))
	}
	cfg.done("pull it with: podman pull --tls-verify=false %s", pullName(c, final))
	return nil
}

// streamImageLog writes an image's build log to out, polling it by offset, until the build
// has ended and its whole log is written; it returns the image as it ended.
func streamImageLog(ctx context.Context, c *api.Client, workspace string, img *atelier.Image, out io.Writer) (*atelier.Image, error) {
	ref := atelier.ImageRef{Name: img.Name, Version: img.Version}
	var offset int64
	delay := 100 * time.Millisecond
	for {
		// The status first: a build seen ended has written its whole log.
		cur, err := c.FindImage(ctx, workspace, ref)
		if err != nil {
			return nil, err
		}
		text, err := c.ImageLog(ctx, workspace, ref, offset)
		if err != nil {
			return nil, err
		}
		if text != "" {
			io.WriteString(out, printableLines(text))
			offset += int64(len(text))
			delay = 100 * time.Millisecond
		}
		if cur.Status.Ended() {
			if text != "" && !strings.HasSuffix(text, "\n") {
				fmt.Fprintln(out)
			}
			return cur, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(delay):
		}
		delay = min(delay*2, time.Second)
	}
}

func buildTime(img *atelier.Image) string {
	if img.StartedAt == nil || img.EndedAt == nil {
		return "-"
	}
	return img.EndedAt.Sub(*img.StartedAt).Round(time.Millisecond).String()
}

// pullName is the image's name for podman or docker: the server's host before its location.
func pullName(c *api.Client, img *atelier.Image) string {
	base := c.BaseURL
	if strings.HasPrefix(base, api.UnixScheme) {
		// Over the socket, the registry is at the address the server also listens on.
		for _, s := range localServers() {
			if strings.HasPrefix(s, "http") {
				base = s
				break
			}
		}
	}
	host := "HOST"
	if u, err := url.Parse(base); err == nil && u.Host != "" {
		host = u.Host
	}
	return host + "/" + img.Location
}

func imageListCmd(cfg *clientConfig) *cobra.Command {
	var q atelier.ImageQuery
	var tags []string
	cmd := &cobra.Command{
		Use:   "list [--name N] [--model M] [--tag K=V]...",
		Short: "List images, newest first (those atelier built, and the tags other tools pushed)",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			var err error
			if q.Tags, err = parseKeyValues("tag", tags); err != nil {
				return err
			}
			c, err := cfg.client()
			if err != nil {
				return err
			}
			list, err := c.ListImages(cmd.Context(), cfg.workspace, q)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if cfg.output == "json" {
				if list == nil {
					list = []*atelier.Image{}
				}
				return printJSON(out, list)
			}
			// An image pushed by another tool has its registry tag for a version.
			t := newTable(out, "NAME", "VERSION", "STATUS", "MODELS", "TAGS", "SIZE", "CREATED", "SOURCE")
			for _, img := range list {
				size := ""
				if img.Size > 0 {
					size = humanBytes(img.Size)
				}
				var version any = img.Version
				if img.Source == atelier.ImagePushed || img.Source == atelier.ImageImported {
					version = img.Tag
				}
				t.row(img.Name, version, img.Status, imageModels(img), truncate(kvString(img.Tags), 50), size, img.CreatedAt, img.Source)
			}
			return t.flush()
		},
	}
	f := cmd.Flags()
	f.StringVar(&q.Name, "name", "", "versions of this image")
	f.StringVar(&q.Model, "model", "", "images holding a version of this model")
	f.StringArrayVar(&tags, "tag", nil, "images with this tag KEY=VALUE (repeatable)")
	f.IntVar(&q.Limit, "limit", 0, "at most this many (0: the server's page size)")
	return cmd
}

func imageModels(img *atelier.Image) string {
	var s []string
	for _, m := range img.Models {
		s = append(s, m.String())
	}
	return strings.Join(s, ",")
}

func imageShowCmd(cfg *clientConfig) *cobra.Command {
	return &cobra.Command{
		Use: "show REF", Short: "Show an image (NAME for its latest version, or NAME:VERSION)", Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref, err := parseImageRef(args[0])
			if err != nil {
				return err
			}
			c, err := cfg.client()
			if err != nil {
				return err
			}
			img, err := c.FindImage(cmd.Context(), cfg.workspace, ref)
			if err != nil {
				return err
			}
			if cfg.output == "json" {
				return printJSON(cmd.OutOrStdout(), img)
			}
			t := newTable(cmd.OutOrStdout(), "FIELD", "VALUE")
			t.row("name", img.Name)
			t.row("version", img.Version)
			t.row("status", img.Status)
			if img.Error != "" {
				t.row("error", img.Error)
			}
			t.row("description", img.Description)
			t.row("models", imageModels(img))
			t.row("entry script", img.EntryScript)
			t.row("requirements", img.Requirements)
			t.row("base", cmpOr(img.Base, "(the server's default)"))
			t.row("snapshot", img.SnapshotID)
			t.row("tags", kvString(img.Tags))
			if img.Digest != "" {
				t.row("digest", img.Digest)
				t.row("size", humanBytes(img.Size))
				t.row("build time", buildTime(img))
				t.row("pull", pullName(c, img))
			}
			for _, l := range img.Layers {
				cached := ""
				if l.Cached {
					cached = ", cached"
				}
				t.row("layer", fmt.Sprintf("%s %s (%s%s)", l.Name, l.Digest, humanBytes(l.Size), cached))
			}
			t.row("created", img.CreatedAt)
			t.row("created by", img.CreatedBy)
			return t.flush()
		},
	}
}

func cmpOr(s, dflt string) string {
	if s == "" {
		return dflt
	}
	return s
}

func imageLogsCmd(cfg *clientConfig) *cobra.Command {
	var follow bool
	cmd := &cobra.Command{
		Use: "logs REF [--follow]", Short: "Print an image's build log (--follow: until the build ends)", Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref, err := parseImageRef(args[0])
			if err != nil {
				return err
			}
			c, err := cfg.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			img, err := c.FindImage(ctx, cfg.workspace, ref)
			if err != nil {
				return err
			}
			if follow {
				return followImage(cmd, cfg, c, img)
			}
			text, err := c.ImageLog(ctx, cfg.workspace, atelier.ImageRef{Name: img.Name, Version: img.Version}, 0)
			if err != nil {
				return err
			}
			if cfg.output == "json" {
				return printJSON(cmd.OutOrStdout(), map[string]any{"image": fmt.Sprintf("%s:%d", img.Name, img.Version), "status": img.Status, "log": text})
			}
			io.WriteString(cmd.OutOrStdout(), printableLines(text))
			return nil
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "follow the log until the build ends; exit 7 if it failed")
	return cmd
}

func imageExportCmd(cfg *clientConfig) *cobra.Command {
	var file, format string
	cmd := &cobra.Command{
		Use:   "export REF -o FILE [--format docker|oci]",
		Short: "Write a built image as a tarball: docker-archive (docker/podman load) or OCI layout",
		Long: `Write a built image to FILE as a docker-archive tarball (--format docker, the default:
'podman load -i FILE' or 'docker load -i FILE' read it) or an OCI image layout tarball
(--format oci). Here -o names the file; ATELIER_OUTPUT=json prints what was written as JSON.`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref, err := parseImageRef(args[0])
			if err != nil {
				return err
			}
			if file == "" || file == "json" || file == "table" {
				return usagef("-o FILE is required: the tarball to write (here -o is the file, not the output format)")
			}
			if format != "docker" && format != "oci" {
				return usagef("--format %q: docker (a docker-archive) or oci (an OCI image layout)", format)
			}
			c, err := cfg.transferClient(cmd.Context())
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			img, err := c.FindImage(ctx, cfg.workspace, ref)
			if err != nil {
				return err
			}
			if img.Status != atelier.ImageSucceeded {
				return atelier.Errorf(atelier.ECONFLICT, "image %s:%d is %s: only a built image can be exported", img.Name, img.Version, img.Status)
			}
			// Written beside the file and renamed once whole: a failed export leaves no tarball.
			tmp, err := os.CreateTemp(filepath.Dir(file), "."+filepath.Base(file)+".*")
			if err != nil {
				return err
			}
			defer os.Remove(tmp.Name())
			bar := newProgress(os.Stderr, "exporting image", progressThreshold(img.Size))
			err = c.ExportImage(ctx, cfg.workspace, atelier.ImageRef{Name: img.Name, Version: img.Version}, format, &progressWriter{w: tmp, p: bar})
			bar.done()
			if cerr := tmp.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
			if err := os.Rename(tmp.Name(), file); err != nil {
				return err
			}
			fi, err := os.Stat(file)
			if err != nil {
				return err
			}
			if cfg.output == "json" {
				return printJSON(cmd.OutOrStdout(), map[string]any{"image": fmt.Sprintf("%s:%d", img.Name, img.Version),
					"digest": img.Digest, "format": format, "file": file, "size": fi.Size()})
			}
			cfg.done("wrote %s:%d to %s (%s, %s)", img.Name, img.Version, file, format, humanBytes(fi.Size()))
			return nil
		},
	}
	// -o is the file here, as in docker save -o; it shadows the global --output.
	cmd.Flags().StringVarP(&file, "output", "o", "", "the tarball to write")
	cmd.Flags().StringVar(&format, "format", "docker", "docker (docker-archive) or oci (OCI image layout)")
	return cmd
}

func imageDeleteCmd(cfg *clientConfig) *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME:VERSION",
		Short: "Delete an image version (its record and its tag in the registry)",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref, err := parseImageRef(args[0])
			if err != nil {
				return err
			}
			if ref.Version == 0 {
				return usagef("name the version to delete: %s:VERSION (see 'atelier image list --name %s')", ref.Name, ref.Name)
			}
			c, err := cfg.client()
			if err != nil {
				return err
			}
			if err := c.DeleteImage(cmd.Context(), cfg.workspace, ref); err != nil {
				return err
			}
			if cfg.output == "json" {
				return printJSON(cmd.OutOrStdout(), map[string]any{"deleted": ref.String()})
			}
			cfg.done("deleted image %s", ref)
			return nil
		},
	}
}

// progressWriter counts what is written through it on a progress bar.
type progressWriter struct {
	w io.Writer
	p *progress
}

func (pw *progressWriter) Write(b []byte) (int, error) {
	n, err := pw.w.Write(b)
	pw.p.add(int64(n))
	return n, err
}
