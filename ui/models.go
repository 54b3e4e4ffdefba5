package ui

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/atelier-ml/atelier"
)

// The pages of a model's versions and aliases, and the forms that set and delete an alias
// (the service's SetModelAlias and DeleteModelAlias, the CLI's `atelier model alias`).

type modelData struct {
	Model    *atelier.Model
	Versions []*atelier.ModelVersion
	// Aliases are the model's aliases, sorted, each with the version it points at.
	Aliases []aliasRow
	// Error is a refused alias change, said on the page; Alias and Version keep its input.
	Error   string
	Alias   string
	Version string
}

type aliasRow struct {
	Alias   string
	Version int64
}

func aliasRows(m *atelier.Model) []aliasRow {
	rows := make([]aliasRow, 0, len(m.Aliases))
	for _, a := range sortedKeys(m.Aliases) {
		rows = append(rows, aliasRow{a, m.Aliases[a]})
	}
	return rows
}

func (h *Handler) model(q *request) error { return h.showModel(q, &modelData{}) }

func (h *Handler) showModel(q *request, d *modelData) error {
	name := q.r.PathValue("model")
	m, err := h.svc.FindModel(q.ctx(), q.ws(), name)
	if err != nil {
		return err
	}
	versions, err := h.svc.ListModelVersions(q.ctx(), q.ws(), atelier.ModelQuery{Name: name, OrderBy: "version desc", Limit: 200})
	if err != nil {
		return err
	}
	d.Model, d.Versions, d.Aliases = m, versions.Versions, aliasRows(m)
	return q.show(h, "model", name, "models", d)
}

type versionData struct {
	Version *atelier.ModelVersion
	Model   *atelier.Model
	// By is the alias the page was opened by (/aliases/{alias}), empty for /versions/{n}.
	By string
	// Aliases are the model's other aliases: those not pointing at this version.
	Others []aliasRow
}

// modelVersion is a version's page, by its number (/versions/{version}) or by an alias that
// points at it (/aliases/{alias}: the alias is resolved when the page is read).
func (h *Handler) modelVersion(q *request) error {
	ref := atelier.ModelRef{Name: q.r.PathValue("model")}
	if a := q.r.PathValue("alias"); a != "" {
		ref.Alias = a
	} else {
		n, err := strconv.ParseInt(q.r.PathValue("version"), 10, 64)
		if err != nil || n < 1 {
			return atelier.Errorf(atelier.ENOTFOUND, "model %s has no version %q", ref.Name, q.r.PathValue("version"))
		}
		ref.Version = n
	}
	v, err := h.svc.FindModelVersion(q.ctx(), q.ws(), ref)
	if err != nil {
		return err
	}
	m, err := h.svc.FindModel(q.ctx(), q.ws(), v.Name)
	if err != nil {
		return err
	}
	d := &versionData{Version: v, Model: m, By: ref.Alias}
	for _, r := range aliasRows(m) {
		if r.Version != v.Version {
			d.Others = append(d.Others, r)
		}
	}
	return q.show(h, "version", v.Name+":"+strconv.FormatInt(v.Version, 10), "models", d)
}

// setAlias points an alias at a version (POST /w/{ws}/models/{model}/aliases: alias, version),
// then shows the version by its alias.
func (h *Handler) setAlias(q *request) error {
	name := q.r.PathValue("model")
	alias := strings.TrimSpace(q.r.PostFormValue("alias"))
	version := strings.TrimSpace(q.r.PostFormValue("version"))
	n, err := strconv.ParseInt(version, 10, 64)
	if err != nil || n < 1 {
		return h.aliasRefused(q, atelier.Errorf(atelier.EINVALID, "invalid version %q: give a version number of the model", version), alias, version)
	}
	if alias == "" {
		return h.aliasRefused(q, atelier.Errorf(atelier.EINVALID, "name the alias"), alias, version)
	}
	if err := atelier.ValidateModelAlias(alias); err != nil {
		return h.aliasRefused(q, err, alias, version)
	}
	if _, err := h.svc.SetModelAlias(q.ctx(), q.ws(), name, alias, n); err != nil {
		return h.aliasRefused(q, err, alias, version)
	}
	http.Redirect(q.w, q.r, "/w/"+url.PathEscape(q.ws())+"/models/"+url.PathEscape(name)+"/aliases/"+url.PathEscape(alias), http.StatusSeeOther)
	return nil
}

// deleteAlias removes an alias (POST /w/{ws}/models/{model}/aliases/{alias}/delete).
func (h *Handler) deleteAlias(q *request) error {
	name := q.r.PathValue("model")
	if err := h.svc.DeleteModelAlias(q.ctx(), q.ws(), name, q.r.PathValue("alias")); err != nil {
		return h.aliasRefused(q, err, "", "")
	}
	http.Redirect(q.w, q.r, "/w/"+url.PathEscape(q.ws())+"/models/"+url.PathEscape(name), http.StatusSeeOther)
	return nil
}

// aliasRefused shows a refused alias change (a bad alias, a version or alias that does not
// exist) on the model's page with the refusal's status; a caller who may not change the model
// gets the error page (403, or 404 for a workspace or model they may not see).
func (h *Handler) aliasRefused(q *request, err error, alias, version string) error {
	switch atelier.ErrorCode(err) {
	case atelier.EINVALID, atelier.ECONFLICT, atelier.ENOTFOUND:
	default:
		return err
	}
	if !q.v.CanWrite() {
		// A Reader's post is refused as a post, whatever its input.
		return atelier.Errorf(atelier.EFORBIDDEN, "changing a model's aliases needs the Contributor role in workspace %s", q.ws())
	}
	q.status = statusOf(err)
	return h.showModel(q, &modelData{Error: atelier.ErrorMessage(err), Alias: alias, Version: version})
}
