package compare_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/strangler-proxy/strangler/compare"
)

// product is a typical item of a paginated catalogue API.
type product struct {
	ID        int64             `json:"id"`
	SKU       string            `json:"sku"`
	Name      string            `json:"name"`
	Price     float64           `json:"price"`
	Currency  string            `json:"currency"`
	Tags      []string          `json:"tags"`
	Stock     map[string]int    `json:"stock"`
	Attrs     map[string]string `json:"attributes"`
	Active    bool              `json:"active"`
	Discount  *float64          `json:"discount"`
	UpdatedAt string            `json:"updatedAt"`
}

type page struct {
	Data []product `json:"data"`
	Meta struct {
		Page    int    `json:"page"`
		PerPage int    `json:"perPage"`
		Total   int    `json:"total"`
		Next    string `json:"next"`
	} `json:"meta"`
}

// catalogue returns a page of at least 64 KiB, as the monolith would
// serialise it (struct order), and the same page as a service that
// serialises maps would (sorted keys), so the two differ in every byte
// but not in value.
func catalogue(tb testing.TB) (monolith, service []byte) {
	tb.Helper()
	var p page
	for i := 0; ; i++ {
		p.Data = append(p.Data, product{
			ID:        int64(1_000_000 + i),
			SKU:       fmt.Sprintf("SKU-%06d", i),
			Name:      fmt.Sprintf("Stainless steel water bottle, %d cl", 50+i%5*25),
			Price:     float64(1999+i*7%1000) / 100,
			Currency:  "EUR",
			Tags:      []string{"outdoor", "kitchen", fmt.Sprint("batch-", i%13)},
			Stock:     map[string]int{"berlin": i % 17, "paris": i % 5},
			Attrs:     map[string]string{"colour": "steel", "material": "18/8 stainless"},
			Active:    i%9 != 0,
			UpdatedAt: fmt.Sprintf("2024-03-%02dT10:%02d:00Z", 1+i%28, i%60),
		})
		p.Meta.Page, p.Meta.PerPage, p.Meta.Total, p.Meta.Next = 1, len(p.Data), 5_000, "/products?page=2"
		b, err := json.Marshal(p)
		if err != nil {
			tb.Fatal(err)
		}
		if len(b) >= 64<<10 {
			var generic any
			if err := json.Unmarshal(b, &generic); err != nil {
				tb.Fatal(err)
			}
			sorted, err := json.Marshal(generic)
			if err != nil {
				tb.Fatal(err)
			}
			return b, sorted
		}
	}
}

func benchCompare(b *testing.B, primary, shadow *compare.Response, want compare.Outcome) {
	r := mustRules(b, compare.RulesConfig{IgnoreJSON: []string{"/data/*/updatedAt"}})
	b.SetBytes(int64(len(primary.Body)))
	b.ReportAllocs()
	for b.Loop() {
		if res := compare.Compare(primary, shadow, r); res.Outcome != want {
			b.Fatalf("outcome %v, want %v: %s", res.Outcome, want, diffsJSON(b, res.Differences))
		}
	}
}

func BenchmarkCompareJSON64KiBEqual(b *testing.B) {
	mono, svc := catalogue(b)
	b.Run("identical", func(b *testing.B) {
		benchCompare(b, jsonResp(string(mono)), jsonResp(string(mono)), compare.Match)
	})
	b.Run("reordered", func(b *testing.B) {
		benchCompare(b, jsonResp(string(mono)), jsonResp(string(svc)), compare.Match)
	})
	b.Run("gzip", func(b *testing.B) {
		benchCompare(b, jsonResp(string(mono)), encoded("gzip", gzipped(b, svc)), compare.Match)
	})
}

func BenchmarkCompareJSON64KiBOneDiff(b *testing.B) {
	mono, svc := catalogue(b)
	changed := bytes.Replace(mono, []byte(`"SKU-000042"`), []byte(`"SKU-00042"`), 1)
	changedSvc := bytes.Replace(svc, []byte(`"SKU-000042"`), []byte(`"SKU-00042"`), 1)
	if bytes.Equal(changed, mono) || bytes.Equal(changedSvc, svc) {
		b.Fatal("no SKU to change")
	}
	b.Run("same order", func(b *testing.B) {
		benchCompare(b, jsonResp(string(mono)), jsonResp(string(changed)), compare.Mismatch)
	})
	b.Run("reordered", func(b *testing.B) {
		benchCompare(b, jsonResp(string(mono)), jsonResp(string(changedSvc)), compare.Mismatch)
	})
}

func BenchmarkCompareHeaders(b *testing.B) {
	h := func(date, reqID string) http.Header {
		return hdr(
			"Content-Type", "application/json; charset=utf-8",
			"Cache-Control", "private, max-age=0",
			"Date", date,
			"Server", "nginx",
			"Vary", "Accept-Encoding, Authorization",
			"X-Request-Id", reqID,
			"Traceparent", "00-"+reqID+"-01",
			"Strict-Transport-Security", "max-age=63072000",
			"X-Content-Type-Options", "nosniff",
			"X-Frame-Options", "DENY",
			"Content-Security-Policy", "default-src 'self'",
			"Set-Cookie", "session="+reqID+"; Path=/; HttpOnly; Secure",
			"Set-Cookie", "csrf="+reqID+"; Path=/",
			"X-Ratelimit-Remaining", "99",
			"Link", `</products?page=2>; rel="next"`,
		)
	}
	primary := &compare.Response{Status: 200, Header: h("Mon, 01 Jan 2024 00:00:00 GMT", "4bf92f3577b34da6a3ce929d0e0e4736")}
	shadow := &compare.Response{Status: 200, Header: h("Mon, 01 Jan 2024 00:00:01 GMT", "00f067aa0ba902b7a3ce929d0e0e4736")}
	r := mustRules(b, compare.RulesConfig{})
	b.ReportAllocs()
	for b.Loop() {
		if res := compare.Compare(primary, shadow, r); res.Outcome != compare.Match {
			b.Fatalf("outcome %v: %s", res.Outcome, diffsJSON(b, res.Differences))
		}
	}
}

func BenchmarkNoiseCompare(b *testing.B) {
	var m monolith
	primary, shadow, extra := m.answer(10), m.answer(12), m.answer(10)
	r := mustRules(b, compare.RulesConfig{})
	noise := compare.NewNoise(0)
	b.ReportAllocs()
	for b.Loop() {
		if res := noise.Compare(primary, shadow, primary, extra, r); len(res.Differences) != 1 {
			b.Fatalf("differences %s", diffsJSON(b, res.Differences))
		}
	}
}

// A body nested 6,000 levels deep that differs at every level, through
// Noise.Compare: once max_differences are listed the rest are counted
// without building their pointers (each as long as the document is deep).
func BenchmarkNoiseCompareDeep(b *testing.B) {
	const depth = 6000
	deep := func(leaf string) *compare.Response {
		return jsonResp(strings.Repeat("["+leaf+",", depth) + leaf + strings.Repeat("]", depth))
	}
	primary, shadow := deep("0"), deep("1")
	r := mustRules(b, compare.RulesConfig{})
	noise := compare.NewNoise(0)
	b.ReportAllocs()
	for b.Loop() {
		if res := noise.Compare(primary, shadow, nil, nil, r); res.Omitted != depth+1-len(res.Differences) {
			b.Fatalf("omitted %d with %d listed", res.Omitted, len(res.Differences))
		}
	}
}

// BenchmarkCompareManySetCookies compares two heads of 3,000 Set-Cookie
// lines in opposite orders (about 90 KiB each), and two Vary values of
// 3,000 names: linear in the lines since they are compared through sets
// past smallSet (pairwise, it took 120 ms).
func BenchmarkCompareManySetCookies(b *testing.B) {
	r, err := compare.NewRules(compare.RulesConfig{})
	if err != nil {
		b.Fatal(err)
	}
	p := &compare.Response{Status: 200, Header: http.Header{"Set-Cookie": manyCookies(3000, false, "a"), "Vary": {manyVary(3000, false)}}}
	s := &compare.Response{Status: 200, Header: http.Header{"Set-Cookie": manyCookies(3000, true, "b"), "Vary": {manyVary(3000, true)}}}
	for b.Loop() {
		if res := compare.Compare(p, s, r); res.Outcome != compare.Match {
			b.Fatal(res.Outcome)
		}
	}
}

// BenchmarkCompareUnordered compares lists that unordered_json names,
// against the same lists position by position: elements equal by value
// only (1 and 1.0: each pairs in one probe), and wide records that differ
// in their first member (every probe fails at once, and the work budget
// decides). Each runs in time linear in the lists' size.
func BenchmarkCompareUnordered(b *testing.B) {
	array := func(n int, elem func(i int) string) []byte {
		var sb strings.Builder
		sb.WriteByte('[')
		for i := range n {
			if i > 0 {
				sb.WriteByte(',')
			}
			sb.WriteString(elem(i))
		}
		sb.WriteByte(']')
		return []byte(sb.String())
	}
	record := func(first int) string {
		var sb strings.Builder
		fmt.Fprintf(&sb, `{"k0":%d`, first)
		for k := 1; k < 100; k++ {
			fmt.Fprintf(&sb, `,"k%d":0`, k)
		}
		sb.WriteByte('}')
		return sb.String()
	}
	cases := []struct {
		name string
		a, s []byte
	}{
		{"renumbered-100k", array(100000, func(int) string { return "1" }), array(100000, func(int) string { return "1.0" })},
		{"wide-records-1k", array(1000, record), array(1000, func(i int) string { return record(-1 - i) })},
	}
	for _, c := range cases {
		for _, mode := range []string{"positional", "unordered"} {
			cfg := compare.RulesConfig{}
			if mode == "unordered" {
				cfg.UnorderedJSON = []string{""}
			}
			r := mustRules(b, cfg)
			a, s := jsonResp(string(c.a)), jsonResp(string(c.s))
			b.Run(c.name+"/"+mode, func(b *testing.B) {
				b.SetBytes(int64(len(c.a) + len(c.s)))
				for b.Loop() {
					compare.Compare(a, s, r)
				}
			})
		}
	}
}
