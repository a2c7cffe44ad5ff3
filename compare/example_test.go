package compare_test

import (
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/strangler-proxy/strangler/compare"
)

func ExampleCompare() {
	rules, err := compare.NewRules(compare.RulesConfig{IgnoreJSON: []string{"/items/*/updatedAt"}})
	if err != nil {
		panic(err)
	}
	monolith := &compare.Response{
		Status: 200,
		Header: http.Header{"Content-Type": {"application/json"}, "Date": {"Mon, 01 Jan 2024 10:00:00 GMT"}},
		Body:   []byte(`{"items":[{"sku":"a","price":10,"updatedAt":"10:00"}],"count":1}`),
	}
	service := &compare.Response{
		Status: 200,
		Header: http.Header{"Content-Type": {"application/json; charset=utf-8"}, "Date": {"Mon, 01 Jan 2024 10:00:02 GMT"}},
		Body:   []byte(`{"count":1.0,"items":[{"updatedAt":"10:02","price":12,"sku":"a"}]}`),
	}
	res := compare.Compare(monolith, service, rules)
	out, _ := json.Marshal(res)
	fmt.Println(string(out))
	// Output:
	// {"outcome":"mismatch","differences":[{"kind":"body","pointer":"/items/0/price","primary":10,"shadow":12}]}
}

// The worked example of the package documentation.
func ExampleNoise_Compare() {
	rules, _ := compare.NewRules(compare.RulesConfig{})
	answer := func(node, body string) *compare.Response {
		return &compare.Response{Status: 200, Header: http.Header{"Content-Type": {"application/json"}, "X-Node": {node}}, Body: []byte(body)}
	}
	primary := answer("a", `{"id":7,"total":10,"at":"12:00:01","lines":[{"ts":1}]}`)
	shadow := answer("s1", `{"id":7,"total":12,"at":"12:00:01","lines":[{"ts":2}]}`)
	extra := answer("b", `{"id":7,"total":10,"at":"12:00:02","lines":[{"ts":3}]}`)

	noise := compare.NewNoise(0)
	res := noise.Compare(primary, shadow, primary, extra, rules)
	out, _ := json.Marshal(res)
	fmt.Println(string(out))
	fmt.Printf("%q\n", noise.Fields())

	later := noise.Compare(
		answer("a", `{"at":"12:01:00","lines":[{},{},{},{},{},{"ts":1}]}`),
		answer("s2", `{"at":"12:01:01","lines":[{},{},{},{},{},{"ts":9}]}`),
		nil, nil, rules)
	fmt.Println(later.Outcome, later.Noisy)
	// Output:
	// {"outcome":"mismatch","differences":[{"kind":"body","pointer":"/total","primary":10,"shadow":12}],"noisy":2}
	// ["/at" "/lines/*/ts" "header:X-Node"]
	// match 3
}
