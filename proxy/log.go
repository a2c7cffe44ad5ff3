package proxy

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/strangler-proxy/strangler/compare"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
)

// slogPrinter adapts slog to promhttp's Println-style error log.
type slogPrinter struct{ log *slog.Logger }

func (p slogPrinter) Println(v ...any) { p.log.Error(fmt.Sprint(v...)) }

// elided is an error whose text has every quoted string in it elided:
// Go's HTTP parsers, and the direct path's reader, quote the line they
// refused, which may hold a Set-Cookie or Authorization value that must
// never reach a log or a span. It unwraps to the error itself, so
// errors.Is and errors.As see through it.
type elided struct{ err error }

func (e elided) Error() string { return elideQuoted(e.err.Error()) }
func (e elided) Unwrap() error { return e.err }

// ErrorType is the wrapped error's error.type, for otelhttp's spans
// (which would otherwise name this wrapper for every failure).
func (e elided) ErrorType() string { return semconv.ErrorType(e.err).Value.AsString() }

// elide wraps err as elided, except the context's own errors, which
// quote nothing and which ReverseProxy compares by identity.
func elide(err error) error {
	if err == context.Canceled || err == context.DeadlineExceeded {
		return err
	}
	return elided{err}
}

// elideQuoted replaces each Go-quoted string in s by "…"; a quote that
// does not open one ends s there.
func elideQuoted(s string) string {
	i := strings.IndexByte(s, '"')
	if i < 0 {
		return s
	}
	var b strings.Builder
	for ; i >= 0; i = strings.IndexByte(s, '"') {
		b.WriteString(s[:i])
		b.WriteString(`"…"`)
		q, err := strconv.QuotedPrefix(s[i:])
		if err != nil {
			return b.String()
		}
		s = s[i+len(q):]
	}
	b.WriteString(s)
	return b.String()
}

// LogWriter returns an output for the standard library's log package that
// hands each line to logger at level, its quoted text elided (an
// upstream's bytes, which may hold a secret). net/http's transport logs
// through that package ("Unsolicited response received on idle HTTP
// channel" after an upstream sent more than its answer), which would
// otherwise put plain-text lines into a JSON log stream.
func LogWriter(logger *slog.Logger, level slog.Level) io.Writer {
	return redactingLog{logger.Handler(), level}
}

// redactingLog is a log.Logger's output (ReverseProxy's ErrorLog) that
// elides quoted text before handing the line to slog at level.
type redactingLog struct {
	h     slog.Handler
	level slog.Level
}

func (w redactingLog) Write(p []byte) (int, error) {
	ctx := context.Background()
	if w.h.Enabled(ctx, w.level) {
		msg := elideQuoted(strings.TrimSuffix(string(p), "\n"))
		w.h.Handle(ctx, slog.NewRecord(time.Now(), w.level, msg, 0))
	}
	return len(p), nil
}

// loggedPath is a request's path as logs show it: escaped, with the
// values of its path parameters (;jsessionid=) redacted, as samples and
// spans have them.
func loggedPath(u *url.URL) string {
	if strings.IndexByte(u.Path, ';') >= 0 { // decoded: ";" or "%3B"
		return compare.RedactURL(u.EscapedPath())
	}
	return u.EscapedPath()
}
