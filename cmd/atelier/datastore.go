package main

import (
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/api"
	"github.com/spf13/cobra"
)

func newDatastoreCmd(cfg *clientConfig) *cobra.Command {
	cmd := &cobra.Command{Use: "datastore", Short: "Register datastores and move files in and out of them",
		Long: `A datastore is named storage of a workspace: a folder of the server (files), an S3 or
S3-compatible bucket (s3), an Azure Blob container (azureblob) or a GCS bucket (gcs). Its
credentials are stored encrypted on the server and never shown again. Every workspace has the
built-in datastore "default", a folder in the server's data directory.`}
	cmd.AddCommand(datastoreRegisterCmd(cfg), datastoreListCmd(cfg), datastoreShowCmd(cfg), datastoreUpdateCmd(cfg),
		datastoreDeleteCmd(cfg), datastoreSetDefaultCmd(cfg), datastoreUploadCmd(cfg), datastoreDownloadCmd(cfg),
		datastoreLsCmd(cfg), datastoreRmCmd(cfg))
	return cmd
}

// credentialFlags are the secret flags shared by register and update. A value of "-" is read
// from standard input, so a secret need not appear in the shell's history or in ps.
type credentialFlags struct {
	accessKey, secretKey, accountKey, sas, connectionString, credentialsFile string
}

func (c *credentialFlags) add(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&c.accessKey, "access-key", "", "s3: access key id")
	f.StringVar(&c.secretKey, "secret-key", "", "s3: secret access key ('-' reads it from stdin)")
	f.StringVar(&c.accountKey, "account-key", "", "azureblob: storage account key ('-' reads it from stdin)")
	f.StringVar(&c.sas, "sas", "", "azureblob: shared access signature ('-' reads it from stdin)")
	f.StringVar(&c.connectionString, "connection-string", "", "azureblob: connection string ('-' reads it from stdin)")
	f.StringVar(&c.credentialsFile, "credentials-file", "", "gcs: a service account key file")
}

func (c *credentialFlags) credentials(stdin io.Reader) (atelier.DatastoreCredentials, error) {
	creds := atelier.DatastoreCredentials{AccessKey: c.accessKey}
	stdinUsed := false
	for _, v := range []struct {
		flag string
		in   string
		out  *string
	}{{"secret-key", c.secretKey, &creds.SecretKey}, {"account-key", c.accountKey, &creds.AccountKey},
		{"sas", c.sas, &creds.SAS}, {"connection-string", c.connectionString, &creds.ConnectionString}} {
		if v.in != "-" {
			*v.out = v.in
			continue
		}
		if stdinUsed {
			return creds, usagef("only one flag may read standard input")
		}
		stdinUsed = true
		b, err := io.ReadAll(io.LimitReader(stdin, atelier.MaxDatastoreSecret+1))
		if err != nil {
			return creds, err
		}
		*v.out = strings.TrimSpace(string(b))
	}
	if c.credentialsFile != "" {
		b, err := os.ReadFile(c.credentialsFile)
		if err != nil {
			return creds, usagef("cannot read --credentials-file: %v", err)
		}
		creds.CredentialsJSON = string(b)
	}
	return creds, nil
}

func datastoreRegisterCmd(cfg *clientConfig) *cobra.Command {
	var spec atelier.DatastoreSpec
	var cf credentialFlags
	cmd := &cobra.Command{
		Use:   "register NAME --kind files|s3|azureblob|gcs [flags]",
		Short: "Register a datastore",
		Long: `Register a datastore. Each kind takes its own flags:

  files      --path DIR (a folder of the server; administrators only)
  s3         --bucket B --access-key K --secret-key S [--endpoint URL --region R --path-style --prefix P]
  azureblob  --account A --container C and one of --account-key, --sas, --connection-string
             [--endpoint URL --prefix P]
  gcs        --bucket B --credentials-file key.json [--endpoint URL --prefix P]

Nothing is contacted now: wrong credentials show on first use ('atelier datastore ls NAME').`,
		Example: `  atelier datastore register lake --kind s3 --endpoint http://127.0.0.1:9000 --path-style \
      --bucket data --access-key minio --secret-key - < secret.txt
  atelier datastore register blobs --kind azureblob --account acct --container data --sas "$SAS"`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			spec.Name = args[0]
			creds, err := cf.credentials(cmd.InOrStdin())
			if err != nil {
				return err
			}
			spec.AccessKey, spec.SecretKey, spec.AccountKey = creds.AccessKey, creds.SecretKey, creds.AccountKey
			spec.SAS, spec.ConnectionString, spec.CredentialsJSON = creds.SAS, creds.ConnectionString, creds.CredentialsJSON
			if spec.Kind == atelier.DatastoreFiles && spec.Path != "" {
				// Resolved here for the user's convenience; the path is the server's.
				if abs, err := filepath.Abs(spec.Path); err == nil {
					spec.Path = abs
				}
			}
			if err := spec.Validate(); err != nil {
				return usagef("%s", atelier.ErrorMessage(err))
			}
			c, err := cfg.client()
			if err != nil {
				return err
			}
			d, err := c.RegisterDatastore(cmd.Context(), cfg.workspace, spec)
			if err != nil {
				return err
			}
			return printDatastore(cmd, cfg, d)
		},
	}
	f := cmd.Flags()
	f.StringVar(&spec.Kind, "kind", "", "files, s3, azureblob or gcs")
	f.StringVar(&spec.Path, "path", "", "files: a folder of the server")
	f.StringVar(&spec.Endpoint, "endpoint", "", "s3, azureblob, gcs: the service URL when not the cloud's own")
	f.StringVar(&spec.Region, "region", "", "s3: region (default us-east-1)")
	f.StringVar(&spec.Bucket, "bucket", "", "s3, gcs: bucket")
	f.StringVar(&spec.Account, "account", "", "azureblob: storage account")
	f.StringVar(&spec.Container, "container", "", "azureblob: container")
	f.StringVar(&spec.Prefix, "prefix", "", "s3, azureblob, gcs: limit the datastore to this folder")
	f.BoolVar(&spec.PathStyle, "path-style", false, "s3: path-style addressing (MinIO, versitygw and most S3-compatible servers)")
	f.BoolVar(&spec.Default, "default", false, "make it the workspace's default datastore")
	cf.add(cmd)
	return cmd
}

func printDatastore(cmd *cobra.Command, cfg *clientConfig, d *atelier.Datastore) error {
	if cfg.output == "json" {
		return printJSON(cmd.OutOrStdout(), d)
	}
	t := newTable(cmd.OutOrStdout(), "FIELD", "VALUE")
	t.row("name", d.Name)
	t.row("kind", d.Kind)
	t.row("default", d.IsDefault)
	t.row("location", datastoreLocation(d))
	if d.Endpoint != "" {
		t.row("endpoint", d.Endpoint)
	}
	if d.Region != "" {
		t.row("region", d.Region)
	}
	if d.PathStyle {
		t.row("path style", true)
	}
	t.row("credentials", strings.Join(d.Credentials, ", "))
	t.row("created", d.CreatedAt)
	t.row("created by", d.CreatedBy)
	return t.flush()
}

// datastoreLocation is where a datastore's files are, in one cell.
func datastoreLocation(d *atelier.Datastore) string {
	var loc string
	switch d.Kind {
	case atelier.DatastoreFiles:
		loc = d.Path
		if loc == "" {
			loc = "(server data directory)"
		}
	case atelier.DatastoreS3:
		loc = "s3://" + d.Bucket
	case atelier.DatastoreGCS:
		loc = "gs://" + d.Bucket
	case atelier.DatastoreAzureBlob:
		loc = d.Account + "/" + d.Container
	}
	if d.Prefix != "" {
		loc = strings.TrimRight(loc, "/") + "/" + strings.Trim(d.Prefix, "/")
	}
	return loc
}

func datastoreListCmd(cfg *clientConfig) *cobra.Command {
	return &cobra.Command{
		Use: "list", Short: "List the workspace's datastores", Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cfg.client()
			if err != nil {
				return err
			}
			list, err := c.ListDatastores(cmd.Context(), cfg.workspace)
			if err != nil {
				return err
			}
			if cfg.output == "json" {
				return printJSON(cmd.OutOrStdout(), list)
			}
			t := newTable(cmd.OutOrStdout(), "NAME", "KIND", "DEFAULT", "LOCATION", "CREATED")
			for _, d := range list {
				def := ""
				if d.IsDefault {
					def = "*"
				}
				t.row(d.Name, d.Kind, def, datastoreLocation(d), d.CreatedAt)
			}
			return t.flush()
		},
	}
}

func datastoreShowCmd(cfg *clientConfig) *cobra.Command {
	return &cobra.Command{
		Use: "show NAME", Short: "Show a datastore (never its credentials)", Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cfg.client()
			if err != nil {
				return err
			}
			d, err := c.FindDatastore(cmd.Context(), cfg.workspace, args[0])
			if err != nil {
				return err
			}
			return printDatastore(cmd, cfg, d)
		},
	}
}

func datastoreUpdateCmd(cfg *clientConfig) *cobra.Command {
	var cf credentialFlags
	cmd := &cobra.Command{
		Use: "update NAME [credential flags]", Short: "Replace a datastore's credentials", Args: exactArgs(1),
		Long: `Replace a datastore's credentials whole (for instance after a key rotation): give
every credential its kind needs, as for register.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			creds, err := cf.credentials(cmd.InOrStdin())
			if err != nil {
				return err
			}
			if len(creds.Names()) == 0 {
				return usagef("give the new credentials (see '%s --help')", cmd.CommandPath())
			}
			c, err := cfg.client()
			if err != nil {
				return err
			}
			d, err := c.UpdateDatastoreCredentials(cmd.Context(), cfg.workspace, args[0], creds)
			if err != nil {
				return err
			}
			return printDatastore(cmd, cfg, d)
		},
	}
	cf.add(cmd)
	return cmd
}

func datastoreDeleteCmd(cfg *clientConfig) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use: "delete NAME [--force]", Short: "Forget a datastore (its data stays in its storage)", Args: exactArgs(1),
		Long: `Forget a datastore: the server drops its configuration and credentials; the files stay
where they are. The workspace's default datastore needs --force (the built-in datastore
"default" becomes the default again); the built-in one cannot be deleted. A datastore that
runs read or wrote (their data references) needs --force too: their lineage keeps its name.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cfg.client()
			if err != nil {
				return err
			}
			return c.DeleteDatastore(cmd.Context(), cfg.workspace, args[0], force)
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "also delete the workspace's default datastore, or one that runs reference")
	return cmd
}

func datastoreSetDefaultCmd(cfg *clientConfig) *cobra.Command {
	return &cobra.Command{
		Use: "set-default NAME", Short: "Make a datastore the workspace's default", Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cfg.client()
			if err != nil {
				return err
			}
			d, err := c.SetDefaultDatastore(cmd.Context(), cfg.workspace, args[0])
			if err != nil {
				return err
			}
			if cfg.output == "json" {
				return printJSON(cmd.OutOrStdout(), d)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s is the default datastore\n", d.Name)
			return nil
		},
	}
}

// listAll lists every file under prefix, recursively.
func listAll(ctx context.Context, c *api.Client, workspace, name, prefix string) ([]*atelier.DatastoreFile, error) {
	var files []*atelier.DatastoreFile
	q := atelier.DatastoreFileQuery{Prefix: prefix, Recursive: true, Limit: atelier.MaxPageSize}
	for {
		page, err := c.ListDatastoreFiles(ctx, workspace, name, q)
		if err != nil {
			return nil, err
		}
		files = append(files, page.Files...)
		if page.NextPageToken == "" {
			return files, nil
		}
		q.PageToken = page.NextPageToken
	}
}

// uploadItem is a local file and where it goes.
type uploadItem struct {
	local  string
	remote string
	size   int64
}

// UploadResult is what upload reports.
type UploadResult struct {
	Uploaded int   `json:"uploaded"`
	Skipped  int   `json:"skipped"`
	Bytes    int64 `json:"bytes"`
}

func datastoreUploadCmd(cfg *clientConfig) *cobra.Command {
	var target string
	var force bool
	cmd := &cobra.Command{
		Use:   "upload NAME SRC [--target PATH]",
		Short: "Upload a file or a folder (recursively) to a datastore",
		Long: `Upload SRC to the datastore NAME, 8 files at a time.

A file goes to --target, or to its base name; a --target ending in '/' is a folder. A folder
goes under --target, or under its base name: upload lake ./data puts data/... in the datastore.

A file already in the datastore with the same size and the same content is skipped: the local
file's digest is compared with the MD5 the storage lists, or, where it lists none (files
datastores, S3 multipart uploads, Azure blobs written in blocks), with the sha256 the server
reports (stored with each file this command uploads; computed by the server for a files
datastore). A file whose digest cannot be had (written by another program to S3 in parts) is
uploaded again; --force uploads everything. Except to a files datastore, each file is hashed
before it is sent, and the server stores nothing if what arrives differs. A file that changes
while it is sent is refused, and nothing is stored under its name.

On the server's machine the files are not sent: over the server's Unix socket each is passed
to the server as an open descriptor and the server copies it itself (for a files datastore, by
the kernel, as cp does), small files many to a request; the server then computes the digests
cloud storage keeps. The socket is used when --server is unix://PATH, when no --server is
given and a server started in this directory listens on .atelier/atelier.sock, and when
--server is loopback TCP (127.0.0.1, localhost) and the server there has a socket owned by
this user (ATELIER_SOCKET=off keeps such a transfer on TCP).`,
		Args: exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, src := args[0], filepath.Clean(args[1])
			items, root, err := scanUpload(src, target)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			c, err := cfg.transferClient(ctx)
			if err != nil {
				return err
			}
			ds, err := c.FindDatastore(ctx, cfg.workspace, name)
			if err != nil {
				return err
			}
			// Refused now rather than after reading and hashing what would go up.
			if err := c.DatastoreAccess(ctx, cfg.workspace, name, true); err != nil {
				return err
			}
			// Where the storage lists no MD5, the sha256 must travel with the file for the next
			// upload to compare: so it is computed before sending. A folder's digests are the
			// server's to compute, and so is the digest of a file passed over the server's
			// socket (it reads the file itself): then the file is sent at once.
			hashFirst := ds.Kind != atelier.DatastoreFiles && !c.PassesFiles()
			// What is there already, to skip unchanged files.
			remote := map[string]*atelier.DatastoreFile{}
			if !force {
				prefix := root
				if len(items) > 1 || items[0].remote != root {
					prefix = root + "/"
				}
				existing, err := listAll(ctx, c, cfg.workspace, name, prefix)
				if err != nil {
					return err
				}
				for _, f := range existing {
					remote[f.Path] = f
				}
				if err := fillDigests(ctx, c, cfg.workspace, name, items, remote); err != nil {
					return err
				}
			}
			var total int64
			for _, it := range items {
				total += it.size
			}
			var res UploadResult
			var uploaded, skipped, bytesUp atomic.Int64
			bar := newProgress(os.Stderr, "uploading to "+name, progressThreshold(total))
			up := &uploader{c: c, workspace: cfg.workspace, datastore: name, remote: remote, hashFirst: hashFirst, bar: bar,
				sent:    func(it *uploadItem) { uploaded.Add(1); bytesUp.Add(it.size) },
				skipped: func(it *uploadItem) { skipped.Add(1); bar.add(it.size) }}
			if c.PassesFiles() {
				err = up.passAll(ctx, items)
			} else {
				err = parallel(ctx, 8, items, func(ctx context.Context, it *uploadItem) error {
					sum, skip, err := up.compare(it)
					if err != nil || skip {
						return err
					}
					return up.send(ctx, it, sum)
				})
			}
			bar.done()
			res.Uploaded, res.Skipped, res.Bytes = int(uploaded.Load()), int(skipped.Load()), bytesUp.Load()
			if err != nil {
				return err
			}
			if cfg.output == "json" {
				return printJSON(cmd.OutOrStdout(), res)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "uploaded %d %s (%s), skipped %d unchanged\n", res.Uploaded, plural(res.Uploaded, "file", "files"), humanBytes(res.Bytes), res.Skipped)
			return nil
		},
	}
	cmd.Flags().StringVar(&target, "target", "", "where in the datastore (default: SRC's base name)")
	cmd.Flags().BoolVar(&force, "force", false, "upload every file, even unchanged ones")
	return cmd
}

// uploader sends the files of one upload command.
type uploader struct {
	c                    *api.Client
	workspace, datastore string
	// remote is what the datastore holds already (with digests where known), by path.
	remote    map[string]*atelier.DatastoreFile
	hashFirst bool
	bar       *progress
	sent      func(*uploadItem)
	skipped   func(*uploadItem)
}

// compare tells whether it is unchanged in the datastore (then counted as skipped), and
// returns the sha256 to send with it, when one was computed or is needed (hashFirst).
func (u *uploader) compare(it *uploadItem) (sum string, skip bool, err error) {
	if r := u.remote[it.remote]; r != nil && r.Size == it.size && (r.MD5 != "" || r.SHA256 != "") {
		// Only the digest compared: a second read, for the sha256, only when the file changed.
		withMD5 := r.MD5 != ""
		got, err := hashFile(it.local, withMD5)
		if err != nil {
			return "", false, err
		}
		if (withMD5 && got == r.MD5) || (!withMD5 && got == r.SHA256) {
			u.skipped(it)
			return "", true, nil
		}
		if !withMD5 {
			sum = got
		}
	}
	if sum == "" && u.hashFirst {
		// Sent with the file: the server refuses content that differs, and stores the digest
		// with it, so that the next upload can skip it.
		if sum, err = hashFile(it.local, false); err != nil {
			return "", false, err
		}
	}
	return sum, false, nil
}

// send uploads one file (over the Unix socket, passed as a descriptor).
func (u *uploader) send(ctx context.Context, it *uploadItem, sum string) error {
	fh, err := api.OpenLocalFile(it.local, u.bar.add)
	if err != nil {
		return err
	}
	defer fh.Close()
	f, err := u.c.WriteDatastoreFile(ctx, u.workspace, u.datastore, it.remote, fh, sum, "")
	if fh.Changed() != nil {
		// The request was cut short, so the server stored nothing.
		return fmt.Errorf("uploading %s: %w: nothing was stored", it.local, fh.Changed())
	}
	if err := uploadError(it, sum, err); err != nil {
		return err
	}
	if sum != "" && f.SHA256 != "" && f.SHA256 != sum {
		return fmt.Errorf("uploading %s: the server stored content with sha256 %s, the file has %s (did it change during the upload?)", it.local, f.SHA256, sum)
	}
	u.sent(it)
	return nil
}

// uploadError says what failed in uploading it with the sha256 sum (if any), if anything. The
// server refuses content that does not match the sum sent: whether the file changed since it
// was hashed is asked of the file, not read into the server's message.
func uploadError(it *uploadItem, sum string, err error) error {
	switch {
	case err == nil:
		return nil
	case sum != "" && atelier.ErrorCode(err) == atelier.EINVALID:
		if now, herr := hashFile(it.local, false); herr == nil && now != sum {
			return fmt.Errorf("uploading %s: the file changed after it was read: nothing was stored", it.local)
		}
	}
	return fmt.Errorf("uploading %s: %w", it.local, err)
}

// passAll uploads items over the server's Unix socket: the changed ones are found first, then
// small files go many to a request (one descriptor each), big ones alone.
func (u *uploader) passAll(ctx context.Context, items []*uploadItem) error {
	var mu sync.Mutex
	var changed []passedItem
	err := parallel(ctx, 8, items, func(ctx context.Context, it *uploadItem) error {
		sum, skip, err := u.compare(it)
		if err == nil && !skip {
			mu.Lock()
			changed = append(changed, passedItem{it, sum})
			mu.Unlock()
		}
		return err
	})
	if err != nil {
		return err
	}
	return parallel(ctx, 8, batches(changed, func(p passedItem) int64 { return p.size }), func(ctx context.Context, batch []passedItem) error {
		if len(batch) == 1 {
			return u.send(ctx, batch[0].uploadItem, batch[0].sum)
		}
		files := make([]api.PassedTransfer, len(batch))
		for i, p := range batch {
			f, err := os.Open(p.local)
			if err != nil {
				return err
			}
			defer f.Close()
			files[i] = api.PassedTransfer{Path: p.remote, File: f, SHA256: p.sum}
		}
		_, errs, err := u.c.UploadPassedFiles(ctx, u.workspace, u.datastore, files, u.bar.add)
		if err != nil {
			return fmt.Errorf("uploading %s and %d more: %w", batch[0].local, len(batch)-1, err)
		}
		for i, p := range batch {
			if err := uploadError(p.uploadItem, p.sum, errs[i]); err != nil {
				return err
			}
			u.sent(p.uploadItem)
		}
		return nil
	})
}

type passedItem struct {
	*uploadItem
	sum string
}

// Files passed over the Unix socket go many to a request when smaller than passAlone, at
// most passBatch to a request (each is an open descriptor on both sides), and spread over the
// transfers in parallel.
const (
	passAlone = 16 << 20
	passBatch = 64
)

// batches groups items for passing: big ones alone, the others in up to passBatch, in about as
// many batches as transfers run in parallel (8).
func batches[T any](items []T, size func(T) int64) [][]T {
	var out [][]T
	var small []T
	for _, it := range items {
		if size(it) >= passAlone {
			out = append(out, []T{it})
		} else {
			small = append(small, it)
		}
	}
	per := min(max((len(small)+7)/8, 1), passBatch)
	for len(small) > 0 {
		n := min(per, len(small))
		out = append(out, small[:n])
		small = small[n:]
	}
	return out
}

// scanUpload lists what to upload and the datastore path it goes to (root: the file's path, or
// the folder all files go under).
func scanUpload(src, target string) ([]*uploadItem, string, error) {
	fi, err := os.Stat(src)
	if err != nil {
		return nil, "", usagef("cannot read %s: %v", src, err)
	}
	base := filepath.Base(src)
	if abs, err := filepath.Abs(src); err == nil {
		base = filepath.Base(abs)
	}
	target = strings.TrimPrefix(target, "/")
	if !fi.IsDir() {
		remote := target
		switch {
		case target == "":
			remote = base
		case strings.HasSuffix(target, "/"):
			remote = target + base
		}
		if err := atelier.ValidatePath(remote); err != nil {
			return nil, "", usagef("%s", atelier.ErrorMessage(err))
		}
		return []*uploadItem{{local: src, remote: remote, size: fi.Size()}}, remote, nil
	}
	root := strings.TrimSuffix(target, "/")
	if target == "" {
		root = base
	}
	if err := atelier.ValidatePath(root); err != nil {
		return nil, "", usagef("%s", atelier.ErrorMessage(err))
	}
	var items []*uploadItem
	err = filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		info, err := os.Stat(p)
		if err != nil {
			return err
		}
		if !info.Mode().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		remote := path.Join(root, filepath.ToSlash(rel))
		if err := atelier.ValidatePath(remote); err != nil {
			return usagef("cannot upload %s: %s", p, atelier.ErrorMessage(err))
		}
		items = append(items, &uploadItem{local: p, remote: remote, size: info.Size()})
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	if len(items) == 0 {
		return nil, "", usagef("%s holds no files", src)
	}
	return items, root, nil
}

// hashFile returns the hex sha256 of a local file, or with md5 its MD5.
func hashFile(p string, md5sum bool) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	buf := hashBufs.Get().(*[]byte)
	defer hashBufs.Put(buf)
	h := sha256.New()
	if md5sum {
		h = md5.New()
	}
	if _, err := io.CopyBuffer(h, f, *buf); err != nil {
		return "", fmt.Errorf("reading %s: %w", p, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// fillDigests asks the server for the sha256 of the remote files that could be unchanged (same
// size as the local file) but are listed without an MD5 to compare.
func fillDigests(ctx context.Context, c *api.Client, workspace, name string, items []*uploadItem, remote map[string]*atelier.DatastoreFile) error {
	var paths []string
	for _, it := range items {
		if r := remote[it.remote]; r != nil && r.Size == it.size && r.MD5 == "" && r.SHA256 == "" {
			paths = append(paths, it.remote)
		}
	}
	for len(paths) > 0 {
		n := min(len(paths), atelier.MaxDatastoreDigests)
		files, err := c.DatastoreFileDigests(ctx, workspace, name, paths[:n])
		if err != nil {
			return fmt.Errorf("comparing with the files of datastore %q: %w", name, err)
		}
		for _, f := range files {
			if r := remote[f.Path]; r != nil && f.Size == r.Size {
				r.SHA256 = f.SHA256
			}
		}
		paths = paths[n:]
	}
	return nil
}

func datastoreDownloadCmd(cfg *clientConfig) *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "download NAME PATH -d DIR",
		Short: "Download a file or a folder of a datastore",
		Long: `Download PATH of the datastore NAME into DIR: a file as DIR/<its base name>, a folder as
DIR/<its base name>/..., 8 files at a time. Each file is written whole or not at all.

Over the server's Unix socket (see 'atelier datastore upload --help') the server writes each
file into a temporary file the command passes it, small files many to a request.`,
		Args: exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, p := args[0], strings.Trim(args[1], "/")
			if err := atelier.ValidatePath(p); err != nil {
				return usagef("%s", atelier.ErrorMessage(err))
			}
			ctx := cmd.Context()
			c, err := cfg.transferClient(ctx)
			if err != nil {
				return err
			}
			files, err := listAll(ctx, c, cfg.workspace, name, p+"/")
			if err != nil {
				return err
			}
			var items []downloadItem
			var total int64
			base := path.Base(p)
			if len(files) == 0 {
				items = []downloadItem{{remote: p, local: filepath.Join(dir, base)}}
			}
			for _, f := range files {
				rel := strings.TrimPrefix(f.Path, p+"/")
				if err := atelier.ValidatePath(rel); err != nil {
					return fmt.Errorf("datastore %q holds %q, which cannot be a local file name: %s", name, f.Path, atelier.ErrorMessage(err))
				}
				items = append(items, downloadItem{remote: f.Path, local: filepath.Join(dir, base, filepath.FromSlash(rel)), size: f.Size})
				total += f.Size
			}
			bar := newProgress(os.Stderr, "downloading from "+name, progressThreshold(total))
			defer bar.done()
			var count atomic.Int64
			one := func(ctx context.Context, it downloadItem) error {
				if err := os.MkdirAll(filepath.Dir(it.local), 0o755); err != nil {
					return err
				}
				return writeFileAtomic(it.local, func(w *os.File) error {
					if _, err := c.DownloadDatastoreFile(ctx, cfg.workspace, name, it.remote, w, bar.add); err != nil {
						return err
					}
					count.Add(1)
					return nil
				})
			}
			if c.PassesFiles() {
				// Over the server's Unix socket small files go many to a request.
				sizeOf := func(it downloadItem) int64 { return it.size }
				err = parallel(ctx, 8, batches(items, sizeOf), func(ctx context.Context, batch []downloadItem) error {
					if len(batch) == 1 {
						return one(ctx, batch[0])
					}
					n, err := downloadPassed(ctx, c, cfg.workspace, name, batch, bar.add)
					count.Add(int64(n))
					return err
				})
			} else {
				err = parallel(ctx, 8, items, one)
			}
			if err != nil {
				return err
			}
			if cfg.output == "json" {
				return printJSON(cmd.OutOrStdout(), map[string]int64{"downloaded": count.Load()})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "downloaded %d %s\n", count.Load(), plural(int(count.Load()), "file", "files"))
			return nil
		},
	}
	cmd.Flags().StringVarP(&dir, "dir", "d", ".", "destination folder")
	return cmd
}

// downloadItem is a datastore file and where it goes.
type downloadItem struct {
	remote, local string
	size          int64
}

// downloadPassed downloads a batch of files over the server's Unix socket, each into a
// temporary file renamed into place once whole; it returns how many it downloaded.
func downloadPassed(ctx context.Context, c *api.Client, workspace, name string, batch []downloadItem, progress func(int64)) (int, error) {
	files := make([]api.PassedTransfer, len(batch))
	for i, it := range batch {
		if err := os.MkdirAll(filepath.Dir(it.local), 0o755); err != nil {
			return 0, err
		}
		tmp, err := tempFileFor(it.local)
		if err != nil {
			return 0, err
		}
		defer os.Remove(tmp.Name())
		defer tmp.Close()
		files[i] = api.PassedTransfer{Path: it.remote, File: tmp}
	}
	_, errs, err := c.DownloadPassedFiles(ctx, workspace, name, files, progress)
	if err != nil {
		return 0, err
	}
	done := 0
	for i, it := range batch {
		if errs[i] != nil {
			return done, errs[i]
		}
		if err := placeFile(files[i].File, it.local); err != nil {
			return done, err
		}
		done++
	}
	return done, nil
}

func datastoreLsCmd(cfg *clientConfig) *cobra.Command {
	var recursive bool
	cmd := &cobra.Command{
		Use: "ls NAME [PATH] [-r]", Short: "List a datastore's files (a folder's, with PATH)",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 1 || len(args) > 2 {
				return usagef("%s takes a datastore and optionally a path; see '%s --help'", cmd.CommandPath(), cmd.CommandPath())
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			name, prefix := args[0], ""
			if len(args) == 2 {
				if prefix = strings.Trim(args[1], "/"); prefix != "" {
					prefix += "/"
				}
			}
			c, err := cfg.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			var files []*atelier.DatastoreFile
			q := atelier.DatastoreFileQuery{Prefix: prefix, Recursive: recursive, Limit: atelier.MaxPageSize}
			for {
				page, err := c.ListDatastoreFiles(ctx, cfg.workspace, name, q)
				if err != nil {
					return err
				}
				files = append(files, page.Files...)
				if page.NextPageToken == "" {
					break
				}
				q.PageToken = page.NextPageToken
			}
			if len(files) == 0 && prefix != "" {
				// PATH may be a file rather than a folder.
				page, err := c.ListDatastoreFiles(ctx, cfg.workspace, name, atelier.DatastoreFileQuery{Prefix: strings.TrimSuffix(prefix, "/")})
				if err != nil {
					return err
				}
				for _, f := range page.Files {
					if f.Path == strings.TrimSuffix(prefix, "/") {
						files = append(files, f)
					}
				}
				if len(files) == 0 {
					return atelier.Errorf(atelier.ENOTFOUND, "datastore %q has no file or folder %q", name, strings.TrimSuffix(prefix, "/"))
				}
			}
			if cfg.output == "json" {
				return printJSON(cmd.OutOrStdout(), files)
			}
			t := newTable(cmd.OutOrStdout(), "PATH", "SIZE", "MODIFIED", "MD5")
			for _, f := range files {
				if f.Dir {
					t.row(f.Path, "-", "-", "-")
					continue
				}
				t.row(f.Path, humanBytes(f.Size), f.ModifiedAt, f.MD5)
			}
			return t.flush()
		},
	}
	cmd.Flags().BoolVarP(&recursive, "recursive", "r", false, "list everything under PATH")
	return cmd
}

func datastoreRmCmd(cfg *clientConfig) *cobra.Command {
	var recursive bool
	cmd := &cobra.Command{
		Use: "rm NAME PATH [-r]", Short: "Delete a file, or a folder with -r", Args: exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			p := strings.Trim(args[1], "/")
			if err := atelier.ValidatePath(p); err != nil {
				return usagef("%s", atelier.ErrorMessage(err))
			}
			c, err := cfg.client()
			if err != nil {
				return err
			}
			n, err := c.DeleteDatastoreFiles(cmd.Context(), cfg.workspace, args[0], p, recursive)
			if err != nil {
				return err
			}
			if cfg.output == "json" {
				return printJSON(cmd.OutOrStdout(), api.DatastoreDeleted{Deleted: n})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "deleted %d %s\n", n, plural(int(n), "file", "files"))
			return nil
		},
	}
	cmd.Flags().BoolVarP(&recursive, "recursive", "r", false, "delete the folder PATH and everything under it")
	return cmd
}
