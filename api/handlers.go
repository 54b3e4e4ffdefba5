package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/series"
)

func (s *Server) listWorkspaces(w http.ResponseWriter, r *http.Request) error {
	list, err := s.svc.ListWorkspaces(r.Context())
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]any{"workspaces": list})
}

// WorkspaceCreate is the body of POST /workspaces.
type WorkspaceCreate struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
}

func (s *Server) createWorkspace(w http.ResponseWriter, r *http.Request) error {
	var req WorkspaceCreate
	if err := s.readJSON(w, r, &req); err != nil {
		return err
	}
	ws := &atelier.Workspace{Name: req.Name, Description: req.Description}
	if err := s.svc.CreateWorkspace(r.Context(), ws); err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, ws)
}

func (s *Server) getWorkspace(w http.ResponseWriter, r *http.Request) error {
	ws, err := s.svc.FindWorkspace(r.Context(), r.PathValue("workspace"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, ws)
}

func (s *Server) deleteWorkspace(w http.ResponseWriter, r *http.Request) error {
	force, err := queryBool(r, "force")
	if err != nil {
		return err
	}
	if err := s.svc.DeleteWorkspace(r.Context(), r.PathValue("workspace"), force); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) listExperiments(w http.ResponseWriter, r *http.Request) error {
	archived, err := queryBool(r, "include_archived")
	if err != nil {
		return err
	}
	f := atelier.ExperimentFilter{IncludeArchived: archived, Name: r.URL.Query().Get("name")}
	if id, err := queryInt(r, "id"); err != nil {
		return err
	} else if id != nil {
		if *id <= 0 {
			return atelier.Errorf(atelier.EINVALID, "query parameter id=%d: experiment ids are positive", *id)
		}
		f.ID = *id
	}
	list, err := s.svc.ListExperiments(r.Context(), r.PathValue("workspace"), f)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]any{"experiments": list})
}

func (s *Server) getExperiment(w http.ResponseWriter, r *http.Request) error {
	e, err := s.svc.FindExperiment(r.Context(), r.PathValue("workspace"), r.PathValue("experiment"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, e)
}

func (s *Server) updateExperiment(w http.ResponseWriter, r *http.Request) error {
	var upd atelier.ExperimentUpdate
	if err := s.readJSON(w, r, &upd); err != nil {
		return err
	}
	e, err := s.svc.UpdateExperiment(r.Context(), r.PathValue("workspace"), r.PathValue("experiment"), upd)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, e)
}

func (s *Server) createRun(w http.ResponseWriter, r *http.Request) error {
	var c atelier.RunCreate
	if err := s.readJSON(w, r, &c); err != nil {
		return err
	}
	run, err := s.svc.CreateRun(r.Context(), r.PathValue("workspace"), c)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, run)
}

func (s *Server) listRuns(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	rq := atelier.RunQuery{Experiment: q.Get("experiment"), ParentID: q.Get("parent_id"), Filter: q.Get("filter"),
		OrderBy: q.Get("order_by"), PageToken: q.Get("page_token")}
	var err error
	if rq.RootOnly, err = queryBool(r, "root_only"); err != nil {
		return err
	}
	limit, err := queryInt(r, "limit")
	if err != nil {
		return err
	}
	if limit != nil {
		rq.Limit = int(*limit)
	}
	return s.runPage(w, r, rq)
}

func (s *Server) runPage(w http.ResponseWriter, r *http.Request, rq atelier.RunQuery) error {
	if rq.Limit < 0 {
		return atelier.Errorf(atelier.EINVALID, "limit %d is negative", rq.Limit)
	}
	page, err := s.svc.ListRuns(r.Context(), r.PathValue("workspace"), rq)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, page)
}

func (s *Server) searchRuns(w http.ResponseWriter, r *http.Request) error {
	var rq atelier.RunQuery
	if err := s.readJSON(w, r, &rq); err != nil {
		return err
	}
	return s.runPage(w, r, rq)
}

func (s *Server) getRun(w http.ResponseWriter, r *http.Request) error {
	run, err := s.svc.FindRun(r.Context(), r.PathValue("workspace"), r.PathValue("run"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, run)
}

func (s *Server) listChildren(w http.ResponseWriter, r *http.Request) error {
	// Check the parent exists so an unknown id is a 404, not an empty list.
	if _, err := s.svc.FindRun(r.Context(), r.PathValue("workspace"), r.PathValue("run")); err != nil {
		return err
	}
	limit, err := queryInt(r, "limit")
	if err != nil {
		return err
	}
	rq := atelier.RunQuery{ParentID: r.PathValue("run"), OrderBy: "created_at asc", PageToken: r.URL.Query().Get("page_token")}
	if limit != nil {
		rq.Limit = int(*limit)
	}
	return s.runPage(w, r, rq)
}

func (s *Server) updateRunStatus(w http.ResponseWriter, r *http.Request) error {
	var upd atelier.RunStatusUpdate
	if err := s.readJSON(w, r, &upd); err != nil {
		return err
	}
	run, err := s.svc.UpdateRunStatus(r.Context(), r.PathValue("workspace"), r.PathValue("run"), upd)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, run)
}

// KeyValues is the body of the params, tags and properties endpoints.
type KeyValues struct {
	Params     map[string]string `json:"params,omitempty"`
	Tags       map[string]string `json:"tags,omitempty"`
	Properties map[string]string `json:"properties,omitempty"`
}

func (s *Server) keyValues(w http.ResponseWriter, r *http.Request, pick func(KeyValues) map[string]string,
	apply func(ws, run string, kv map[string]string) error) error {
	var req KeyValues
	if err := s.readJSON(w, r, &req); err != nil {
		return err
	}
	if err := apply(r.PathValue("workspace"), r.PathValue("run"), pick(req)); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) logParams(w http.ResponseWriter, r *http.Request) error {
	return s.keyValues(w, r, func(kv KeyValues) map[string]string { return kv.Params },
		func(ws, run string, kv map[string]string) error { return s.svc.LogParams(r.Context(), ws, run, kv) })
}

func (s *Server) setTags(w http.ResponseWriter, r *http.Request) error {
	return s.keyValues(w, r, func(kv KeyValues) map[string]string { return kv.Tags },
		func(ws, run string, kv map[string]string) error { return s.svc.SetTags(r.Context(), ws, run, kv) })
}

func (s *Server) addProperties(w http.ResponseWriter, r *http.Request) error {
	return s.keyValues(w, r, func(kv KeyValues) map[string]string { return kv.Properties },
		func(ws, run string, kv map[string]string) error { return s.svc.AddProperties(r.Context(), ws, run, kv) })
}

func (s *Server) deleteTag(w http.ResponseWriter, r *http.Request) error {
	if err := s.svc.DeleteTag(r.Context(), r.PathValue("workspace"), r.PathValue("run"), r.PathValue("key")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) logMetrics(w http.ResponseWriter, r *http.Request) error {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.MaxJSONBody))
	if err != nil {
		return err
	}
	batch, err := fastMetricBatch(body)
	if err != nil { // any other shape, or an error to name: the strict decoder
		batch = &atelier.MetricBatch{}
		if err := s.decodeJSON(r, body, batch); err != nil {
			return err
		}
	}
	if err := s.svc.LogMetrics(r.Context(), r.PathValue("workspace"), r.PathValue("run"), batch); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) listMetrics(w http.ResponseWriter, r *http.Request) error {
	list, err := s.svc.ListMetrics(r.Context(), r.PathValue("workspace"), r.PathValue("run"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]any{"metrics": list})
}

func metricName(r *http.Request) (string, error) {
	name := r.URL.Query().Get("name")
	if name == "" {
		return "", atelier.Errorf(atelier.EINVALID, "query parameter name (the metric's name) is required")
	}
	return name, nil
}

func (s *Server) metricHistory(w http.ResponseWriter, r *http.Request) error {
	name, err := metricName(r)
	if err != nil {
		return err
	}
	var q atelier.HistoryQuery
	if q.MinStep, err = queryInt(r, "min_step"); err != nil {
		return err
	}
	if q.MaxStep, err = queryInt(r, "max_step"); err != nil {
		return err
	}
	mp, err := queryInt(r, "max_points")
	if err != nil {
		return err
	}
	if mp != nil {
		if *mp < 0 || *mp > 1<<24 {
			return atelier.Errorf(atelier.EINVALID, "max_points=%d is out of range (0 to %d)", *mp, 1<<24)
		}
		q.MaxPoints = int(*mp)
	}
	ser, err := s.svc.MetricHistory(r.Context(), r.PathValue("workspace"), r.PathValue("run"), name, q)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	_, err = w.Write(series.AppendJSON(make([]byte, 0, 64+24*len(ser.Steps)), ser))
	return err
}

func (s *Server) metricRecords(w http.ResponseWriter, r *http.Request) error {
	name, err := metricName(r)
	if err != nil {
		return err
	}
	list, err := s.svc.MetricRecords(r.Context(), r.PathValue("workspace"), r.PathValue("run"), name)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]any{"records": list})
}

func (s *Server) listFiles(w http.ResponseWriter, r *http.Request) error {
	list, err := s.svc.ListFiles(r.Context(), r.PathValue("workspace"), r.PathValue("run"), r.URL.Query().Get("prefix"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]any{"files": list})
}

// DigestHeader carries the sha256 of an upload so the server checks it and skips known content.
const DigestHeader = "X-Content-Sha256"

// digestHeader reads the optional DigestHeader: given empty, it is no sha256, not absent.
func digestHeader(r *http.Request) (string, error) {
	v := r.Header.Get(DigestHeader)
	if v == "" && len(r.Header.Values(DigestHeader)) > 0 {
		return "", atelier.Errorf(atelier.EINVALID, "the %s header is empty: give the content's sha256 or leave it out", DigestHeader)
	}
	return v, nil
}

func (s *Server) uploadFile(w http.ResponseWriter, r *http.Request) error {
	digest, err := digestHeader(r)
	if err != nil {
		return err
	}
	f, err := s.svc.UploadFile(r.Context(), r.PathValue("workspace"), r.PathValue("run"), r.PathValue("path"), r.Body, digest)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, f)
}

func (s *Server) downloadFile(w http.ResponseWriter, r *http.Request) error {
	f, rc, err := s.svc.OpenFile(r.Context(), r.PathValue("workspace"), r.PathValue("run"), r.PathValue("path"))
	if err != nil {
		return err
	}
	defer rc.Close()
	return streamFile(w, f, rc)
}

func streamFile(w http.ResponseWriter, f *atelier.File, rc io.Reader) error {
	ctype := mime.TypeByExtension(fileExt(f.Path))
	if ctype == "" || f.Log {
		ctype = "application/octet-stream"
		if f.Log {
			ctype = "text/plain; charset=utf-8"
		}
	}
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Content-Length", fmt.Sprint(f.Size))
	if f.Digest != "" {
		w.Header().Set(DigestHeader, f.Digest)
		w.Header().Set("ETag", `"`+f.Digest+`"`)
	}
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Disposition", "attachment")
	_, err := io.Copy(w, rc)
	return err
}

func fileExt(p string) string {
	if i := strings.LastIndexByte(p, '.'); i > strings.LastIndexByte(p, '/') {
		return p[i:]
	}
	return ""
}

func (s *Server) appendLog(w http.ResponseWriter, r *http.Request) error {
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 8<<20))
	if err != nil {
		return err
	}
	if err := s.svc.AppendLog(r.Context(), r.PathValue("workspace"), r.PathValue("run"), r.PathValue("path"), data); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// readLog serves a log from an offset; with follow=true it keeps the response open and streams
// what is appended until the run ends or the client leaves.
func (s *Server) readLog(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	wsName, runID, path := r.PathValue("workspace"), r.PathValue("run"), r.PathValue("path")
	off, err := queryInt(r, "offset")
	if err != nil {
		return err
	}
	follow, err := queryBool(r, "follow")
	if err != nil {
		return err
	}
	offset := int64(0)
	if off != nil {
		offset = *off
	}
	var events <-chan *atelier.Event
	if follow {
		// Subscribe before the first read, so nothing appended in between is missed.
		sub, cancel := context.WithCancel(ctx)
		defer cancel()
		if events, err = s.svc.Subscribe(sub, wsName, atelier.EventFilter{RunID: runID, Types: []string{atelier.EventLog, atelier.EventRunStatus}}); err != nil {
			return err
		}
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	flusher, _ := w.(http.Flusher)
	wrote := false
	for {
		chunk, err := s.svc.ReadLog(ctx, wsName, runID, path, offset, 4<<20)
		if err != nil {
			if wrote {
				return nil // the status line is gone; end the stream
			}
			return err
		}
		if len(chunk.Data) > 0 {
			if _, err := w.Write(chunk.Data); err != nil {
				return nil
			}
			wrote = true
			offset = chunk.Offset + int64(len(chunk.Data))
			if flusher != nil {
				flusher.Flush()
			}
			continue
		}
		if !wrote {
			w.WriteHeader(http.StatusOK)
			wrote = true
			if flusher != nil {
				flusher.Flush()
			}
		}
		if !follow || chunk.Done {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case _, ok := <-events:
			if !ok {
				return nil
			}
		case <-time.After(5 * time.Second):
			// Poll now and then too: another replica may have appended.
		}
	}
}

func (s *Server) downloadRunSnapshot(w http.ResponseWriter, r *http.Request) error {
	run, err := s.svc.FindRun(r.Context(), r.PathValue("workspace"), r.PathValue("run"))
	if err != nil {
		return err
	}
	if run.SnapshotID == "" {
		return atelier.Errorf(atelier.ENOTFOUND, "run %s has no snapshot", run.ID)
	}
	return s.writeSnapshotZip(w, r, run.SnapshotID)
}

func (s *Server) writeSnapshotZip(w http.ResponseWriter, r *http.Request, id string) error {
	// Look it up first so a missing snapshot is a clean 404 before the body starts.
	if _, err := s.svc.FindSnapshot(r.Context(), r.PathValue("workspace"), id); err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/zip")
	w.Header().Set("Content-Disposition", `attachment; filename="snapshot-`+id[:12]+`.zip"`)
	if err := s.svc.WriteSnapshotZip(r.Context(), r.PathValue("workspace"), id, w); err != nil {
		s.log.Error("streaming a snapshot", "snapshot", id, "err", err)
	}
	return nil
}

// MissingRequest and MissingResponse are the bodies of POST /objects/missing.
type MissingRequest struct {
	Digests []string `json:"digests"`
}

type MissingResponse struct {
	Missing []string `json:"missing"`
}

func (s *Server) missingObjects(w http.ResponseWriter, r *http.Request) error {
	var req MissingRequest
	if err := s.readJSON(w, r, &req); err != nil {
		return err
	}
	missing, err := s.svc.MissingObjects(r.Context(), r.PathValue("workspace"), req.Digests)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, MissingResponse{Missing: missing})
}

func (s *Server) uploadObject(w http.ResponseWriter, r *http.Request) error {
	obj, err := s.svc.UploadObject(r.Context(), r.PathValue("workspace"), r.Body, r.PathValue("digest"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, obj)
}

// SnapshotCreate is the JSON body of POST /snapshots (a zip body is the other form).
type SnapshotCreate struct {
	Entries []atelier.SnapshotEntry `json:"entries"`
}

func (s *Server) createSnapshot(w http.ResponseWriter, r *http.Request) error {
	var snap *atelier.Snapshot
	var err error
	switch ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct {
	case "application/zip", "application/x-zip-compressed", "application/octet-stream":
		snap, err = s.svc.UploadSnapshotZip(r.Context(), r.PathValue("workspace"), r.Body)
	case "application/json", "":
		var req SnapshotCreate
		if err := s.readJSON(w, r, &req); err != nil {
			return err
		}
		snap, err = s.svc.CreateSnapshot(r.Context(), r.PathValue("workspace"), req.Entries)
	default:
		return atelier.Errorf(atelier.EINVALID, "unsupported Content-Type %q: send application/json (a manifest) or application/zip", ct)
	}
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, snap)
}

func (s *Server) getSnapshot(w http.ResponseWriter, r *http.Request) error {
	snap, err := s.svc.FindSnapshot(r.Context(), r.PathValue("workspace"), r.PathValue("snapshot"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, snap)
}

func (s *Server) downloadSnapshot(w http.ResponseWriter, r *http.Request) error {
	return s.writeSnapshotZip(w, r, r.PathValue("snapshot"))
}

func (s *Server) listActivities(w http.ResponseWriter, r *http.Request) error {
	f := atelier.ActivityFilter{Kind: r.URL.Query().Get("kind"), Target: r.URL.Query().Get("target")}
	var err error
	if f.Active, err = queryBool(r, "active"); err != nil {
		return err
	}
	if f.Limit, err = queryLimit(r); err != nil {
		return err
	}
	list, err := s.svc.ListActivities(r.Context(), r.PathValue("workspace"), f)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]any{"activities": list})
}

func (s *Server) getActivity(w http.ResponseWriter, r *http.Request) error {
	a, err := s.svc.FindActivity(r.Context(), r.PathValue("workspace"), r.PathValue("activity"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, a)
}

// events streams a workspace's events as Server-Sent Events.
func (s *Server) events(w http.ResponseWriter, r *http.Request) error {
	f := atelier.EventFilter{RunID: r.URL.Query().Get("run_id")}
	if t := r.URL.Query().Get("types"); t != "" {
		f.Types = strings.Split(t, ",")
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	ch, err := s.svc.Subscribe(ctx, r.PathValue("workspace"), f)
	if err != nil {
		return err
	}
	flusher, ok := w.(http.Flusher)
	if !ok {
		return atelier.Errorf(atelier.EINTERNAL, "streaming is not supported by this connection")
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, ": connected\n\n")
	flusher.Flush()
	keepalive := time.NewTicker(15 * time.Second)
	defer keepalive.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-keepalive.C:
			fmt.Fprint(w, ": keepalive\n\n")
		case e, ok := <-ch:
			if !ok {
				return nil // dropped for being slow; the client reconnects
			}
			b, _ := json.Marshal(e)
			fmt.Fprintf(w, "id: %d\nevent: %s\ndata: %s\n\n", e.ID, e.Type, b)
		}
		flusher.Flush()
	}
}
