package ui

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/atelier-ml/atelier"
)

// The run page's lineage: where the run came from (its parent, the run it repeats) and what it
// used and made (datastore paths, MLflow data sets, registered models, child runs).

// rerunOfProperty is the property of a run submitted again (atelier run rerun, the run
// page's Re-submit) that names the run it repeats.
const rerunOfProperty = "rerun_of"

// mlflowInputsTag is where the MLflow API keeps a run's data set inputs (log_input), as JSON.
const mlflowInputsTag = "mlflow.datasetInputs"

// dataRef is a datastore path the run read or wrote (its run configuration's data), with links
// to the datastore's file browser.
type dataRef struct {
	atelier.DataReference
	Browse   string // the datastore browser at the path's folder
	Download string // the file's download, "" for a folder
}

// Direction is how the script used the reference.
func (d dataRef) Direction() string {
	if d.Mode == atelier.DataUpload {
		return "writes"
	}
	return "reads"
}

// datasetInput is a data set an MLflow client logged as the run's input.
type datasetInput struct {
	Name, Digest, SourceType, Source, Context string
}

// dataRefs reads the data references of a submitted run's configuration.
func dataRefs(ws string, run *atelier.Run) []dataRef {
	if len(run.Config) == 0 {
		return nil
	}
	var rc atelier.RunConfig
	if json.Unmarshal(run.Config, &rc) != nil {
		return nil
	}
	refs := make([]dataRef, 0, len(rc.Data))
	for _, d := range rc.Data {
		r := dataRef{DataReference: d}
		folder := d.Path
		if folder != "" && !strings.HasSuffix(folder, "/") {
			// A file: browse its folder, download it.
			r.Download = "/api/v1/workspaces/" + url.PathEscape(ws) + "/datastores/" + url.PathEscape(d.Datastore) + "/files/" + escapePath(d.Path)
			folder = folder[:strings.LastIndexByte(folder, '/')+1]
		}
		r.Browse = "/w/" + url.PathEscape(ws) + "/datastores/" + url.PathEscape(d.Datastore)
		if folder != "" {
			r.Browse += "?" + url.Values{"path": {folder}}.Encode()
		}
		refs = append(refs, r)
	}
	return refs
}

// datasetInputs reads the data sets an MLflow client logged as the run's inputs.
func datasetInputs(run *atelier.Run) []datasetInput {
	raw := run.Tags[mlflowInputsTag]
	if raw == "" {
		return nil
	}
	var list []struct {
		Tags []struct {
			Key   string `json:"key"`
			Value string `json:"value"`
		} `json:"tags"`
		Dataset struct {
			Name       string `json:"name"`
			Digest     string `json:"digest"`
			SourceType string `json:"source_type"`
			Source     string `json:"source"`
		} `json:"dataset"`
	}
	if json.Unmarshal([]byte(raw), &list) != nil {
		return nil
	}
	out := make([]datasetInput, 0, len(list))
	for _, in := range list {
		d := datasetInput{Name: in.Dataset.Name, Digest: in.Dataset.Digest, SourceType: in.Dataset.SourceType, Source: in.Dataset.Source}
		for _, t := range in.Tags {
			if t.Key == "mlflow.data.context" {
				d.Context = t.Value
			}
		}
		out = append(out, d)
	}
	return out
}

// resubmittable tells whether a run can be submitted again: it was submitted (it has a snapshot,
// a run configuration and a compute target), as atelier run rerun requires.
func resubmittable(r *atelier.Run) bool {
	return r.SnapshotID != "" && len(r.Config) > 0 && r.Compute != ""
}

// rerun submits a run again, as atelier run rerun does: a new run of the same experiment, name,
// snapshot, run configuration and git state through the service's SubmitRun, its property
// rerun_of naming the original; then it is the new run's page.
func (h *Handler) rerun(q *request) error {
	ctx, ws := q.ctx(), q.ws()
	orig, err := h.svc.FindRun(ctx, ws, q.r.PathValue("run"))
	if err != nil {
		return err
	}
	if !resubmittable(orig) {
		return atelier.Errorf(atelier.EINVALID, "run %s was not submitted (it has no snapshot and run configuration to run again): only submitted runs can be re-submitted", orig.ID)
	}
	var rc atelier.RunConfig
	if err := json.Unmarshal(orig.Config, &rc); err != nil {
		return fmt.Errorf("run %s: reading its run configuration: %w", orig.ID, err)
	}
	run, err := h.svc.SubmitRun(ctx, ws, atelier.RunSubmit{Experiment: orig.Experiment, Name: orig.Name, SnapshotID: orig.SnapshotID,
		Config: rc, Git: orig.Git})
	if err != nil {
		return err
	}
	// Properties cannot change afterwards: the link is made at once.
	if err := h.svc.AddProperties(ctx, ws, run.ID, map[string]string{rerunOfProperty: orig.ID}); err != nil {
		return fmt.Errorf("run %s was submitted, but linking it to %s failed: %w", run.ID, orig.ID, err)
	}
	http.Redirect(q.w, q.r, "/w/"+url.PathEscape(ws)+"/runs/"+url.PathEscape(run.ID), http.StatusSeeOther)
	return nil
}
