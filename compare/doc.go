// Package compare decides whether a shadow response is equivalent to the
// primary one, and if not, where they differ. It is a pure library: the
// proxy captures both responses, compiles each route's rules once with
// [NewRules], and calls [Compare] (or [Noise.Compare]) from its comparison
// pool. Rules and Noise are safe for concurrent use.
//
// A comparison yields a [Result]: the [Outcome] ("match" or "mismatch";
// "error" is the proxy's, for a shadow call that failed) and the list of
// [Difference] values, status first, then headers by name, then the body in
// document order. At most max_differences (default 100) are listed; the
// rest are counted in Result.Omitted. A Difference marshals as
//
//	{"kind":"status","primary":200,"shadow":500}
//	{"kind":"header","header":"X-Foo","primary":"a","shadow":"b"}
//	{"kind":"body","pointer":"/items/0/price","primary":10,"shadow":12}
//
// where a side on which the header or JSON member is absent is left out,
// so that an absent member and a null one stay distinct.
//
// # Status
//
// Different status codes are one difference of kind "status".
//
// # Headers
//
// Header names are compared case-insensitively (in canonical form). A
// header present on one side only is a difference. Values are compared as
// the elements of the combined field value of RFC 9110 §5.3, in order:
// each side's lines are split at commas outside quoted strings, the
// spaces and tabs around each element are dropped, and empty elements are
// ignored (RFC 9110 §5.6.1). So "a" and "b" on two lines equal "a, b" and
// "a,b" on one, but not "b, a"; "GET,HEAD" equals "GET, HEAD"; whitespace
// inside an element or a quoted string still counts. A header that is not
// a list but holds commas (a date) is split alike on both sides, so only
// whitespace after its commas stops counting. There is one difference per
// header name, with each side's values joined by ", ".
//
// Not compared at all:
//
//   - Hop-by-hop headers, which describe one connection, not the
//     response: Connection, Keep-Alive, Proxy-Connection,
//     Proxy-Authenticate, Proxy-Authorization, TE, Trailer,
//     Transfer-Encoding, Upgrade, and any header named in either side's
//     Connection header.
//   - Date, Age, Expires, Last-Modified: they record when the answer was
//     made or cached, which differs between any two answers.
//   - ETag: a hash or version of the exact representation; two services
//     serialising the same data compute different tags.
//   - Content-Length, Content-Encoding: bodies are compared decoded, so
//     compression and formatting must not count.
//   - Server, X-Powered-By, Via, Alt-Svc: they name the implementation and
//     the infrastructure in front of it, which differ by design during a
//     migration.
//   - X-Request-Id, X-Correlation-Id, Request-Id, X-Trace-Id, Traceparent,
//     Tracestate, B3, X-B3-TraceId, X-B3-SpanId, X-B3-ParentSpanId,
//     X-B3-Sampled, X-B3-Flags, X-Amzn-Trace-Id, X-Amzn-RequestId,
//     X-Cloud-Trace-Context: per-request identifiers and tracing state.
//   - X-Amz-Request-Id, X-Amz-Id-2, X-Amz-Cf-Id, X-Amz-Cf-Pop,
//     X-Amz-Apigw-Id, X-Kong-Request-Id, Cf-Ray, X-Ms-Request-Id: the same,
//     set by infrastructure in front of one side only (a gateway, a CDN),
//     so missing on the other side, which noise learning never forgives.
//   - X-Runtime, X-Response-Time, Server-Timing,
//     X-Envoy-Upstream-Service-Time, X-Kong-Upstream-Latency,
//     X-Kong-Proxy-Latency: timings (the last three, a mesh's or a
//     gateway's in front of one side).
//   - Report-To, Reporting-Endpoints, NEL: browser reporting endpoints,
//     configured per deployment.
//   - Headers listed in the route's ignore_headers.
//
// Compared with rules of their own:
//
//   - Set-Cookie: as a set of cookies, each line by its name, whether it
//     deletes the cookie (an empty value, Max-Age of zero or less, or,
//     without Max-Age, an Expires date not in the future), whether it
//     outlives the browser's session (a Max-Age above zero or a future
//     Expires, against neither: "remember me" broken), Path, Domain
//     (case-insensitive, a leading dot ignored), Secure, HttpOnly,
//     SameSite (case-insensitive; absent is not Lax) and Partitioned.
//     Values (session ids)
//     and the exact Max-Age or Expires differ on every answer and are not
//     compared; a cookie set on one side only, deleted, re-scoped or
//     stripped of a protection is what breaks users. Attributes are read
//     by net/http's parser.
//   - Vary: a case-insensitive set of field names, without
//     Accept-Encoding, which compression middleware adds. Other names are
//     kept on purpose: a Vary: Authorization missing from the service lets
//     a shared cache serve one user's answer to another.
//   - Content-Type: by meaning, so "text/html; charset=utf-8" equals
//     "text/html;charset=UTF-8". For JSON types "charset=utf-8" equals no
//     charset: JSON is always UTF-8 (RFC 8259 §11), and frameworks
//     disagree on whether to say so.
//   - Cache-Control, and Strict-Transport-Security (whose directives are
//     separated by ";"): as a set of directives, names case-insensitive,
//     a quoted value equal to the same token, since two frameworks write
//     one policy in their own order and case.
//   - Allow and Access-Control-Allow-Methods: as a set of methods (case
//     matters); Access-Control-Allow-Headers and -Expose-Headers: as a
//     case-insensitive set of field names.
//
// Secrets never leave the comparator. The values of Authorization,
// Proxy-Authorization, Cookie and the route's secret_headers appear in a
// Difference as "[redacted]". Set-Cookie, also secret, shows the sorted
// cookie names ("csrf, session"), never a value; when the same names are
// set with different attributes, the note lists the compared attributes
// of each side ("cookie session: primary [Path=/; Secure], shadow
// [deleted; Path=/]").
//
// # Bodies
//
// Content-Encoding is removed first: gzip (and x-gzip), deflate (zlib as
// RFC 9110 says, or raw DEFLATE as some servers send it), br, identity.
// Stacked codings ("Content-Encoding: gzip, br") are undone last one
// first. Decoding stops at max_decoded bytes (default 8 MiB): a larger
// body, a zip bomb included, is a difference noting that it exceeds the
// limit (unless the other side's is past it too, below), and costs at
// most about twice the limit in memory. A body that
// cannot be decoded (corrupt, truncated, or an unsupported coding such as
// zstd) is a difference whose note says why, never a panic. Byte-identical
// bodies with the same codings are equal without being decoded.
//
// Both decoded bodies are compared as JSON when each one is JSON:
//
//   - its Content-Type is application/json, text/json, ends in +json, or
//     names a stream of JSON values (application/x-ndjson, ndjson, jsonl,
//     x-jsonlines, jsonlines, json-seq), and it parses; or
//   - its Content-Type is missing, text/plain, application/octet-stream or
//     text/html (PHP's default, under which many a monolith serves JSON),
//     it starts (after whitespace) with "{" or "[", and it parses. Bare
//     scalars are not sniffed: "1" and "1.0" in a text body differ.
//
// A body that parses as several JSON values, each apart from the next by
// whitespace (NDJSON, JSON Lines, a Kubernetes watch), or any body under
// a stream's media type (of one value or none too; under application/json-seq
// its values may follow RFC 7464's record separators), is compared as
// the array of those values: a difference in the third line is at
// "/2/...", and ignore_json, noise and unordered_json ("") apply per
// line ("/*/ts"). One value against such a stream is a stream of one.
// Values that run together ("{}{}") are not a stream: they are compared
// as bytes.
//
// Otherwise bodies are compared byte for byte, and a difference carries an
// excerpt of each (at most 256 bytes, from a little before the first
// differing byte; text as is, binary Go-quoted) and a note with the
// offset and sizes. A body over max_decoded is never parsed as JSON. When
// both are past it, encoded or not, they are not compared (Result.TooLarge)
// if either looks like JSON, whose bytes can differ where its values do
// not; else they are compared as bytes: whole when both arrived
// unencoded (they are in memory), else up to max_decoded. One past it
// against one within it is compared as bytes.
//
// # JSON rules
//
// Two JSON documents are equal when they hold the same values:
//
//   - Object member order is ignored. Members with the same name (which
//     RFC 8259 leaves undefined, and parsers resolve differently) are paired
//     in order of appearance.
//   - Arrays are compared by position; an element beyond the end of the
//     other array is a difference of its own.
//   - Numbers are compared by exact decimal value: 1 == 1.0 == 1e0 ==
//     10e-1 and -0 == 0, while 12345678901234567890 and
//     12345678901234567891 differ (float64 would call them equal).
//   - Strings are compared after decoding escapes: "caf\u00e9" == "café".
//   - A value of another type is a difference: 1 and "1", false and null.
//   - Documents nested deeper than 10000 levels are compared as bytes.
//   - With RulesConfig.Mark (the proxy's X-Strangler-Shadow: 1, which
//     only its copies carry), a member of the shadow's answer that the
//     primary's lacks, named as the mark in any case, whose value is the
//     mark's value or a list of it alone, is that header echoed back (a
//     debugging endpoint, httpbin's /anything), not a difference. Echoed
//     in a body that is not JSON, it still differs.
//
// Each difference is reported at its RFC 6901 JSON Pointer, with "~"
// written "~0" and "/" written "~1" (member "a/b" inside "m~n" is
// "/m~0n/a~1b"), and the compact JSON value on each side. A value larger
// than 4 KiB is replaced by an excerpt string, with a note saying so.
//
// ignore_json lists JSON Pointers that are not compared, each with its
// whole subtree. A segment of exactly "*" matches any one member name or
// array index:
//
//	ignore_json:
//	  - /generatedAt          # a top-level member
//	  - /items/*/updatedAt    # updatedAt of every element of items
//	  - /meta                 # meta and everything in it
//	  - ""                    # the whole body, JSON or not
//
// Patterns are checked by NewRules: a pointer is "" or starts with "/",
// and "~" is only followed by "0" or "1". RFC 6901 has no escape for "*",
// so a member literally named "*" is matched by the wildcard alone.
//
// # Arrays in any order
//
// Arrays are compared position by position, except where unordered_json
// (the same pointer syntax; "" is the root) names them: then each primary
// element is paired with an equal shadow element wherever it stands,
// byte for byte first and then by value (by these rules, with
// ignore_json and learned noise applied inside the element, at the
// primary element's index); of equal ones, the first in document order.
// Each element left over is then paired with the one it differs from
// least, so that a changed field of one element is reported as that
// field rather than as an element removed and another added; what is
// left after that is present on one side only, named by its index on
// that side. Duplicates count: [1,1,2] and [1,2,2] differ. Pairing by
// value is the only part that is not linear: one budget per comparison,
// about 16 values compared per value in the two documents, and what it
// leaves is paired in order. A pointer (ignore_json, or another
// unordered_json) that names an element of such an array by its index
// ("/items/0/ts" below "/items") is refused: no element keeps a place
// there.
//
// With noise cancellation, nothing is learned inside such an array, and
// a request's own noise does not apply there: both are found at places
// in the monolith's answers, and which element of one answer a varying
// element of the other is, is not known (paired by their differences, a
// reordered list taught the skus that tell its elements apart). Noise
// learned elsewhere applies (a list compared in order before
// unordered_json named it); a field that varies inside such a list is
// listed in ignore_json ("/items/*/ts").
//
// # Noise cancellation
//
// Some fields differ between any two answers, even two answers of the
// monolith to the same request: timestamps, generated ids, the node that
// served. Listing them in ignore_json works once they are known;
// [Noise.Compare] learns them. For each compared request the proxy obtains
// a second answer from the monolith and passes the two monolith answers:
// (primary, extra) when the monolith served the primary, (shadow, extra)
// when it was shadowed. Where the two monolith answers differ is noise:
//
//   - a difference between primary and shadow at the same place (same
//     header, or same pointer, array indexes taken literally) and of the
//     same shape is dropped and counted in Result.Noisy instead. The
//     shapes: a value that differs (both present, same JSON type), a type
//     that differs (null against a date), a field or element present on
//     one side only; a varying type also covers varying values;
//   - the place and shape are remembered in the route's [Noise], with
//     every array index generalised to "*" (not an object's numeric key,
//     which names one member), and differences
//     there are dropped from then on, even when no second monolith answer
//     is available. Generalising keeps one entry for a field of every
//     array element instead of one per index. Presence is never
//     remembered: a list that grew between the monolith's two answers
//     would otherwise teach "/items/*", and a service answering [] would
//     match for good. So a service that drops a noisy field, or turns a
//     noisy string into a number, is a mismatch. Nor are Set-Cookie (its
//     comparison already leaves values and expiry out; remembered, a
//     refreshed session would hide a service that never sets the cookie,
//     or strips its Secure and HttpOnly) and the body's root ("", a JSON
//     scalar or a whole body) ever remembered: both are noise for their
//     request only. Nor are the fields of a list the monolith's two
//     answers hold in another order (the same elements, byte for byte; a
//     query without ORDER BY) or with another number of elements (a feed
//     that grew at its front shifts every element): every field of every
//     element may differ there, and none of it says which fields vary.
//     Within their elements a difference is that request's noise where
//     the monolith's two answers differed so at that place in some
//     element (a value there, or a field one element lacks), not a field
//     every element of both had that is missing or of another type, nor
//     an element missing where both answers had one;
//   - a status difference is never noise, and two monolith answers with
//     different statuses teach nothing: one of them failed, and an error
//     page differs from a real answer everywhere. Likewise a body that
//     cannot be decoded, or is JSON on one side only, teaches nothing
//     about the body: learning "" (the whole body) from a failure would
//     hide every later whole-body difference;
//   - two bodies that are not JSON (an HTML page with a CSRF token)
//     differ as a span: the bytes they share at the start and the end;
//     past max_decoded too, where they are compared as bytes (above).
//     The primary and shadow bodies' difference is noise only within
//     the span of this request's monolith answers (it keeps at least the
//     start and end they share), and the whole body ("") is never
//     remembered, so an error page or an empty answer stays a mismatch;
//   - a place longer than 1 KiB (as a JSON Pointer) is never noise:
//     naming each difference there to match it against the noise would
//     cost as much as the place is long, and a body can make many such
//     differences as long as itself;
//   - a Noise holds at most DefaultNoiseFields (256) fields, or the bound
//     given to NewNoise; beyond it, fields are still dropped for the
//     request they were seen in, but not remembered.
//
// [Noise.Fields] lists what was learned in ignore_json syntax, headers as
// "header:Name", ready to be moved into the route's configuration.
//
// Worked example. The monolith serves the primary; the service is
// shadowed. For GET /orders/7:
//
//	primary (monolith):  X-Node: a   {"id":7,"total":10,"at":"12:00:01","lines":[{"ts":1}]}
//	shadow (service):    X-Node: s1  {"id":7,"total":12,"at":"12:00:01","lines":[{"ts":2}]}
//	extra (monolith):    X-Node: b   {"id":7,"total":10,"at":"12:00:02","lines":[{"ts":3}]}
//
// Primary and shadow differ at header X-Node, /total and /lines/0/ts. The
// monolith answers differ at header X-Node, /at and /lines/0/ts, so those
// are noise: the result lists only /total (10 vs 12, a real divergence)
// with Noisy = 2, and Fields() becomes ["/at", "/lines/*/ts",
// "header:X-Node"]. A later request whose answers differ only at
// /lines/5/ts and /at is a match.
package compare
