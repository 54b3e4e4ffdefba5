package service

import (
	"context"
	"encoding/json"
	"io"

	"github.com/atelier-ml/atelier"
)

// UploadFile streams a file into the object store and records it under the run. The file
// appears only once its content is stored whole.
func (s *Runs) UploadFile(ctx context.Context, workspace, runID, path string, r io.Reader, digest string) (*atelier.File, error) {
	if err := s.authorizeWrite(ctx, workspace, runID); err != nil {
		return nil, err
	}
	if err := atelier.ValidatePath(path); err != nil {
		return nil, err
	}
	if digest != "" {
		if err := atelier.ValidateDigest(digest); err != nil {
			return nil, err
		}
	}
	// Check the run first so a bad id fails before any byte is stored.
	if _, err := s.store.FindRun(ctx, workspace, runID); err != nil {
		return nil, err
	}
	return s.uploadFile(ctx, workspace, runID, path, r, digest)
}

func (s *Runs) uploadFile(ctx context.Context, workspace, runID, path string, r io.Reader, digest string) (*atelier.File, error) {
	obj, err := s.putObject(ctx, workspace, r, digest)
	if err != nil {
		return nil, err
	}
	f := &atelier.File{Path: path, Size: obj.Size, Digest: obj.Digest}
	if err := s.store.PutFile(ctx, workspace, runID, f); err != nil {
		return nil, err
	}
	return f, nil
}

// ListFiles lists a run's files and logs under a directory prefix.
func (s *Runs) ListFiles(ctx context.Context, workspace, runID, prefix string) ([]*atelier.File, error) {
	if err := s.authorizeRunRead(ctx, workspace, runID); err != nil {
		return nil, err
	}
	return s.store.ListFiles(ctx, workspace, runID, prefix)
}

// OpenFile opens a run's file (or a log, read whole) for streaming.
func (s *Runs) OpenFile(ctx context.Context, workspace, runID, path string) (*atelier.File, io.ReadCloser, error) {
	if err := s.authorizeRunRead(ctx, workspace, runID); err != nil {
		return nil, nil, err
	}
	f, err := s.store.FindFile(ctx, workspace, runID, path)
	if err != nil {
		return nil, nil, err
	}
	if f.Log {
		return f, &logReader{ctx: ctx, s: s, workspace: workspace, runID: runID, path: path, size: f.Size}, nil
	}
	rc, err := s.objects.OpenObject(ctx, f.Digest)
	if err != nil {
		return nil, nil, err
	}
	return f, rc, nil
}

// logReader reads a log up to the size it had when opened, a chunk at a time.
type logReader struct {
	ctx                    context.Context
	s                      *Runs
	workspace, runID, path string
	offset, size           int64
	buf                    []byte
}

const logReadChunk = 1 << 20

func (l *logReader) Read(p []byte) (int, error) {
	for len(l.buf) == 0 {
		if l.offset >= l.size {
			return 0, io.EOF
		}
		chunk, err := l.s.store.ReadLog(l.ctx, l.workspace, l.runID, l.path, l.offset, min(logReadChunk, l.size-l.offset))
		if err != nil {
			return 0, err
		}
		if len(chunk.Data) == 0 {
			return 0, io.EOF
		}
		l.buf, l.offset = chunk.Data, l.offset+int64(len(chunk.Data))
	}
	n := copy(p, l.buf)
	l.buf = l.buf[n:]
	return n, nil
}

func (l *logReader) Close() error { return nil }

// MaxLogAppend bounds one append, so a runaway writer cannot post a huge body at once.
const MaxLogAppend = 8 << 20

// AppendLog appends to a run's log and pushes the new text to watchers.
func (s *Runs) AppendLog(ctx context.Context, workspace, runID, path string, data []byte) error {
	if err := s.authorizeWrite(ctx, workspace, runID); err != nil {
		return err
	}
	if len(data) > MaxLogAppend {
		return atelier.Errorf(atelier.ETOOLARGE, "log append of %d bytes is above the limit of %d", len(data), MaxLogAppend)
	}
	// A script may append to its logs through the API as well as print: the values of its
	// secrets are masked here as the executor masks them in what it captures.
	mask, err := s.logMasker(ctx, workspace, runID)
	if err != nil {
		return err
	}
	return s.appendLog(ctx, workspace, runID, path, mask.Mask(data))
}

// logMasker returns the masker of a log the caller appends to runID: the secrets given to that
// run and, for a run's token, to the token's run (its script may write them into a child's
// log). Each append is masked on its own: a value split between two appends is not.
func (s *Runs) logMasker(ctx context.Context, workspace, runID string) (*atelier.Masker, error) {
	ids := []string{runID}
	if p := runPrincipal(ctx); p != nil && p.RunID != runID {
		ids = append(ids, p.RunID)
	}
	all := map[string]string{}
	for _, id := range ids {
		secrets, err := s.runSecrets(ctx, workspace, id)
		if err != nil {
			return nil, err
		}
		for name, v := range secrets {
			all[id+"/"+name] = v
		}
	}
	return atelier.NewMasker(all), nil
}

// runSecrets returns the secret values a run was given: those of its job while this server
// runs it (with the run's token), else those its configuration names as the vault holds them
// (a run started by another replica, or ended). A queued run was given none yet.
func (s *Runs) runSecrets(ctx context.Context, workspace, id string) (map[string]string, error) {
	s.sched.mu.Lock()
	secrets, ok := s.sched.secrets[id]
	s.sched.mu.Unlock()
	if ok {
		return secrets, nil
	}
	run, err := s.store.FindRun(ctx, workspace, id)
	if err != nil {
		return nil, err
	}
	var config atelier.RunConfig
	if run.Status == atelier.StatusQueued || len(run.Config) == 0 || json.Unmarshal(run.Config, &config) != nil {
		return nil, nil
	}
	secrets = map[string]string{}
	for _, name := range config.Secrets {
		v, err := s.data.openRunSecrets(ctx, workspace, []string{name})
		if atelier.ErrorCode(err) == atelier.EINVALID {
			continue // deleted since: its value is unknown
		} else if err != nil {
			return nil, err
		}
		secrets[name] = v[name]
	}
	return secrets, nil
}

func (s *Runs) appendLog(ctx context.Context, workspace, runID, path string, data []byte) error {
	size, err := s.store.AppendLog(ctx, workspace, runID, path, data)
	if err != nil {
		return err
	}
	s.publish(workspace, atelier.EventLog, runID, LogEvent{Path: path, Offset: size - int64(len(data)), Text: string(data)})
	return nil
}

// LogEvent is the data of a run.log event.
type LogEvent struct {
	Path   string `json:"path"`
	Offset int64  `json:"offset"`
	Text   string `json:"text"`
}

// ReadLog reads a log from an offset.
func (s *Runs) ReadLog(ctx context.Context, workspace, runID, path string, offset, limit int64) (*atelier.LogChunk, error) {
	if err := s.authorizeRunRead(ctx, workspace, runID); err != nil {
		return nil, err
	}
	// A live run's log that nothing was written to reads as empty; a path no log can have does not.
	if err := atelier.ValidatePath(path); err != nil {
		return nil, err
	}
	return s.store.ReadLog(ctx, workspace, runID, path, offset, limit)
}
