package ui

import (
	"html/template"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/atelier-ml/atelier"
)

// datastorePageSize is how many entries of a folder the datastore page lists at a time
// (limit= asks for fewer); the rest are on the next pages, read with the listing's page token.
const datastorePageSize = 500

type datastoreData struct {
	Datastore *atelier.Datastore
	Path      string // the folder listed: "" (the top) or a path ending in '/'
	Crumbs    []crumb
	Entries   []datastoreEntry
	Download  string       // the REST API's download route of the datastore's files, before the path
	Next      template.URL // the next page's link, "" on the last page
	First     template.URL // the folder's first page, on a later page
}

// crumb is a folder of the breadcrumbs: its name and the path it lists.
type crumb struct {
	Name string
	Path string
}

type datastoreEntry struct {
	Name       string // the path after the folder's
	Path       string
	Dir        bool
	Size       int64
	ModifiedAt time.Time
}

// datastore browses a datastore's files: the files and folders under ?path=, a page at a time,
// each file downloaded through the REST API (its authorization and content types).
func (h *Handler) datastore(q *request) error {
	ctx, ws, name, qs := q.ctx(), q.ws(), q.r.PathValue("datastore"), q.r.URL.Query()
	d, err := h.svc.FindDatastore(ctx, ws, name)
	if err != nil {
		return err
	}
	data := &datastoreData{Datastore: d, Path: strings.TrimPrefix(qs.Get("path"), "/"),
		Download: "/api/v1/workspaces/" + url.PathEscape(ws) + "/datastores/" + url.PathEscape(d.Name) + "/files/"}
	if data.Path != "" && !strings.HasSuffix(data.Path, "/") {
		data.Path += "/"
	}
	limit := datastorePageSize
	if l := qs.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > datastorePageSize {
			return atelier.Errorf(atelier.EINVALID, "limit=%q: give a number of entries per page from 1 to %d", l, datastorePageSize)
		}
		limit = n
	}
	page, err := h.svc.ListDatastoreFiles(ctx, ws, d.Name, atelier.DatastoreFileQuery{Prefix: data.Path, Limit: limit, PageToken: qs.Get("page")})
	if err != nil {
		return err
	}
	for _, f := range page.Files {
		e := datastoreEntry{Name: strings.TrimPrefix(f.Path, data.Path), Path: f.Path, Dir: f.Dir, Size: f.Size, ModifiedAt: f.ModifiedAt}
		if e.Name == "" || e.Name == "/" {
			continue // the folder's own marker object, in some cloud storage
		}
		data.Entries = append(data.Entries, e)
	}
	if data.Path != "" {
		parts := strings.Split(strings.TrimSuffix(data.Path, "/"), "/")
		for i, p := range parts {
			data.Crumbs = append(data.Crumbs, crumb{Name: p, Path: strings.Join(parts[:i+1], "/") + "/"})
		}
	}
	link := func(token string) template.URL {
		v := url.Values{}
		if data.Path != "" {
			v.Set("path", data.Path)
		}
		if limit != datastorePageSize {
			v.Set("limit", strconv.Itoa(limit))
		}
		if token != "" {
			v.Set("page", token)
		}
		return template.URL("?" + v.Encode())
	}
	if page.NextPageToken != "" {
		data.Next = link(page.NextPageToken)
	}
	if qs.Get("page") != "" {
		data.First = link("")
	}
	title := d.Name
	if data.Path != "" {
		title += ": " + data.Path
	}
	return q.show(h, "datastore", title, "datastores", data)
}
