package compare_test

import (
	"fmt"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/strangler-proxy/strangler/compare"
)

// monolith answers like a real one: the same data, a fresh timestamp and
// node header every time.
type monolith struct {
	mu sync.Mutex
	n  int
}

func (m *monolith) answer(price int) *compare.Response {
	m.mu.Lock()
	m.n++
	n := m.n
	m.mu.Unlock()
	return &compare.Response{
		Status: 200,
		Header: hdr("Content-Type", "application/json", "X-Node", fmt.Sprint("node-", n)),
		Body: fmt.Appendf(nil, `{"id":1,"price":%d,"generatedAt":"2024-01-01T00:00:%02dZ","items":[{"sku":"a","ts":%d},{"sku":"b","ts":%d}]}`,
			price, n%60, n, n+1),
	}
}

func TestNoiseDropsWhatTheMonolithVaries(t *testing.T) {
	t.Parallel()
	r := mustRules(t, compare.RulesConfig{})
	var m monolith
	// The monolith is the primary; the service is the shadow and has a
	// real bug: the price.
	primary, service, extra := m.answer(10), m.answer(12), m.answer(10)

	plain := compare.Compare(primary, service, r)
	if len(plain.Differences) != 5 {
		t.Fatalf("without noise: %s, want price, generatedAt, two ts and X-Node", diffsJSON(t, plain.Differences))
	}

	noise := compare.NewNoise(0)
	res := noise.Compare(primary, service, primary, extra, r)
	if got, want := diffsJSON(t, res.Differences), `[{"kind":"body","pointer":"/price","primary":10,"shadow":12}]`; got != want {
		t.Errorf("with noise: %s, want %s", got, want)
	}
	if res.Outcome != compare.Mismatch || res.Noisy != 4 {
		t.Errorf("outcome %v, noisy %d; want mismatch, 4", res.Outcome, res.Noisy)
	}
	wantFields := []string{"/generatedAt", "/items/*/ts", "header:X-Node"}
	if got := noise.Fields(); !slices.Equal(got, wantFields) {
		t.Errorf("Fields() = %q, want %q", got, wantFields)
	}
	if noise.Len() != 3 {
		t.Errorf("Len() = %d, want 3", noise.Len())
	}

	// Later comparisons drop learned noise even without a second monolith
	// answer, and the service fixed its price.
	res = noise.Compare(m.answer(10), m.answer(10), nil, nil, r)
	if res.Outcome != compare.Match || res.Noisy != 4 {
		t.Errorf("after learning: %v with %s, noisy %d; want match, noisy 4", res.Outcome, diffsJSON(t, res.Differences), res.Noisy)
	}
}

func TestNoiseMonolithAsShadow(t *testing.T) {
	t.Parallel()
	r := mustRules(t, compare.RulesConfig{})
	var m monolith
	service, shadow, extra := m.answer(10), m.answer(10), m.answer(10)
	res := compare.NewNoise(0).Compare(service, shadow, shadow, extra, r)
	if res.Outcome != compare.Match {
		t.Errorf("got %v with %s, want match", res.Outcome, diffsJSON(t, res.Differences))
	}
}

func TestNoiseArrayIndexes(t *testing.T) {
	t.Parallel()
	r := mustRules(t, compare.RulesConfig{})
	noise := compare.NewNoise(0)
	// Noise at /items/0/ts drops /items/0/ts now, and any /items/N/ts later.
	res := noise.Compare(jsonResp(`{"items":[{"ts":1},{"ts":5}]}`), jsonResp(`{"items":[{"ts":2},{"ts":6}]}`),
		jsonResp(`{"items":[{"ts":1},{"ts":5}]}`), jsonResp(`{"items":[{"ts":3},{"ts":5}]}`), r)
	if res.Noisy != 2 || res.Outcome != compare.Match {
		t.Errorf("first: noisy %d, %v: %s; want both ts dropped", res.Noisy, res.Outcome, diffsJSON(t, res.Differences))
	}
	res = noise.Compare(jsonResp(`{"items":[{"ts":1},{"ts":1},{"ts":1,"id":1}]}`), jsonResp(`{"items":[{"ts":1},{"ts":1},{"ts":2,"id":2}]}`), nil, nil, r)
	if got, want := diffsJSON(t, res.Differences), `[{"kind":"body","pointer":"/items/2/id","primary":1,"shadow":2}]`; got != want || res.Noisy != 1 {
		t.Errorf("later: %s, noisy %d; want %s, noisy 1", got, res.Noisy, want)
	}
}

// An object's numeric key names that member only: noise learned at
// /rates/2024 (this year's rate moves) says nothing of /rates/2023, a
// fixed past value (a review found it hidden as /rates/*).
func TestNoiseNumericKeysAreNotIndexes(t *testing.T) {
	t.Parallel()
	r := mustRules(t, compare.RulesConfig{})
	noise := compare.NewNoise(0)
	a, b := jsonResp(`{"rates":{"2023":1.5,"2024":1.7}}`), jsonResp(`{"rates":{"2023":1.5,"2024":1.8}}`)
	noise.Compare(a, b, a, b, r)
	if got := noise.Fields(); !slices.Equal(got, []string{"/rates/2024"}) {
		t.Errorf("learned %q, want [/rates/2024]", got)
	}
	res := noise.Compare(jsonResp(`{"rates":{"2023":1.5,"2024":1.7}}`), jsonResp(`{"rates":{"2023":9.9,"2024":1.9}}`), nil, nil, r)
	if got, want := diffsJSON(t, res.Differences), `[{"kind":"body","pointer":"/rates/2023","primary":1.5,"shadow":9.9}]`; got != want || res.Noisy != 1 {
		t.Errorf("later: %s, noisy %d; want %s, noisy 1", got, res.Noisy, want)
	}
}

func TestNoiseLearnsNothingFromFailedMonolith(t *testing.T) {
	t.Parallel()
	r := mustRules(t, compare.RulesConfig{})
	noise := compare.NewNoise(0)
	ok, failed := jsonResp(`{"a":1}`), &compare.Response{Status: 503, Body: []byte("busy")}
	res := noise.Compare(ok, jsonResp(`{"a":2}`), ok, failed, r)
	if res.Outcome != compare.Mismatch || noise.Len() != 0 {
		t.Errorf("got %v with %d learned fields %q, want mismatch and nothing learned", res.Outcome, noise.Len(), noise.Fields())
	}
	// Status differences are never noise, even between monolith answers
	// that agree on status but not on the shadow's.
	res = noise.Compare(ok, &compare.Response{Status: 500}, ok, ok, r)
	if res.Outcome != compare.Mismatch || res.Differences[0].Kind != compare.KindStatus {
		t.Errorf("got %s, want a status difference", diffsJSON(t, res.Differences))
	}
}

// TestNoiseLearnsNothingFromBrokenBodies: a monolith answer that cannot be
// decoded, or is not JSON when the other is, must not make the whole body
// noise.
func TestNoiseLearnsNothingFromBrokenBodies(t *testing.T) {
	t.Parallel()
	r := mustRules(t, compare.RulesConfig{})
	good := jsonResp(`{"a":1}`)
	for name, broken := range map[string]*compare.Response{
		"undecodable": encoded("gzip", []byte(`{"a":1}`)),
		"not JSON":    {Status: 200, Header: hdr("Content-Type", "application/json"), Body: []byte("<html>oops</html>")},
	} {
		noise := compare.NewNoise(0)
		res := noise.Compare(good, &compare.Response{Status: 200, Header: hdr("Content-Type", "application/json"), Body: []byte("[]")}, good, broken, r)
		if noise.Len() != 0 || res.Outcome != compare.Mismatch {
			t.Errorf("%s: learned %q, outcome %v; want nothing learned and a mismatch", name, noise.Fields(), res.Outcome)
		}
	}
}

func TestNoiseIsBounded(t *testing.T) {
	t.Parallel()
	r := mustRules(t, compare.RulesConfig{})
	noise := compare.NewNoise(2)
	a, b := jsonResp(`{"a":1,"b":1,"c":1,"d":1}`), jsonResp(`{"a":2,"b":2,"c":2,"d":2}`)
	res := noise.Compare(a, b, a, b, r)
	if noise.Len() != 2 {
		t.Errorf("Len() = %d, want 2", noise.Len())
	}
	// What did not fit is still noise for this request.
	if res.Outcome != compare.Match || res.Noisy != 4 {
		t.Errorf("got %v, noisy %d; want match, noisy 4", res.Outcome, res.Noisy)
	}
	res = noise.Compare(a, b, nil, nil, r)
	if res.Noisy != 2 || len(res.Differences) != 2 {
		t.Errorf("later: noisy %d, %d differences; want 2 and 2", res.Noisy, len(res.Differences))
	}
}

// A noisy field whose place is longer than 1 KiB (a JSON key taken from
// the request) is noise for the comparison it was seen in, but not
// remembered: the set's bound is on fields, and each could be as long as
// an answer.
func TestNoiseForgetsLongPlaces(t *testing.T) {
	t.Parallel()
	r := mustRules(t, compare.RulesConfig{})
	noise := compare.NewNoise(0)
	key := strings.Repeat("k", 2<<10)
	a := jsonResp(`{"` + key + `":1,"short":1}`)
	b := jsonResp(`{"` + key + `":2,"short":2}`)
	// A place past 1 KiB is never noise, even where the monolith varies.
	if res := noise.Compare(a, b, a, b, r); res.Outcome != compare.Mismatch || res.Noisy != 1 || len(res.Differences) != 1 {
		t.Errorf("got %v, noisy %d, %d differences; want the long place a mismatch, /short noise", res.Outcome, res.Noisy, len(res.Differences))
	}
	if got := noise.Fields(); !slices.Equal(got, []string{"/short"}) {
		t.Errorf("learned %q, want only /short", got)
	}
}

// TestNoiseWorkIsLinear: a body of many differences at one long place
// (duplicate members below a long name) cost, with noise on, a pointer
// as long as the place for each, matched against the places the monolith
// varied: work that grew as the square of the body. A place past 1 KiB is
// never noise, so no difference costs more than that. Measured as bytes
// allocated at two sizes in one run, never as time.
func TestNoiseWorkIsLinear(t *testing.T) {
	t.Parallel()
	r := mustRules(t, compare.RulesConfig{})
	doc := func(keyLen, members, v int) *compare.Response {
		var b strings.Builder
		b.WriteString(`{"` + strings.Repeat("k", keyLen) + `":{`)
		for i := range members {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `"a":%d`, v)
		}
		b.WriteString("}}")
		return jsonResp(b.String())
	}
	work := func(scale int) (uint64, compare.Result) {
		keyLen, members := 250*scale, 500*scale
		n := compare.NewNoise(0)
		p, s, extra := doc(keyLen, members, 1), doc(keyLen, members, 3), doc(keyLen, members, 2)
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		res := n.Compare(p, s, p, extra, r)
		runtime.ReadMemStats(&m1)
		return m1.TotalAlloc - m0.TotalAlloc, res
	}
	small, res := work(1)
	if res.Outcome != compare.Match || res.Noisy != 500 {
		t.Fatalf("place of 500 bytes: %v, noisy %d; want a match, 500 noisy", res.Outcome, res.Noisy)
	}
	big, res := work(8)
	if res.Outcome != compare.Mismatch {
		t.Errorf("place of 2000 bytes: %v, want a mismatch (never noise)", res.Outcome)
	}
	if big > 12*small {
		t.Errorf("8 times the body cost %.1f times the work, want about 8 at most", float64(big)/float64(small))
	}
}

// Noise in a text body (an HTML page's CSRF token) is the span where the
// request's two monolith answers differ, not the whole body: a service
// that answers an error page, nothing, or the same page with other data
// is still a mismatch, and no whole body is remembered as noise.
func TestNoiseInTextBodiesIsASpan(t *testing.T) {
	t.Parallel()
	r := mustRules(t, compare.RulesConfig{})
	page := func(token, orders string) *compare.Response {
		return &compare.Response{Status: 200, Header: hdr("Content-Type", "text/html"),
			Body: []byte(`<html><form><input name="csrf" value="` + token + `"></form><p>Orders: ` + orders + `</p></html>`)}
	}
	for _, tc := range []struct {
		name   string
		shadow *compare.Response
		want   compare.Outcome
	}{
		{"the same page, another token", page("DDDDDDDD", "3"), compare.Match},
		{"a shorter token", page("DD", "3"), compare.Match},
		{"other data outside the token", page("EEEEEEEE", "4"), compare.Mismatch},
		{"an error page", &compare.Response{Status: 200, Header: hdr("Content-Type", "text/html"), Body: []byte("<html>Internal error</html>")}, compare.Mismatch},
		{"no body", &compare.Response{Status: 200, Header: hdr("Content-Type", "text/html")}, compare.Mismatch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			noise := compare.NewNoise(0)
			res := noise.Compare(page("CCCCCCCC", "3"), tc.shadow, page("AAAAAAAA", "3"), page("BBBBBBBB", "3"), r)
			if res.Outcome != tc.want {
				t.Errorf("got %v (%+v), want %v", res.Outcome, res.Differences, tc.want)
			}
			if f := noise.Fields(); len(f) != 0 {
				t.Errorf("learned %q from two text bodies", f)
			}
			// Without this request's monolith answers, nothing is noise.
			if res := noise.Compare(page("CCCCCCCC", "3"), page("DDDDDDDD", "3"), nil, nil, r); res.Outcome != compare.Mismatch {
				t.Errorf("later, without monolith answers: %v, want a mismatch", res.Outcome)
			}
		})
	}
}

// A JSON document that is one scalar the monolith varies per request
// (a timestamp) is noise for that request, as any field is; two text
// bodies that share neither a start nor an end show no span, and a
// service's empty answer is a mismatch (a review of the span change).
func TestNoiseWholeBodies(t *testing.T) {
	t.Parallel()
	r := mustRules(t, compare.RulesConfig{})
	text := func(b string) *compare.Response {
		return &compare.Response{Status: 200, Header: hdr("Content-Type", "text/plain"), Body: []byte(b)}
	}
	for _, tc := range []struct {
		name                    string
		primary, shadow, ma, mb *compare.Response
		want                    compare.Outcome
	}{
		{"a JSON scalar the monolith varies", jsonResp(`1712345678`), jsonResp(`1712345690`), jsonResp(`1712345678`), jsonResp(`1712345679`), compare.Match},
		{"a JSON string the monolith varies", jsonResp(`"c3"`), jsonResp(`"d4"`), jsonResp(`"a1"`), jsonResp(`"b2"`), compare.Match},
		{"monolith roots of two types, the service's null", jsonResp(`{"a":1}`), jsonResp(`null`), jsonResp(`{"a":1}`), jsonResp(`[]`), compare.Mismatch},
		{"monolith roots of two types, the service's string", jsonResp(`[]`), jsonResp(`"error"`), jsonResp(`{"a":1}`), jsonResp(`[]`), compare.Mismatch},
		{"monolith roots of two types, the service's array", jsonResp(`{"a":1}`), jsonResp(`[{"x":1}]`), jsonResp(`{"a":1}`), jsonResp(`[]`), compare.Mismatch},
		{"random text, the service's empty answer", text("12345"), text(""), text("12345"), text("67890"), compare.Mismatch},
		{"random text, the service's error page", text("12345"), text("<html>500</html>"), text("12345"), text("67890"), compare.Mismatch},
		{"random lines, the service's error page", text("12345\n"), text("oops\n"), text("12345\n"), text("67890\n"), compare.Mismatch},
		{"two pages sharing a \"<\", the service's error page", text("<p>a</p>"), text("<h1>Service Unavailable</h1>"), text("<p>a</p>"), text("<div>b</div>"), compare.Mismatch},
		{"a page with a token, the service's much longer middle", text("<p>token=AAAA;</p>"), text("<p>token=" + strings.Repeat("x", 200) + ";</p>"), text("<p>token=AAAA;</p>"), text("<p>token=BBBB;</p>"), compare.Mismatch},
		{"a page with a token, the service's own token", text("<p>token=AAAA;</p>"), text("<p>token=CCCCC;</p>"), text("<p>token=AAAA;</p>"), text("<p>token=BBBB;</p>"), compare.Match},
	} {
		if res := compare.NewNoise(0).Compare(tc.primary, tc.shadow, tc.ma, tc.mb, r); res.Outcome != tc.want {
			t.Errorf("%s: %v, want %v (%+v)", tc.name, res.Outcome, tc.want, res.Differences)
		}
	}
}

// A monolith that returns a list in another order (a query without ORDER
// BY) differs at every field of every element; that is noise for the
// request, but remembered it would hide a service's wrong price for good
// (a review). A list whose elements really vary still teaches its fields.
func TestNoiseReorderedListTeachesNothing(t *testing.T) {
	t.Parallel()
	r := mustRules(t, compare.RulesConfig{})
	noise := compare.NewNoise(0)
	a := jsonResp(`{"items":[{"id":1,"price":5},{"id":2,"price":6}]}`)
	b := jsonResp(`{"items":[{"id":2,"price":6},{"id":1,"price":5}]}`)
	if res := noise.Compare(a, b, a, b, r); res.Outcome != compare.Match {
		t.Errorf("the reordered answer itself: %v, want a match (noise for its request)", res.Outcome)
	}
	if f := noise.Fields(); len(f) != 0 {
		t.Errorf("learned %q from a reordered list", f)
	}
	wrong := jsonResp(`{"items":[{"id":1,"price":50},{"id":2,"price":6}]}`)
	if res := noise.Compare(a, wrong, nil, nil, r); res.Outcome != compare.Mismatch {
		t.Errorf("later, a wrong price: %v, want a mismatch", res.Outcome)
	}
	// Elements whose field varies (a timestamp) still teach it.
	ta, tb := jsonResp(`{"items":[{"id":1,"ts":5},{"id":2,"ts":6}]}`), jsonResp(`{"items":[{"id":1,"ts":7},{"id":2,"ts":8}]}`)
	noise.Compare(ta, tb, ta, tb, r)
	if f := noise.Fields(); !slices.Equal(f, []string{"/items/*/ts"}) {
		t.Errorf("learned %q, want [/items/*/ts]", f)
	}
}

// A monolith that refreshes a session cookie on some answers teaches
// nothing about Set-Cookie for later requests: a service that never sets
// the cookie, or strips its protections, must stay a mismatch.
func TestNoiseNeverRemembersSetCookie(t *testing.T) {
	t.Parallel()
	r := mustRules(t, compare.RulesConfig{})
	noise := compare.NewNoise(0)
	cookies := func(lines ...string) *compare.Response {
		h := http.Header{}
		for _, l := range lines {
			h.Add("Set-Cookie", l)
		}
		return &compare.Response{Status: 200, Header: h}
	}
	const csrf, session = "csrf=1; Path=/", "session=2; Path=/; Secure; HttpOnly"
	if res := noise.Compare(cookies(csrf, session), cookies(csrf, session), cookies(csrf, session), cookies(csrf), r); res.Outcome != compare.Match {
		t.Fatalf("the same cookies: %v", res.Outcome)
	}
	if f := noise.Fields(); len(f) != 0 {
		t.Errorf("learned %q", f)
	}
	for _, svc := range []*compare.Response{cookies(csrf), cookies(csrf, "session=3; Path=/")} {
		if res := noise.Compare(cookies(csrf, session), svc, nil, nil, r); res.Outcome != compare.Mismatch {
			t.Errorf("later, service %q: %v, want a mismatch", svc.Header["Set-Cookie"], res.Outcome)
		}
	}
}

// TestNoiseConcurrent shares a Noise between goroutines that learn and
// read; run with -race.
func TestNoiseConcurrent(t *testing.T) {
	t.Parallel()
	r := mustRules(t, compare.RulesConfig{})
	noise := compare.NewNoise(0)
	var m monolith
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				noise.Compare(m.answer(10), m.answer(12), m.answer(10), m.answer(10), r)
				_ = noise.Fields()
			}
		})
	}
	wg.Wait()
	if got, want := noise.Fields(), []string{"/generatedAt", "/items/*/ts", "header:X-Node"}; !slices.Equal(got, want) {
		t.Errorf("Fields() = %q, want %q", got, want)
	}
}

// TestNoiseListThatGrewTeachesNothing: a list that grew at its front
// between the monolith's two answers (a newest-first feed) shifts every
// element; learned, each of their fields would hide a wrong price for
// good.
func TestNoiseListThatGrewTeachesNothing(t *testing.T) {
	t.Parallel()
	r := mustRules(t, compare.RulesConfig{})
	for _, tc := range []struct{ name, media, now, before, wrong string }{
		{"array", "application/json",
			`{"items":[{"id":3,"price":30},{"id":2,"price":20},{"id":1,"price":10}]}`,
			`{"items":[{"id":2,"price":20},{"id":1,"price":10}]}`,
			`{"items":[{"id":3,"price":31},{"id":2,"price":21},{"id":1,"price":10}]}`},
		{"stream", "application/x-ndjson",
			"{\"id\":3,\"price\":30}\n{\"id\":2,\"price\":20}\n{\"id\":1,\"price\":10}\n",
			"{\"id\":2,\"price\":20}\n{\"id\":1,\"price\":10}\n",
			"{\"id\":3,\"price\":31}\n{\"id\":2,\"price\":21}\n{\"id\":1,\"price\":10}\n"},
	} {
		resp := func(body string) *compare.Response {
			return &compare.Response{Status: 200, Header: hdr("Content-Type", tc.media), Body: []byte(body)}
		}
		noise := compare.NewNoise(0)
		noise.Compare(resp(tc.now), resp(tc.now), resp(tc.now), resp(tc.before), r)
		if f := noise.Fields(); len(f) != 0 {
			t.Errorf("%s: learned %q from a list that grew", tc.name, f)
		}
		if res := noise.Compare(resp(tc.now), resp(tc.wrong), nil, nil, r); res.Outcome != compare.Mismatch {
			t.Errorf("%s: wrong prices after learning: %v, want a mismatch", tc.name, res.Outcome)
		}
	}
}

// TestNoiseListThatGrewIsThisRequestsNoise: within the elements of a list
// the monolith's two answers hold in another number, anything is this
// request's noise (which element of one answer another is, is not known),
// but not an element missing where both answers had one.
func TestNoiseListThatGrewIsThisRequestsNoise(t *testing.T) {
	t.Parallel()
	r := mustRules(t, compare.RulesConfig{})
	now := jsonResp(`{"items":[{"id":3,"u":1},{"id":2,"u":1},{"id":1,"u":1}]}`)
	before := jsonResp(`{"items":[{"id":2,"u":2},{"id":1,"u":2}]}`)
	if res := compare.NewNoise(0).Compare(now, jsonResp(`{"items":[{"id":3,"u":5},{"id":2,"u":5},{"id":1,"u":5}]}`), now, before, r); res.Outcome != compare.Match {
		t.Errorf("fields within the grown list: %v %s, want a match", res.Outcome, diffsJSON(t, res.Differences))
	}
	res := compare.NewNoise(0).Compare(now, jsonResp(`{"items":[]}`), now, before, r)
	if got, want := diffsJSON(t, res.Differences), `[{"kind":"body","pointer":"/items/0","primary":{"id":3,"u":1}},{"kind":"body","pointer":"/items/1","primary":{"id":2,"u":1}}]`; got != want {
		t.Errorf("a service answering []: %s, want %s", got, want)
	}
	// A place as long as a URL key, well under 1 KiB, is noise as any.
	key := "https://example.com/" + strings.Repeat("a", 500)
	doc := func(ts int) *compare.Response {
		return jsonResp(fmt.Sprintf(`{"cache":{%q:{"ts":%d}},"deep":%s%d%s}`, key, ts, strings.Repeat("[", 100), ts, strings.Repeat("]", 100)))
	}
	if res := compare.NewNoise(0).Compare(doc(1), doc(3), doc(1), doc(2), r); res.Outcome != compare.Match || res.Noisy != 2 {
		t.Errorf("places of 533 and 301 bytes: %v, noisy %d, %s; want both noise", res.Outcome, res.Noisy, diffsJSON(t, res.Differences))
	}
}

// TestNoiseWithinAMovedListGoesByPlaceAndShape: within a list the
// monolith's answers hold in another order or number, a difference is
// this request's noise where the monolith's own answers differed so at
// that place in some element, not a field every element of both had,
// missing or retyped.
func TestNoiseWithinAMovedListGoesByPlaceAndShape(t *testing.T) {
	t.Parallel()
	r := mustRules(t, compare.RulesConfig{})
	a := jsonResp(`{"items":[{"id":1,"price":5},{"id":2,"price":6}],"ids":[1,2,3]}`)
	b := jsonResp(`{"items":[{"id":2,"price":6},{"id":1,"price":5}],"ids":[3,2,1]}`)
	for _, tc := range []struct {
		name, service string
		want          compare.Outcome
	}{
		{"the same elements, another order", `{"items":[{"id":2,"price":6},{"id":1,"price":5}],"ids":[2,1,3]}`, compare.Match},
		{"fields missing", `{"items":[{},{}],"ids":[1,2,3]}`, compare.Mismatch},
		{"a price retyped", `{"items":[{"id":1,"price":"5"},{"id":2,"price":"6"}],"ids":[1,2,3]}`, compare.Mismatch},
		{"an element missing", `{"items":[{"id":1,"price":5}],"ids":[1,2,3]}`, compare.Mismatch},
	} {
		if res := compare.NewNoise(0).Compare(a, jsonResp(tc.service), a, b, r); res.Outcome != tc.want {
			t.Errorf("%s: %v %s, want %v", tc.name, res.Outcome, diffsJSON(t, res.Differences), tc.want)
		}
	}
}
