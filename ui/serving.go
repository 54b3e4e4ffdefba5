package ui

import (
	"bytes"

	"github.com/atelier-ml/atelier"
)

// maxImages is the length of the images page.
const maxImages = 200

func (h *Handler) images(q *request) error {
	list, err := h.svc.ListImages(q.ctx(), q.ws(), atelier.ImageQuery{Limit: maxImages})
	if err != nil {
		return err
	}
	return q.show(h, "images", "Images", "images", list)
}

func (h *Handler) services(q *request) error {
	list, err := h.svc.ListWebServices(q.ctx(), q.ws())
	if err != nil {
		return err
	}
	return q.show(h, "services", "Web services", "services", list)
}

// serviceLogTail is how much of a service's log its page shows.
const serviceLogTail = 64 << 10

func (h *Handler) service(q *request) error {
	name := q.r.PathValue("service")
	svc, err := h.svc.FindWebService(q.ctx(), q.ws(), name)
	if err != nil {
		return err
	}
	var log bytes.Buffer
	if _, err := h.svc.WebServiceLog(q.ctx(), q.ws(), name, 0, &log); err != nil {
		return err
	}
	text := log.Bytes()
	if len(text) > serviceLogTail {
		text = text[len(text)-serviceLogTail:]
		if i := bytes.IndexByte(text, '\n'); i >= 0 {
			text = text[i+1:]
		}
	}
	stats, err := h.readServiceStats(q.ctx(), q.ws(), name)
	if err != nil {
		return err
	}
	return q.show(h, "service", svc.Name, "services", map[string]any{"Service": svc, "Log": string(text), "Stats": stats})
}
