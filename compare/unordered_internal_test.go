package compare

import (
	"fmt"
	"strings"
	"testing"
)

// TestUnorderedProbeWorkIsBounded counts the values compared while
// pairing elements by value: linear in the arrays' size, however many
// pairs there are to try. Without the budget, 3,000 elements that differ
// only in their last value cost 9 million probes of 51 values each.
func TestUnorderedProbeWorkIsBounded(t *testing.T) {
	t.Parallel()
	r, err := NewRules(RulesConfig{UnorderedJSON: []string{""}})
	if err != nil {
		t.Fatal(err)
	}
	const n, width = 3000, 50
	doc := func(last func(i int) string) *Response {
		var b strings.Builder
		b.WriteString("[")
		for i := range n {
			if i > 0 {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, "[%s%s]", strings.Repeat("0,", width), last(i))
		}
		b.WriteString("]")
		return &Response{Status: 200, Header: map[string][]string{"Content-Type": {"application/json"}}, Body: []byte(b.String())}
	}
	primary := doc(func(i int) string { return fmt.Sprint(i) })
	shadow := doc(func(i int) string { return fmt.Sprint(2*n - 1 - i) })
	c := getComparison(r)
	defer putComparison(c)
	c.run(primary, shadow)
	nodes := 2 * (1 + n*(width+2))
	if max := 16*nodes + 4096 + n*(width+2); c.probeCost > max {
		t.Errorf("%d values compared pairing elements by value, want at most %d (16 per node of the arrays, and the last probe)", c.probeCost, max)
	}
	if c.probeCost < nodes {
		t.Errorf("%d values compared by value: the test no longer exercises the budget", c.probeCost)
	}
}
