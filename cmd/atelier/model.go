package main

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/api"
	"github.com/atelier-ml/atelier/archive"
	"github.com/spf13/cobra"
)

func newModelCmd(cfg *clientConfig) *cobra.Command {
	cmd := &cobra.Command{Use: "model", Short: "Register, find, download and delete models",
		Long: `The model registry: named models with numbered versions. A reference (REF) is
NAME (the latest version), NAME:VERSION or NAME@ALIAS.`}
	cmd.AddCommand(modelRegisterCmd(cfg), modelListCmd(cfg), modelShowCmd(cfg), modelDownloadCmd(cfg),
		modelDeleteCmd(cfg), modelTagCmd(cfg), modelAliasCmd(cfg))
	return cmd
}

func parseModelRef(s string) (atelier.ModelRef, error) {
	ref, err := atelier.ParseModelRef(s)
	if err != nil {
		return ref, usagef("%s", atelier.ErrorMessage(err))
	}
	return ref, nil
}

func modelRegisterCmd(cfg *clientConfig) *cobra.Command {
	var req atelier.ModelRegister
	var tags, props []string
	cmd := &cobra.Command{
		Use:   "register --name N (--path P [--run RUN] | --source URI)",
		Short: "Register a new version of a model from a run's outputs, from local files, or as a reference",
		Long: `Register the next version of a model.

With --run, --path is a file or folder of the run (e.g. outputs/model.pkl): the version refers
to the run's stored files, so nothing is uploaded or copied. Without --run, --path is a local
file or folder: files the server does not hold yet are uploaded, then registered. Either way
the files are named from the path's last element (outputs/model gives model/...).

With --source, the version is a reference to files stored elsewhere (s3://bucket/key, gs://,
https://...): atelier stores none of them, so it cannot download them or build images from
them, unless a datastore of the workspace holds the bucket ('atelier model download' then reads
through it). --run is then optional lineage.`,
		Example: `  atelier model register --name diabetes --run $RUN --path outputs/model.pkl --tag stage=dev
  atelier model register --name diabetes --path ./model_dir --framework scikit-learn --framework-version 1.5
  atelier model register --name diabetes --source s3://models/diabetes/v7`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			var err error
			switch {
			case req.Name == "" || (req.Path == "" && req.Source == ""):
				return usagef("--name and --path (or --source) are required")
			case req.Path != "" && req.Source != "":
				return usagef("give --path or --source, not both")
			case req.Source != "":
				if err := atelier.ValidateModelSource(req.Source); err != nil {
					return usagef("%s", atelier.ErrorMessage(err))
				}
			}
			if err := atelier.ValidateModelName(req.Name); err != nil {
				return usagef("%s", atelier.ErrorMessage(err))
			}
			if req.Tags, err = parseKeyValues("tag", tags); err != nil {
				return err
			}
			if req.Properties, err = parseKeyValues("property", props); err != nil {
				return err
			}
			// Checked before anything is uploaded, not after a gigabyte has gone.
			if err := atelier.ValidateModelMetadata(req.Description, req.Framework, req.FrameworkVersion, req.Datasets, req.Tags, req.Properties); err != nil {
				return usagef("%s", atelier.ErrorMessage(err))
			}
			c, err := cfg.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if req.RunID, err = resolveRun(ctx, c, cfg.workspace, req.RunID); err != nil {
				return err
			}
			if req.Source != "" {
				// A reference: nothing to upload.
			} else if req.RunID == "" {
				if req.Files, err = uploadModelFiles(ctx, c, cfg.workspace, req.Path); err != nil {
					return err
				}
				req.Path = ""
			} else {
				req.Path = strings.Trim(req.Path, "/")
			}
			v, err := c.RegisterModel(ctx, cfg.workspace, req)
			if err != nil {
				return err
			}
			if cfg.output == "json" {
				return printJSON(cmd.OutOrStdout(), v)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s:%d\n", v.Name, v.Version)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&req.Name, "name", "", "model name")
	f.StringVar(&req.Path, "path", "", "a file or folder of the run (with --run), else a local file or folder")
	f.StringVar(&req.RunID, "run", "", "register from this run's files")
	f.StringVar(&req.Source, "source", "", "register a reference to files stored elsewhere at this URI (s3://, gs://, https://...)")
	f.StringArrayVar(&tags, "tag", nil, "tag KEY=VALUE (repeatable)")
	f.StringArrayVar(&props, "property", nil, "property KEY=VALUE, immutable (repeatable)")
	f.StringVar(&req.Description, "description", "", "description")
	f.StringVar(&req.Framework, "framework", "", "framework, e.g. scikit-learn")
	f.StringVar(&req.FrameworkVersion, "framework-version", "", "framework version, e.g. 1.5")
	f.StringArrayVar(&req.Datasets, "dataset", nil, "a data set or datastore path the model was trained on (repeatable)")
	return cmd
}

// localModelFile is a file to upload, named as in the model.
type localModelFile struct {
	atelier.ModelFile
	local string
	info  fs.FileInfo // as the file was when it was (last) opened
}

// scanModelFiles lists a local file, or every regular file under a folder (nothing is ignored:
// a model folder is taken whole), named from the path's last element. Local paths are absolute,
// as the hash cache wants them.
func scanModelFiles(root string) ([]*localModelFile, error) {
	root = filepath.Clean(root)
	fi, err := os.Stat(root)
	if err != nil {
		return nil, usagef("cannot read %s: %v", root, err)
	}
	if abs, err := filepath.Abs(root); err == nil {
		root = abs
	}
	base := filepath.Base(root)
	if !fi.IsDir() {
		return []*localModelFile{{ModelFile: atelier.ModelFile{Path: base, Size: fi.Size()}, local: root, info: fi}}, nil
	}
	var files []*localModelFile
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		info, err := os.Stat(p) // follows a link to a file
		if err != nil {
			return err
		}
		if !info.Mode().IsRegular() {
			return nil // sockets, pipes, devices
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		files = append(files, &localModelFile{ModelFile: atelier.ModelFile{Path: path.Join(base, filepath.ToSlash(rel)), Size: info.Size()}, local: p, info: info})
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, usagef("%s holds no files", root)
	}
	return files, nil
}

// uploadStreams is how many tar streams a local model is uploaded over at once. The server
// hashes each stream on one core as it stores it, and a local store writes each with direct I/O,
// which waits for the disk: four streams keep both cores and the disk busy where two left gaps
// (measured in docs/benchmarks.md).
const uploadStreams = 4

// uploadModelFiles uploads a local file or folder in one pass and returns the manifest to
// register: the files go to the server as tar streams, read once and hashed by the server as it
// stores them, with no hashing pass before. Only files whose digest the hash cache still knows
// (from an earlier registration of the same folder) are looked up first, and skipped when the
// server holds them.
func uploadModelFiles(ctx context.Context, c *api.Client, workspace, root string) ([]atelier.ModelFile, error) {
	files, err := scanModelFiles(root)
	if err != nil {
		return nil, err
	}
	var cache *archive.HashCache
	if p, err := archive.ModelCachePath(root); err == nil {
		if cache, err = archive.LoadHashCache(p); err == nil {
			defer cache.Save() // a cache that cannot be saved only costs an upload next time
		}
	}
	var known []string
	for _, f := range files {
		if d, ok := cache.Lookup(f.local, f.info); ok {
			f.Digest = d
			known = append(known, d)
		}
	}
	send := files
	if len(known) > 0 {
		missing, err := c.MissingObjects(ctx, workspace, slices.Compact(slices.Sorted(slices.Values(known))))
		if err != nil {
			return nil, err
		}
		lacks := map[string]bool{}
		for _, d := range missing {
			lacks[d] = true
		}
		send = nil
		for _, f := range files {
			if f.Digest == "" || lacks[f.Digest] {
				f.Digest = ""
				send = append(send, f)
			}
		}
	}
	if len(send) > 0 {
		if err := sendModelFiles(ctx, c, workspace, send, cache); err != nil {
			return nil, err
		}
	}
	manifest := make([]atelier.ModelFile, len(files))
	for i, f := range files {
		manifest[i] = f.ModelFile
	}
	return manifest, nil
}

// sendModelFiles uploads files over uploadStreams tar streams that take the next file from one
// queue, largest first, so they end at about the same time; it fills in each file's digest.
func sendModelFiles(ctx context.Context, c *api.Client, workspace string, files []*localModelFile, cache *archive.HashCache) error {
	var total int64
	for _, f := range files {
		total += f.Size
	}
	files = slices.Clone(files)
	slices.SortStableFunc(files, func(a, b *localModelFile) int { return cmp.Compare(b.Size, a.Size) })
	var next atomic.Int64
	queue := func() *localModelFile {
		if i := next.Add(1) - 1; i < int64(len(files)) {
			return files[i]
		}
		return nil
	}
	bar := newProgress(os.Stderr, "uploading model", progressThreshold(total))
	defer bar.done()
	start := time.Now()
	streams := make([]int, min(uploadStreams, len(files)))
	return parallel(ctx, len(streams), streams, func(ctx context.Context, _ int) error {
		// A stream takes its first file before it starts, so none is sent empty when the
		// others have emptied the queue.
		first := queue()
		if first == nil {
			return nil
		}
		s := &localFileStream{next: queue, pending: first, bar: bar}
		defer s.close()
		stored, err := c.UploadModelFiles(ctx, workspace, s)
		if err != nil {
			return err
		}
		byPath := make(map[string]atelier.ModelFile, len(stored))
		for _, f := range stored {
			byPath[f.Path] = f
		}
		for _, f := range s.sent {
			got, ok := byPath[f.Path]
			if !ok || got.Size != f.Size {
				return fmt.Errorf("the server did not store %s as sent", f.local)
			}
			f.Digest = got.Digest
			cache.Add(f.local, f.info, got.Digest, start)
		}
		return nil
	})
}

// localFileStream streams local files from a queue as an atelier.ModelFileStream. Each file is
// read exactly to the size it had when opened, and checked unchanged afterwards.
type localFileStream struct {
	next    func() *localModelFile
	pending *localModelFile // taken from the queue already
	bar     *progress
	cur     *localModelFile
	f       *os.File
	r       io.Reader
	sent    []*localModelFile // the files fully read, in order
}

func (s *localFileStream) Next() (*atelier.ModelFile, error) {
	if err := s.close(); err != nil {
		return nil, err
	}
	lf := s.pending
	if s.pending = nil; lf == nil {
		lf = s.next()
	}
	if lf == nil {
		return nil, io.EOF
	}
	f, err := os.Open(lf.local)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", lf.local, err)
	}
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("reading %s: %w", lf.local, err)
	}
	lf.info, lf.Size = info, info.Size()
	s.cur, s.f, s.r = lf, f, s.bar.reader(io.LimitReader(f, info.Size()))
	return &atelier.ModelFile{Path: lf.Path, Size: lf.Size}, nil
}

func (s *localFileStream) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF {
		err = fmt.Errorf("reading %s: %w", s.cur.local, err)
	}
	return n, err
}

// close closes the current file, failing if it changed while it was read.
func (s *localFileStream) close() error {
	if s.f == nil {
		return nil
	}
	after, err := s.f.Stat()
	s.f.Close()
	s.f = nil
	if err == nil && (after.Size() != s.cur.info.Size() || !after.ModTime().Equal(s.cur.info.ModTime())) {
		return fmt.Errorf("%s changed while it was uploaded: register it once it is written", s.cur.local)
	}
	s.sent = append(s.sent, s.cur)
	return nil
}

// hashBufs are 1 MiB read buffers for hashing local files.
var hashBufs = sync.Pool{New: func() any { b := make([]byte, 1<<20); return &b }}

func modelListCmd(cfg *clientConfig) *cobra.Command {
	var q atelier.ModelQuery
	var all bool
	cmd := &cobra.Command{
		Use:   "list [--name N] [--tag K[=V]]... [--property K=V]...",
		Short: "List models, or search their versions by name, tags, properties or run",
		Long: `Without filters, list the models: name, latest version, version count and aliases.
With --name, --contains, --tag, --property or --run, list the matching versions (filters
combine with AND), newest first unless --order-by says otherwise.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cfg.client()
			if err != nil {
				return err
			}
			if q.RunID, err = resolveRun(cmd.Context(), c, cfg.workspace, q.RunID); err != nil {
				return err
			}
			ctx, out := cmd.Context(), cmd.OutOrStdout()
			if q.Name == "" && len(q.Tags) == 0 && len(q.Properties) == 0 && q.RunID == "" && q.OrderBy == "" {
				var models []*atelier.Model
				mq := atelier.ModelQuery{NameContains: q.NameContains, Limit: q.Limit}
				for {
					page, err := c.ListModels(ctx, cfg.workspace, mq)
					if err != nil {
						return err
					}
					models = append(models, page.Models...)
					if !all || page.NextPageToken == "" {
						break
					}
					mq.PageToken = page.NextPageToken
				}
				if cfg.output == "json" {
					return printJSON(out, models)
				}
				t := newTable(out, "NAME", "LATEST", "VERSIONS", "ALIASES", "UPDATED")
				for _, m := range models {
					t.row(m.Name, m.LatestVersion, m.VersionCount, kvString(m.Aliases), m.UpdatedAt)
				}
				return t.flush()
			}
			var versions []*atelier.ModelVersion
			for {
				page, err := c.ListModelVersions(ctx, cfg.workspace, q)
				if err != nil {
					return err
				}
				versions = append(versions, page.Versions...)
				if !all || page.NextPageToken == "" {
					break
				}
				q.PageToken = page.NextPageToken
			}
			if cfg.output == "json" {
				return printJSON(out, versions)
			}
			t := newTable(out, "NAME", "VERSION", "ALIASES", "TAGS", "FRAMEWORK", "SIZE", "RUN", "CREATED")
			for _, v := range versions {
				t.row(v.Name, v.Version, strings.Join(v.Aliases, ","), truncate(kvString(v.Tags), 50),
					strings.TrimSpace(v.Framework+" "+v.FrameworkVersion), humanBytes(v.Size), v.RunID, v.CreatedAt)
			}
			return t.flush()
		},
	}
	f := cmd.Flags()
	f.StringVar(&q.Name, "name", "", "versions of this model")
	f.StringVar(&q.NameContains, "contains", "", "models whose name contains this (ignoring case)")
	f.StringArrayVar(&q.Tags, "tag", nil, "versions with this tag: KEY or KEY=VALUE (repeatable)")
	f.StringArrayVar(&q.Properties, "property", nil, "versions with this property: KEY or KEY=VALUE (repeatable)")
	f.StringVar(&q.RunID, "run", "", "versions registered from this run")
	f.StringVar(&q.OrderBy, "order-by", "", "version, created_at or name, then asc or desc")
	f.IntVar(&q.Limit, "limit", atelier.DefaultPageSize, "page size")
	f.BoolVar(&all, "all", false, "fetch every page")
	return cmd
}

func modelShowCmd(cfg *clientConfig) *cobra.Command {
	return &cobra.Command{
		Use: "show REF", Short: "Show a model version (NAME, NAME:VERSION or NAME@ALIAS)", Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref, err := parseModelRef(args[0])
			if err != nil {
				return err
			}
			c, err := cfg.client()
			if err != nil {
				return err
			}
			v, err := c.FindModelVersion(cmd.Context(), cfg.workspace, ref)
			if err != nil {
				return err
			}
			if cfg.output == "json" {
				return printJSON(cmd.OutOrStdout(), v)
			}
			t := newTable(cmd.OutOrStdout(), "FIELD", "VALUE")
			t.row("name", v.Name)
			t.row("version", v.Version)
			t.row("aliases", strings.Join(v.Aliases, ", "))
			t.row("description", v.Description)
			t.row("framework", strings.TrimSpace(v.Framework+" "+v.FrameworkVersion))
			t.row("run", v.RunID)
			t.row("experiment", v.Experiment)
			t.row("path", v.Path)
			if v.IsReference() {
				t.row("source", v.Source+" (reference: files not stored in atelier)")
			}
			t.row("datasets", strings.Join(v.Datasets, ", "))
			t.row("tags", kvString(v.Tags))
			t.row("properties", kvString(v.Properties))
			t.row("size", fmt.Sprintf("%s in %d %s", humanBytes(v.Size), v.FileCount, plural(int(v.FileCount), "file", "files")))
			t.row("created", v.CreatedAt)
			t.row("created by", v.CreatedBy)
			for _, f := range v.Files {
				t.row("file", fmt.Sprintf("%s (%s)", f.Path, humanBytes(f.Size)))
			}
			return t.flush()
		},
	}
}

func modelDownloadCmd(cfg *clientConfig) *cobra.Command {
	var dir string
	var asZip bool
	cmd := &cobra.Command{
		Use:   "download REF -d DIR [--zip]",
		Short: "Download a model version's files into a folder (or as DIR/NAME-VERSION.zip)",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref, err := parseModelRef(args[0])
			if err != nil {
				return err
			}
			c, err := cfg.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			// Resolve once, so an alias moved meanwhile cannot mix two versions.
			v, err := c.FindModelVersion(ctx, cfg.workspace, ref)
			if err != nil {
				return err
			}
			if v.IsReference() {
				// The files are elsewhere: through a datastore of the workspace that holds the
				// source's bucket, or not at all.
				stores, err := c.ListDatastores(ctx, cfg.workspace)
				if err != nil {
					return err
				}
				name, p := referenceDatastore(v.Source, stores)
				if name == "" || asZip {
					return atelier.Errorf(atelier.EINVALID, "%s (no datastore of workspace %q holds it%s)", atelier.ErrorMessage(v.NotStored()),
						cfg.workspace, map[bool]string{true: "; --zip needs stored files", false: ""}[asZip && name != ""])
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "model %s is a reference to %s: downloading it through datastore %q\n", v.Ref(), v.Source, name)
				sub := datastoreDownloadCmd(cfg)
				sub.SetContext(ctx)
				sub.SetOut(cmd.OutOrStdout())
				if err := sub.Flags().Set("dir", dir); err != nil {
					return err
				}
				return sub.RunE(sub, []string{name, p})
			}
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			bar := newProgress(os.Stderr, "downloading "+v.Ref().String(), progressThreshold(v.Size))
			where := dir
			if asZip {
				where = filepath.Join(dir, v.Name+"-"+strconv.FormatInt(v.Version, 10)+".zip")
				err = writeFileAtomic(where, func(w *os.File) error {
					return c.WriteModelZip(ctx, cfg.workspace, v.Ref(), &countingWriter{w: w, p: bar})
				})
			} else {
				err = downloadModelFiles(ctx, c, cfg.workspace, v, dir, bar)
			}
			bar.done()
			if err != nil {
				return err
			}
			if cfg.output == "json" {
				return printJSON(cmd.OutOrStdout(), v) // what was downloaded
			}
			cfg.done("downloaded %s:%d (%d %s, %s) to %s", v.Name, v.Version, len(v.Files), plural(len(v.Files), "file", "files"), humanBytes(v.Size), where)
			return nil
		},
	}
	cmd.Flags().StringVarP(&dir, "dir", "d", ".", "destination folder")
	cmd.Flags().BoolVar(&asZip, "zip", false, "save one zip instead of the files")
	return cmd
}

// downloadModelFiles writes a version's files under dir, checking each against its digest.
func downloadModelFiles(ctx context.Context, c *api.Client, workspace string, v *atelier.ModelVersion, dir string, bar *progress) error {
	return parallel(ctx, 8, v.Files, func(ctx context.Context, f atelier.ModelFile) error {
		if err := atelier.ValidatePath(f.Path); err != nil {
			return err
		}
		dest := filepath.Join(dir, filepath.FromSlash(f.Path))
		if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
			return err
		}
		return writeFileAtomic(dest, func(w *os.File) error {
			_, rc, err := c.OpenModelFile(ctx, workspace, v.Ref(), f.Path)
			if err != nil {
				return err
			}
			defer rc.Close()
			h := sha256.New()
			if _, err := io.Copy(io.MultiWriter(w, h), bar.reader(rc)); err != nil {
				return fmt.Errorf("downloading %s: %w", f.Path, err)
			}
			if hex.EncodeToString(h.Sum(nil)) != f.Digest {
				return fmt.Errorf("downloading %s: the content does not match its digest", f.Path)
			}
			return nil
		})
	})
}

type countingWriter struct {
	w io.Writer
	p *progress
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.p.add(int64(n))
	return n, err
}

// writeFileAtomic writes dest through a temporary file renamed into place.
func writeFileAtomic(dest string, write func(*os.File) error) error {
	tmp, err := tempFileFor(dest)
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := write(tmp); err != nil {
		tmp.Close()
		return err
	}
	return placeFile(tmp, dest)
}

// tempFileFor creates the temporary file that becomes dest (see placeFile); removing it after
// is the caller's, and fails harmlessly once it is placed.
func tempFileFor(dest string) (*os.File, error) {
	return os.CreateTemp(filepath.Dir(dest), ".download-*")
}

// placeFile closes tmp, written whole, and renames it to dest.
func placeFile(tmp *os.File, dest string) error {
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), dest)
}

func modelDeleteCmd(cfg *clientConfig) *cobra.Command {
	return &cobra.Command{
		Use:   "delete REF",
		Short: "Delete a version (NAME:VERSION or NAME@ALIAS) or a whole model (NAME)",
		Long: `Delete a model version, or every version of a model when REF is a bare name. A version
an image or a deployed service uses cannot be deleted: the error lists what uses it.`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref, err := parseModelRef(args[0])
			if err != nil {
				return err
			}
			c, err := cfg.client()
			if err != nil {
				return err
			}
			if ref.Latest() && !strings.Contains(args[0], ":") {
				return c.DeleteModel(cmd.Context(), cfg.workspace, ref.Name)
			}
			return c.DeleteModelVersion(cmd.Context(), cfg.workspace, ref)
		},
	}
}

func modelTagCmd(cfg *clientConfig) *cobra.Command {
	var remove []string
	cmd := &cobra.Command{
		Use: "tag REF KEY=VALUE... [--remove KEY]...", Short: "Set or remove tags of a model version",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 1 {
				return usagef("%s takes a model reference and KEY=VALUE pairs; see '%s --help'", cmd.CommandPath(), cmd.CommandPath())
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			ref, err := parseModelRef(args[0])
			if err != nil {
				return err
			}
			tags, err := parseKeyValues("tag", args[1:])
			if err != nil {
				return err
			}
			if len(tags) == 0 && len(remove) == 0 {
				return usagef("give KEY=VALUE pairs to set or --remove KEY")
			}
			c, err := cfg.client()
			if err != nil {
				return err
			}
			v, err := c.UpdateModelVersion(cmd.Context(), cfg.workspace, ref, atelier.ModelVersionUpdate{Tags: tags, DeleteTags: remove})
			if err != nil {
				return err
			}
			if cfg.output == "json" {
				return printJSON(cmd.OutOrStdout(), v)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s:%d %s\n", v.Name, v.Version, printable(kvString(v.Tags)))
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&remove, "remove", nil, "remove this tag (repeatable)")
	return cmd
}

func modelAliasCmd(cfg *clientConfig) *cobra.Command {
	var remove bool
	cmd := &cobra.Command{
		Use:   "alias NAME ALIAS VERSION | alias NAME ALIAS --remove",
		Short: "Point an alias (e.g. production) at a version, or remove it",
		Args: func(cmd *cobra.Command, args []string) error {
			if want := map[bool]int{false: 3, true: 2}[remove]; len(args) != want {
				return usagef("%s takes %d arguments, got %d; see '%s --help'", cmd.CommandPath(), want, len(args), cmd.CommandPath())
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cfg.client()
			if err != nil {
				return err
			}
			if remove {
				if err := c.DeleteModelAlias(cmd.Context(), cfg.workspace, args[0], args[1]); err != nil {
					return err
				}
				cfg.done("removed alias %s@%s", args[0], args[1])
				return nil
			}
			version, err := strconv.ParseInt(args[2], 10, 64)
			if err != nil || version < 1 {
				return usagef("version %q is not a positive integer", args[2])
			}
			v, err := c.SetModelAlias(cmd.Context(), cfg.workspace, args[0], args[1], version)
			if err != nil {
				return err
			}
			if cfg.output == "json" {
				return printJSON(cmd.OutOrStdout(), v)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s@%s -> %s:%d\n", v.Name, args[1], v.Name, v.Version)
			return nil
		},
	}
	cmd.Flags().BoolVar(&remove, "remove", false, "remove the alias")
	return cmd
}

// referenceDatastore finds the datastore holding a reference version's source (an s3:// or gs://
// URI in a bucket datastore, under its prefix) and the source's path in it; "" when none does.
func referenceDatastore(source string, stores []*atelier.Datastore) (name, p string) {
	kinds := map[string]string{"s3": atelier.DatastoreS3, "gs": atelier.DatastoreGCS}
	scheme, rest, found := strings.Cut(source, "://")
	kind := kinds[scheme]
	if !found || kind == "" {
		return "", ""
	}
	bucket, key, _ := strings.Cut(rest, "/")
	key = strings.Trim(key, "/")
	for _, d := range stores {
		if d.Kind != kind || d.Bucket != bucket {
			continue
		}
		prefix := strings.Trim(d.Prefix, "/")
		switch {
		case prefix == "" && key != "":
			return d.Name, key
		case strings.HasPrefix(key, prefix+"/"):
			return d.Name, strings.TrimPrefix(key, prefix+"/")
		}
	}
	return "", ""
}
