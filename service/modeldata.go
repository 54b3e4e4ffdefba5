package service

import (
	"context"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"time"

	"github.com/atelier-ml/atelier"
)

// modelDataEvery is how often the model data a service's replicas collected is shipped.
const modelDataEvery = 10 * time.Second

// modelDataShipper copies what score.py's ModelDataCollector wrote in a service's modeldata
// folder to the workspace's default datastore, under Azure ML's layout
// modeldata/<workspace>/<service>/<model>/<version>/<designation>/<yyyy>/<mm>/<dd>/data.csv.
// A file is sent again whole when it grew (datastores store whole objects).
type modelDataShipper struct {
	s         *WebServices
	workspace string
	service   string
	dir       string
	sent      map[string]int64 // relative path → size sent
	// gather, when set, brings what the replicas collected elsewhere into dir before each
	// shipment (final: the last one), as the kubernetes target's pods' model data.
	gather func(ctx context.Context, final bool)
}

func (m *modelDataShipper) loop(ctx context.Context) {
	t := time.NewTicker(modelDataEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			ctx := context.WithoutCancel(ctx)
			if m.gather != nil {
				m.gather(ctx, true)
			}
			m.ship(ctx) // what the last requests collected
			return
		case <-t.C:
			if m.gather != nil {
				m.gather(ctx, false)
			}
			m.ship(ctx)
		}
	}
}

// ship sends the files that grew since they were last sent.
func (m *modelDataShipper) ship(ctx context.Context) {
	type file struct {
		rel  string
		size int64
	}
	var changed []file
	filepath.WalkDir(m.dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return nil
		}
		fi, err := e.Info()
		if err != nil {
			return nil
		}
		rel, _ := filepath.Rel(m.dir, p)
		if m.sent[rel] != fi.Size() {
			changed = append(changed, file{filepath.ToSlash(rel), fi.Size()})
		}
		return nil
	})
	if len(changed) == 0 {
		return
	}
	if err := m.s.data.ensureDefaultDatastore(ctx, m.workspace); err != nil {
		m.s.log.Warn("model data: no default datastore", "workspace", m.workspace, "service", m.service, "err", err)
		return
	}
	list, err := m.s.store.ListDatastores(ctx, m.workspace)
	if err != nil {
		return
	}
	var def *atelier.Datastore
	for _, d := range list {
		if d.IsDefault {
			def = d
		}
	}
	if def == nil {
		return
	}
	b, err := m.s.data.openBucket(ctx, def)
	if err != nil {
		m.s.log.Warn("model data: opening the default datastore", "workspace", m.workspace, "datastore", def.Name, "err", err)
		return
	}
	defer b.Close()
	for _, f := range changed {
		r, err := os.Open(filepath.Join(m.dir, filepath.FromSlash(f.rel)))
		if err != nil {
			continue
		}
		dst := path.Join("modeldata", m.workspace, m.service, f.rel)
		_, err = b.Write(ctx, dst, &limitedFile{r, f.size}, "", "text/csv")
		r.Close()
		if err != nil {
			m.s.log.Warn("model data: writing to the default datastore", "workspace", m.workspace, "path", dst, "err", err)
			continue
		}
		m.sent[f.rel] = f.size
	}
}

// limitedFile reads a file up to the size it had when it was listed (a replica may be appending).
type limitedFile struct {
	f    *os.File
	left int64
}

func (l *limitedFile) Read(p []byte) (int, error) {
	if l.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.f.Read(p)
	l.left -= int64(n)
	return n, err
}
