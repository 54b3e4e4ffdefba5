package edge

import (
	"log/slog"
	"net/http"
	"strings"
	"time"
)

// LogRequests logs each request next serves, whichever front door it reaches; the high-rate
// ingestion calls (metrics, logs), scoring requests (each service logs its own) and reads log at
// debug level, server failures at error level.
func LogRequests(log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &StatusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		level := slog.LevelInfo
		if r.Method == http.MethodGet || strings.HasSuffix(r.URL.Path, "/metrics") || strings.Contains(r.URL.Path, "/logs/") || strings.HasPrefix(r.URL.Path, "/services/") {
			level = slog.LevelDebug
		}
		if sw.Status >= 500 && sw.Status != http.StatusInsufficientStorage { // a full disk is logged once, by Storage
			level = slog.LevelError
		}
		if !log.Enabled(r.Context(), level) { // (the arguments below cost a few allocations)
			return
		}
		log.Log(r.Context(), level, "request", "method", r.Method, "path", r.URL.Path, "status", sw.Status,
			"duration", time.Since(start).Round(time.Microsecond), "remote", r.RemoteAddr)
	})
}
