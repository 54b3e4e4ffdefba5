package ui

import (
	"archive/zip"
	"bytes"
	"io"
	"strings"

	"github.com/atelier-ml/atelier"
)

// maxSnapshotPreview bounds the snapshots whose files the snapshot page shows: a file is read
// out of the snapshot's zip, made in memory.
const maxSnapshotPreview = 32 << 20

type snapshotData struct {
	Run      *atelier.Run
	Snapshot *atelier.Snapshot
	Path     string // the file shown, "" for none
	Text     string
	Binary   bool
	TooBig   bool
}

// snapshot is the code of a run: its snapshot's files, and one of them shown.
func (h *Handler) snapshot(q *request) error {
	ctx, ws, id := q.ctx(), q.ws(), q.r.PathValue("run")
	run, err := h.svc.FindRun(ctx, ws, id)
	if err != nil {
		return err
	}
	if run.SnapshotID == "" {
		return atelier.Errorf(atelier.ENOTFOUND, "run %s has no snapshot", run.ID)
	}
	snap, err := h.svc.FindSnapshot(ctx, ws, run.SnapshotID)
	if err != nil {
		return err
	}
	d := &snapshotData{Run: run, Snapshot: snap, Path: q.r.URL.Query().Get("path")}
	if d.Path != "" {
		found := false
		for _, e := range snap.Entries {
			found = found || e.Path == d.Path
		}
		if !found {
			return atelier.Errorf(atelier.ENOTFOUND, "the snapshot of run %s has no file %q", run.ID, d.Path)
		}
		if snap.Size > maxSnapshotPreview {
			d.TooBig = true
		} else if err := h.snapshotFile(q, d); err != nil {
			return err
		}
	}
	return q.show(h, "snapshot", "Code of "+shortID(run.ID), "runs", d)
}

func (h *Handler) snapshotFile(q *request, d *snapshotData) error {
	var buf bytes.Buffer
	if err := h.svc.WriteSnapshotZip(q.ctx(), q.ws(), d.Snapshot.ID, &buf); err != nil {
		return err
	}
	zr, err := zip.NewReader(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		return err
	}
	for _, f := range zr.File {
		if f.Name != d.Path {
			continue
		}
		rc, err := f.Open()
		if err != nil {
			return err
		}
		defer rc.Close()
		data, err := io.ReadAll(io.LimitReader(rc, previewBytes))
		if err != nil {
			return err
		}
		if bytes.IndexByte(data[:min(len(data), 8192)], 0) >= 0 {
			d.Binary = true
			return nil
		}
		d.Text = strings.ToValidUTF8(string(data), "\uFFFD")
		return nil
	}
	return atelier.Errorf(atelier.ENOTFOUND, "the snapshot has no file %q", d.Path)
}
