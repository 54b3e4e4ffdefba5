package local

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/atelier-ml/atelier"
)

// A run's data references live next to its working directory, in <run>/data/<name>, so they
// cannot collide with a data/ folder of the snapshot; the script finds them through
// ATELIER_DATA_<NAME>, and the SDK through ATELIER_DATASETS (name → mode and path, as JSON).

// dataWorkers is how many files move at once.
const dataWorkers = 8

// DatasetsEnv is the environment variable that describes every data reference to the SDK.
const DatasetsEnv = "ATELIER_DATASETS"

type datasetEnv struct {
	Mode string `json:"mode"`
	Path string `json:"path"`
}

// dataDir is the local folder of a data reference.
func dataDir(runDir string, ref atelier.DataReference) string {
	return filepath.Join(runDir, "data", ref.Name)
}

// preparedData is what prepareData did: the script's environment variables, the folders it
// mounted (left as they are when the run's files are handed to its user) and how to unmount
// them.
type preparedData struct {
	env    []string
	mounts []string
	undo   []func()
}

func (p *preparedData) unmount() {
	for _, u := range p.undo {
		u()
	}
}

// prepareData downloads the job's download references, mounts its mount references (or
// downloads them where no FUSE file system can be mounted) and creates an empty folder for each
// upload reference. Its environment variables give the script their paths.
func (e *Executor) prepareData(ctx context.Context, host atelier.JobHost, job *atelier.Job, runDir string, log io.Writer) (*preparedData, error) {
	p := &preparedData{}
	if len(job.Config.Data) == 0 {
		return p, nil
	}
	abs, err := filepath.Abs(runDir)
	if err != nil {
		return p, err
	}
	sets := map[string]datasetEnv{}
	for _, ref := range job.Config.Data {
		dir := dataDir(abs, ref)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return p, atelier.Errorf(atelier.EINTERNAL, "data %q: %v", ref.Name, err)
		}
		local, mode := dir, ref.Mode
		if ref.Mode == atelier.DataMount {
			l, undo, err := mount(ctx, host, job, ref, dir, filepath.Join(abs, "data-cache", ref.Name), log)
			switch {
			case err == nil:
				local = l
				p.mounts = append(p.mounts, dir, filepath.Join(abs, "data-cache"))
				p.undo = append(p.undo, undo)
			case atelier.ErrorCode(err) != atelier.EINTERNAL:
				return p, err // the reference itself is wrong
			default:
				fmt.Fprintf(log, "data %s: no FUSE file system can be mounted here (%v): downloading it instead\n", ref.Name, err)
				mode = atelier.DataDownload
			}
		}
		if mode == atelier.DataDownload {
			if local, err = download(ctx, host, job, ref, dir, log); err != nil {
				return p, err
			}
		}
		p.env = append(p.env, ref.EnvVar()+"="+local)
		sets[ref.Name] = datasetEnv{Mode: ref.Mode, Path: local}
	}
	b, _ := json.Marshal(sets)
	p.env = append(p.env, DatasetsEnv+"="+string(b))
	return p, nil
}

// download copies the files of a reference into dir and returns the local path to give the
// script: dir, or the file itself when the reference names one file.
func download(ctx context.Context, host atelier.JobHost, job *atelier.Job, ref atelier.DataReference, dir string, log io.Writer) (string, error) {
	where := ref.Datastore + ":" + ref.Path
	files, err := host.ListData(ctx, job, ref)
	if err != nil {
		return "", atelier.Wrap(err, "data %q: listing %s", ref.Name, where)
	}
	if len(files) == 0 {
		return "", atelier.Errorf(atelier.ENOTFOUND, "data %q: %s holds no files", ref.Name, where)
	}
	rels, single, err := localNames(ref, files)
	if err != nil {
		return "", err
	}
	var size int64
	for _, f := range files {
		size += f.Size
	}
	fmt.Fprintf(log, "downloading data %s: %d files (%d bytes) from %s\n", ref.Name, len(files), size, where)
	err = parallel(ctx, len(files), func(i int) error {
		dst := filepath.Join(dir, filepath.FromSlash(rels[i]))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		rc, err := host.OpenData(ctx, job, ref, files[i].Path)
		if err != nil {
			return atelier.Wrap(err, "%s", files[i].Path)
		}
		defer rc.Close()
		f, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if err != nil {
			return err
		}
		if _, err := io.Copy(f, rc); err != nil {
			f.Close()
			return fmt.Errorf("%s: %v", files[i].Path, err)
		}
		return f.Close()
	})
	if err != nil {
		return "", atelier.Errorf(atelier.EUNAVAILABLE, "data %q: downloading %s: %v", ref.Name, where, err)
	}
	if single {
		return filepath.Join(dir, filepath.FromSlash(rels[0])), nil
	}
	return dir, nil
}

// uploadData sends the folders of the job's upload references to their datastore paths.
func (e *Executor) uploadData(ctx context.Context, host atelier.JobHost, job *atelier.Job, runDir string) error {
	for _, ref := range job.Config.Data {
		if ref.Mode != atelier.DataUpload {
			continue
		}
		dir := dataDir(runDir, ref)
		var rels []string
		err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, os.ErrNotExist) {
					return nil
				}
				return err
			}
			if !d.Type().IsRegular() {
				return nil // symlinks could point anywhere on this machine: not uploaded
			}
			rel, _ := filepath.Rel(dir, p)
			rels = append(rels, filepath.ToSlash(rel))
			return nil
		})
		if err == nil {
			err = parallel(ctx, len(rels), func(i int) error {
				f, err := os.Open(filepath.Join(dir, filepath.FromSlash(rels[i])))
				if err != nil {
					return err
				}
				defer f.Close()
				if err := host.WriteData(ctx, job, ref, ref.Folder()+rels[i], f); err != nil {
					return atelier.Wrap(err, "%s", rels[i])
				}
				return nil
			})
		}
		if err != nil {
			return &atelier.Error{Code: atelier.EUNAVAILABLE, Cause: err,
				Message: fmt.Sprintf("uploading data %q to %s:%s: %s", ref.Name, ref.Datastore, ref.Folder(), atelier.ErrorMessage(err))}
		}
	}
	return nil
}

// parallel calls f for 0..n-1 with a few workers and returns the first error; after an error
// no new call starts.
func parallel(ctx context.Context, n int, f func(i int) error) error {
	var (
		mu    sync.Mutex
		first error
		next  int
		wg    sync.WaitGroup
	)
	take := func() (int, bool) {
		mu.Lock()
		defer mu.Unlock()
		if first != nil || next >= n {
			return 0, false
		}
		if err := ctx.Err(); err != nil {
			first = err
			return 0, false
		}
		next++
		return next - 1, true
	}
	for w := 0; w < min(dataWorkers, n); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i, ok := take()
				if !ok {
					return
				}
				if err := f(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	return first
}
