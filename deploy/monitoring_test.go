package deploy

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v3"

	"github.com/strangler-proxy/strangler/proxy"
)

const (
	rulesFile     = "prometheus/rules.yml"
	rulesTestFile = "prometheus/rules_test.yml"
	dashboardFile = "grafana/strangler.json"
)

// TestPromtool runs promtool's own checks: the rules are valid, and their
// unit tests (each alert firing and not firing) pass. CI installs promtool
// (Debian's prometheus package), so there a missing promtool is a failure.
func TestPromtool(t *testing.T) {
	t.Parallel()
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("promtool not found; CI must install it (apt-get install -y prometheus)")
		}
		t.Skip("promtool not found (apt-get install -y prometheus)")
	}
	for _, args := range [][]string{
		{"check", "rules", rulesFile},
		{"test", "rules", rulesTestFile},
	} {
		t.Run(strings.Join(args[:2], "_"), func(t *testing.T) {
			t.Parallel()
			out, err := exec.CommandContext(t.Context(), promtool, args...).CombinedOutput()
			if err != nil {
				t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
			}
		})
	}
}

// descRecorder is a prometheus.Registerer that registers nothing: it keeps
// the descriptions of the collectors it is given, including vectors that
// have no child yet (a registry's Gather would leave those out).
type descRecorder struct {
	descs []*prometheus.Desc
}

func (r *descRecorder) Register(c prometheus.Collector) error {
	ch := make(chan *prometheus.Desc)
	go func() {
		c.Describe(ch)
		close(ch)
	}()
	for d := range ch {
		r.descs = append(r.descs, d)
	}
	return nil
}

func (r *descRecorder) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		r.Register(c)
	}
}

func (r *descRecorder) Unregister(prometheus.Collector) bool { return false }

var (
	descName   = regexp.MustCompile(`fqName: "([^"]+)"`)
	descLabels = regexp.MustCompile(`variableLabels: \{([^}]*)\}\}$`)
)

// exportedMetrics returns each metric that proxy.NewMetrics registers, with
// its label names, read from the descriptions (Desc has no accessors).
func exportedMetrics(t *testing.T) map[string][]string {
	t.Helper()
	var rec descRecorder
	proxy.NewMetrics(&rec)
	metrics := map[string][]string{}
	for _, d := range rec.descs {
		s := d.String()
		n := descName.FindStringSubmatch(s)
		l := descLabels.FindStringSubmatch(s)
		if n == nil || l == nil {
			t.Fatalf("cannot read a metric's name and labels from %s", s)
		}
		var names []string
		for name := range strings.SplitSeq(l[1], ",") {
			if name = strings.TrimSuffix(strings.TrimPrefix(name, "c("), ")"); name != "" {
				names = append(names, name)
			}
		}
		metrics[n[1]] = names
	}
	if len(metrics) == 0 {
		t.Fatal("proxy.NewMetrics registered nothing")
	}
	return metrics
}

// ruleFile is the part of a Prometheus rule file the checks read.
type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Record      string            `yaml:"record"`
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

func readRules(t *testing.T) ruleFile {
	t.Helper()
	b, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	var rf ruleFile
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(&rf); err != nil {
		t.Fatalf("%s: %v", rulesFile, err)
	}
	return rf
}

var (
	// A PromQL string literal: masked before looking for names, so that a
	// label value never passes for a metric.
	promString = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'`)
	// A metric or recorded name that mentions strangler_; recorded names
	// (level:metric:operations) contain colons.
	strangler = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)
	// A selector: a name and its label matchers.
	selector = regexp.MustCompile(`([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{([^}]*)\}`)
	// A label matcher and its value, read from the unmasked selector.
	matcher = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')`)
	// A regex matcher's value that is only literal alternatives.
	alternatives = regexp.MustCompile(`^[a-zA-Z0-9_]+(?:\|[a-zA-Z0-9_]+)*$`)
	// An aggregation with its grouping before the argument (sum by (a) (x)),
	// or the start of one whose grouping may come after it (sum (x) by (a)).
	aggregation = regexp.MustCompile(`^(?:sum|avg|count|min|max|group|stddev|stdvar|topk|bottomk|quantile|count_values|limitk|limit_ratio)\s*(?:(by|without)\s*\(([^()]*)\)\s*)?\(`)
	grouping    = regexp.MustCompile(`^\s*(by|without)\s*\(([^()]*)\)`)
	// Vector matching's label lists.
	matching = regexp.MustCompile(`\b(on|ignoring|group_left|group_right)\s*\(([^()]*)\)`)
	// Grafana's label_values(metric{…}, label).
	labelValuesQuery = regexp.MustCompile(`label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(?:\{[^}]*\})?\s*,\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)`)
	identifier       = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*`)
)

// targetLabels are the labels Prometheus adds to every scraped series (the
// Prometheus Operator adds namespace).
var targetLabels = []string{"job", "instance", "namespace"}

// openLabels take values from the config or the traffic (route and flag
// names, status codes): a query's values for them are not checked.
var openLabels = []string{"route", "flag", "code"}

// promSchema is what a query may name: the metrics the proxy exports with
// their labels, the values the proxy gives those labels, and the names
// rules.yml records with the labels each keeps.
type promSchema struct {
	metrics  map[string][]string            // metric → label names
	values   map[string]map[string][]string // metric → label → values
	recorded map[string][]string            // recorded name → label names
	// ruleValues are the values recording rules give labels of their own
	// (quantile).
	ruleValues map[string][]string
}

// newSchema reads the metrics and their label values from the proxy, and
// the recorded names from rf (nil: a query may use none).
func newSchema(t *testing.T, rf *ruleFile) *promSchema {
	t.Helper()
	s := &promSchema{metrics: exportedMetrics(t), values: exportedValues(t), recorded: map[string][]string{}, ruleValues: map[string][]string{}}
	if rf == nil {
		return s
	}
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			if r.Record == "" {
				continue
			}
			// The labels a recording rule keeps: those it aggregates by, or
			// all its metrics' if it does not aggregate; le never survives
			// histogram_quantile; plus the rule's own labels.
			var ls []string
			masked := maskStrings(r.Expr)
			if gs := regexp.MustCompile(`\bby\s*\(([^()]*)\)`).FindAllStringSubmatch(masked, -1); gs != nil {
				for _, g := range gs {
					ls = append(ls, labelList(g[1])...)
				}
			} else {
				ls = slices.Collect(maps.Keys(s.labelsOf(masked, nil)))
			}
			ls = slices.DeleteFunc(ls, func(l string) bool { return l == "le" })
			for l, v := range r.Labels {
				ls = append(ls, l)
				s.ruleValues[l] = append(s.ruleValues[l], v)
			}
			ls = append(s.recorded[r.Record], ls...)
			slices.Sort(ls)
			s.recorded[r.Record] = slices.Compact(ls)
		}
	}
	return s
}

// exportedValues returns, per metric and label, the values a proxy gives
// the label: it builds a Server from a config whose route compares and
// falls back on every reason, and reads what its registry holds before
// any request (the series the proxy binds at start: backends, roles,
// results, kinds, reasons). Labels with values only traffic creates
// (route, code) are open, not read here.
func exportedValues(t *testing.T) map[string]map[string][]string {
	t.Helper()
	dir := t.TempDir()
	for name, data := range map[string]string{
		"flags.json": `{"flags": {"r-percent": {"state": "ENABLED", "variants": {"on": 50}, "defaultVariant": "on"}}}`,
		"strangler.yaml": `
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
monolith: http://127.0.0.1:1
flags: {file: flags.json}
routes:
  - name: r
    path: /*
    service: http://127.0.0.1:2
    flag: r-percent
    shadow: {percent: 100}
    fallback: {on: [connect, reset, timeout, 5xx]}
`,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	raw, err := os.ReadFile(filepath.Join(dir, "strangler.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := proxy.ParseConfig(raw, dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	srv, err := proxy.New(t.Context(), cfg, proxy.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close(context.Background())
	mfs, err := srv.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	values := map[string]map[string][]string{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				byLabel := values[mf.GetName()]
				if byLabel == nil {
					byLabel = map[string][]string{}
					values[mf.GetName()] = byLabel
				}
				if !slices.Contains(byLabel[lp.GetName()], lp.GetValue()) {
					byLabel[lp.GetName()] = append(byLabel[lp.GetName()], lp.GetValue())
				}
			}
		}
	}
	return values
}

// knownValues returns the values label l takes on metric, or nil if there
// is nothing to check against. A label without children yet on its metric
// (strangler_requests_total's backend, bound per status code on the first
// request) takes any metric's values; so does a recorded name's (metric
// ""), and the values recording rules give their own labels.
func (s *promSchema) knownValues(metric, l string) []string {
	if v := s.values[metric][l]; len(v) > 0 {
		return v
	}
	var all []string
	for _, byLabel := range s.values {
		for _, v := range byLabel[l] {
			if !slices.Contains(all, v) {
				all = append(all, v)
			}
		}
	}
	if metric == "" {
		all = append(all, s.ruleValues[l]...)
	}
	return all
}

// labelsOf returns the labels of the series a PromQL fragment (strings
// masked) yields: an aggregation keeps its by labels (or drops its without
// labels), histogram_quantile drops le, anything else keeps its metrics'
// labels (a binary operation: both sides', an over-approximation). On the
// way it reports, through problem, every by or without label its argument
// does not have, and every histogram_quantile over classic buckets whose
// argument has lost le.
func (s *promSchema) labelsOf(expr string, problem func(string, ...any)) map[string]bool {
	if problem == nil {
		problem = func(string, ...any) {}
	}
	out := map[string]bool{}
	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case c == '{':
			i = skipTo(expr, i, '}')
		case c == '[':
			i = skipTo(expr, i, ']')
		case c == '(':
			end := closing(expr, i)
			maps.Copy(out, s.labelsOf(expr[i+1:end], problem))
			i = end + 1
		case c == '"' || c == '\'':
			i = skipTo(expr, i+1, c)
		case (c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') && (i == 0 || !isNameByte(expr[i-1])):
			name := identifier.FindString(expr[i:])
			if m := aggregation.FindStringSubmatchIndex(expr[i:]); m != nil {
				open := i + m[1] - 1
				end := closing(expr, open)
				arg := expr[open+1 : end]
				next := end + 1
				kind, list := "", ""
				if m[2] >= 0 {
					kind, list = expr[i+m[2]:i+m[3]], expr[i+m[4]:i+m[5]]
				} else if g := grouping.FindStringSubmatchIndex(expr[next:]); g != nil {
					kind, list = expr[next+g[2]:next+g[3]], expr[next+g[4]:next+g[5]]
					next += g[1]
				}
				in := s.labelsOf(arg, problem)
				for _, l := range labelList(list) {
					if !in[l] {
						problem("%s (%s) names %q, which %q does not have (it has %v)", kind, list, l, strings.TrimSpace(arg), slices.Sorted(maps.Keys(in)))
					}
				}
				switch kind {
				case "by":
					for _, l := range labelList(list) {
						out[l] = true
					}
				case "without":
					for l := range in {
						if !slices.Contains(labelList(list), l) {
							out[l] = true
						}
					}
				}
				i = next
				continue
			}
			if name == "histogram_quantile" {
				open := strings.IndexByte(expr[i:], '(')
				if open >= 0 {
					open += i
					end := closing(expr, open)
					arg := expr[open+1 : end]
					in := s.labelsOf(arg, problem)
					if strings.Contains(arg, "_bucket") && !in["le"] {
						problem("histogram_quantile over classic buckets without le: %q", strings.TrimSpace(arg))
					}
					delete(in, "le")
					maps.Copy(out, in)
					i = end + 1
					continue
				}
			}
			if ls, ok := s.metrics[baseName(name)]; ok {
				for _, l := range append(ls, targetLabels...) {
					out[l] = true
				}
				if strings.HasSuffix(name, "_bucket") {
					out["le"] = true
				}
			} else if ls, ok := s.recorded[name]; ok {
				for _, l := range ls {
					out[l] = true
				}
			}
			i += len(name)
		default:
			i++
		}
	}
	return out
}

func isNameByte(c byte) bool {
	return c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// closing returns the index of the parenthesis that closes the one at
// open, or the end of expr.
func closing(expr string, open int) int {
	depth := 0
	for i := open; i < len(expr); i++ {
		switch expr[i] {
		case '(':
			depth++
		case ')':
			if depth--; depth == 0 {
				return i
			}
		}
	}
	return len(expr)
}

// skipTo returns the index past the next c from i, or the end of expr.
func skipTo(expr string, i int, c byte) int {
	if j := strings.IndexByte(expr[i+1:], c); j >= 0 {
		return i + 1 + j + 1
	}
	return len(expr)
}

// labelList splits a grouping's "a, b ,c".
func labelList(list string) []string {
	var ls []string
	for l := range strings.SplitSeq(list, ",") {
		if l = strings.TrimSpace(l); l != "" {
			ls = append(ls, l)
		}
	}
	return ls
}

// maskStrings replaces every string literal's content with x's of the same
// length, so that positions in the masked text are those of the original.
func maskStrings(expr string) string {
	return promString.ReplaceAllStringFunc(expr, func(q string) string {
		return q[:1] + strings.Repeat("x", len(q)-2) + q[len(q)-1:]
	})
}

// checkExpr reports exprProblems as errors.
func checkExpr(t *testing.T, where, expr string, s *promSchema) {
	t.Helper()
	for _, p := range exprProblems(expr, s) {
		t.Errorf("%s: %s", where, p)
	}
}

// exprProblems returns every strangler_ metric in expr that the proxy does
// not export and every recorded name that rules.yml does not record; every
// label a selector, a grouping (by, without), a vector matching (on,
// ignoring, group_left/right) or label_values names that its series do not
// have; every matcher value the proxy never gives its label (route, flag
// and code excepted: the config and the traffic name those); and every
// histogram_quantile over classic buckets that does not keep le. It reads
// PromQL with regular expressions and parenthesis counting, not a parser
// (Prometheus's is too heavy a dependency): enough for the queries here.
func exprProblems(expr string, s *promSchema) []string {
	var problems []string
	problem := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	masked := maskStrings(expr)

	for _, m := range selector.FindAllStringSubmatchIndex(masked, -1) {
		name := masked[m[2]:m[3]]
		var labels []string
		if ls, ok := s.metrics[baseName(name)]; ok {
			labels = append(slices.Clone(ls), targetLabels...)
			if strings.HasSuffix(name, "_bucket") {
				labels = append(labels, "le")
			}
		} else if ls, ok := s.recorded[name]; ok {
			labels = ls
		} else {
			continue // unknown names are reported below
		}
		metric := baseName(name)
		if _, ok := s.metrics[metric]; !ok {
			metric = "" // recorded: a label's values on any metric
		}
		for _, l := range matcher.FindAllStringSubmatch(expr[m[4]:m[5]], -1) {
			label, op, value := l[1], l[2], l[3][1:len(l[3])-1]
			if !slices.Contains(labels, label) {
				problem("%s has no label %q (it has %v)", name, label, labels)
				continue
			}
			if slices.Contains(openLabels, label) || slices.Contains(targetLabels, label) || label == "le" || strings.Contains(value, "$") {
				continue
			}
			vals := []string{value}
			if op == "=~" || op == "!~" {
				if !alternatives.MatchString(value) {
					continue // a real regex: not checked
				}
				vals = strings.Split(value, "|")
			}
			known := s.knownValues(metric, label)
			if known == nil {
				problem("%s: no value of label %q is known to check %q against", name, label, value)
				continue
			}
			for _, v := range vals {
				if !slices.Contains(known, v) {
					problem("%s{%s%s%q}: the proxy never gives %s the value %q (it gives %v)", name, label, op, value, label, v, known)
				}
			}
		}
	}

	s.labelsOf(masked, problem)

	var all []string
	for _, name := range strangler.FindAllString(masked, -1) {
		if ls, ok := s.metrics[baseName(name)]; ok {
			all = append(all, ls...)
			all = append(all, targetLabels...)
			if strings.HasSuffix(name, "_bucket") {
				all = append(all, "le")
			}
		}
		all = append(all, s.recorded[name]...)
	}
	for _, m := range matching.FindAllStringSubmatch(masked, -1) {
		for _, l := range labelList(m[2]) {
			if !slices.Contains(all, l) {
				problem("%s (%s) names %q, which no series of the query has", m[1], m[2], l)
			}
		}
	}
	for _, m := range labelValuesQuery.FindAllStringSubmatch(masked, -1) {
		if ls, ok := s.metrics[baseName(m[1])]; ok && !slices.Contains(ls, m[2]) && !slices.Contains(targetLabels, m[2]) {
			problem("label_values: %s has no label %q (it has %v)", m[1], m[2], ls)
		}
	}

	n := 0
	for _, name := range strangler.FindAllString(masked, -1) {
		if !strings.Contains(name, "strangler_") {
			continue
		}
		n++
		if strings.Contains(name, ":") {
			if _, ok := s.recorded[name]; !ok {
				problem("%s is recorded by no rule in %s", name, rulesFile)
			}
			continue
		}
		if _, ok := s.metrics[baseName(name)]; !ok {
			problem("%s is not a metric the proxy exports", name)
		}
	}
	if n == 0 {
		problem("%q names no Strangler metric", expr)
	}
	return problems
}

// baseName strips the series suffixes of a classic histogram.
func baseName(name string) string {
	for _, s := range []string{"_bucket", "_sum", "_count"} {
		if b, ok := strings.CutSuffix(name, s); ok {
			return b
		}
	}
	return name
}

// TestRulesNameExportedMetrics checks every rule against the metrics that
// proxy.NewMetrics registers, and that each alert tells the SRE what it is
// about and what to do.
func TestRulesNameExportedMetrics(t *testing.T) {
	t.Parallel()
	rf := readRules(t)
	schema := newSchema(t, &rf)
	alerts := 0
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			name := r.Record + r.Alert
			checkExpr(t, rulesFile+": "+name, r.Expr, schema)
			if r.Alert == "" {
				continue
			}
			alerts++
			if r.Labels["severity"] == "" {
				t.Errorf("alert %s: no severity label", name)
			}
			for _, a := range []string{"summary", "description"} {
				if !strings.Contains(r.Annotations[a], "$labels.") {
					t.Errorf("alert %s: the %s names no label value (route, flag, instance)", name, a)
				}
			}
		}
	}
	if alerts == 0 {
		t.Errorf("%s has no alerts", rulesFile)
	}
}

// dashboard is the part of a Grafana dashboard the checks read; rows hold
// their own panels when collapsed.
type dashboard struct {
	UID           string  `json:"uid"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []struct {
			Name       string          `json:"name"`
			Type       string          `json:"type"`
			Query      json.RawMessage `json:"query"`
			Datasource *datasource     `json:"datasource"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID         int         `json:"id"`
	Type       string      `json:"type"`
	Title      string      `json:"title"`
	Repeat     string      `json:"repeat"`
	Datasource *datasource `json:"datasource"`
	Targets    []struct {
		Expr       string      `json:"expr"`
		Datasource *datasource `json:"datasource"`
	} `json:"targets"`
	Panels []panel `json:"panels"`
}

type datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

// TestDashboard parses the dashboard and checks every query against the
// metrics that proxy.NewMetrics registers and the names rules.yml records.
func TestDashboard(t *testing.T) {
	t.Parallel()
	schema := newSchema(t, nil)
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	if d.UID == "" || d.SchemaVersion < 39 {
		t.Errorf("uid %q, schemaVersion %d: want a fixed uid and schemaVersion 39 or later", d.UID, d.SchemaVersion)
	}

	// The datasource is a variable, so that the dashboard imports into any
	// Grafana; route is the template variable every panel filters on.
	vars := map[string]string{}
	for _, v := range d.Templating.List {
		var q struct {
			Query string `json:"query"`
		}
		var s string
		if err := json.Unmarshal(v.Query, &s); err != nil {
			if err := json.Unmarshal(v.Query, &q); err != nil {
				t.Fatalf("variable %s: query is neither a string nor {query}: %s", v.Name, v.Query)
			}
			s = q.Query
		}
		vars[v.Name] = s
		if v.Type == "query" {
			checkExpr(t, "variable "+v.Name, s, schema)
			checkDatasource(t, "variable "+v.Name, v.Datasource)
		}
	}
	if vars["datasource"] != "prometheus" {
		t.Errorf("no datasource variable of type prometheus (got %q)", vars["datasource"])
	}
	// namespace and job, then route within them: two deployments with a
	// route of the same name are never summed together.
	for name, want := range map[string]string{
		"namespace": "label_values(strangler_route_percent, namespace)",
		"job":       `label_values(strangler_route_percent{namespace=~"$namespace"}, job)`,
		"route":     `label_values(strangler_route_percent{namespace=~"$namespace",job=~"$job"}, route)`,
	} {
		if vars[name] != want {
			t.Errorf("%s variable query %q, want %q", name, vars[name], want)
		}
	}

	// A panel belongs to the row above it (or, in a collapsed row, to the
	// row's own panels); in a row repeated per route, every query must
	// filter on the route.
	ids := map[int]string{}
	exprs := 0
	var walk func(ps []panel, perRoute bool)
	walk = func(ps []panel, perRoute bool) {
		for _, p := range ps {
			if other, dup := ids[p.ID]; dup {
				t.Errorf("panels %q and %q share id %d", other, p.Title, p.ID)
			}
			ids[p.ID] = p.Title
			if p.Type == "row" {
				if p.Repeat != "" && p.Repeat != "route" {
					t.Errorf("row %q repeats over %q, want route", p.Title, p.Repeat)
				}
				perRoute = p.Repeat == "route"
				walk(p.Panels, perRoute)
				continue
			}
			checkDatasource(t, "panel "+p.Title, p.Datasource)
			if len(p.Targets) == 0 {
				t.Errorf("panel %q has no query", p.Title)
			}
			for _, q := range p.Targets {
				exprs++
				where := "panel " + p.Title
				checkDatasource(t, where, q.Datasource)
				checkExpr(t, where, q.Expr, schema)
				for _, sel := range selector.FindAllStringSubmatch(q.Expr, -1) {
					if perRoute && !strings.Contains(sel[2], `route=~"$route"`) {
						t.Errorf("%s: %s does not filter on the route variable", where, sel[0])
					}
					if !strings.Contains(sel[2], `namespace=~"$namespace",job=~"$job"`) {
						t.Errorf("%s: %s does not filter on the namespace and job variables", where, sel[0])
					}
				}
				if strings.Contains(q.Expr, "strangler_") && !selector.MatchString(q.Expr) {
					t.Errorf("%s: %q does not filter on the namespace and job variables", where, q.Expr)
				}
				if perRoute && !selector.MatchString(q.Expr) {
					t.Errorf("%s: %q does not filter on the route variable", where, q.Expr)
				}
				// A range over $__interval holds no two samples when Grafana's
				// step is under two scrapes (30 s apart), as it is on ranges
				// of a few hours: the panel is blank. $__rate_interval is
				// Grafana's answer.
				if strings.Contains(q.Expr, "[$__interval]") {
					t.Errorf("%s: %q ranges over $__interval; use $__rate_interval", where, q.Expr)
				}
			}
		}
	}
	walk(d.Panels, false)
	if exprs == 0 {
		t.Error("the dashboard has no queries")
	}
}

func checkDatasource(t *testing.T, where string, ds *datasource) {
	t.Helper()
	if ds == nil || ds.Type != "prometheus" || ds.UID != "${datasource}" {
		t.Errorf("%s: datasource %+v, want the ${datasource} variable", where, ds)
	}
}

// TestExprProblems tests the checker itself: each broken query must be
// rejected, each sound one accepted.
func TestExprProblems(t *testing.T) {
	t.Parallel()
	rf := readRules(t)
	s := newSchema(t, &rf)
	for _, c := range []struct {
		expr string
		want string // in a problem; "" for none
	}{
		// Broken: a grouping label the metric does not have.
		{`sum by (namespace, job, route, kind) (rate(strangler_requests_total[5m]))`, `"kind"`},
		{`sum (rate(strangler_requests_total[5m])) by (kind)`, `"kind"`},
		{`sum without (kind) (rate(strangler_requests_total[5m]))`, `"kind"`},
		{`sum by (route) (sum by (backend) (rate(strangler_requests_total[5m])))`, `"route"`},
		{`sum by (backend) (route:strangler_comparisons_compared:rate5m)`, `"backend"`},
		{`strangler_requests_total / on (kind) strangler_requests_total`, `"kind"`},
		{`label_values(strangler_route_percent, backend)`, `"backend"`},
		// Broken: a value the proxy never gives the label.
		{`sum by (route) (rate(strangler_shadow_skipped_total{reason="overloaded"}[5m])) > 0`, `"overloaded"`},
		{`rate(strangler_fallbacks_total{reason="overload"}[5m])`, `"overload"`},
		{`rate(strangler_comparisons_total{result=~"match|mismatched"}[5m])`, `"mismatched"`},
		{`rate(strangler_requests_total{backend!="services"}[5m])`, `"services"`},
		{`route_result:strangler_comparisons:rate5m{result="errors"}`, `"errors"`},
		// Broken: a histogram_quantile over buckets without le.
		{`histogram_quantile(0.99, sum by (route) (rate(strangler_request_duration_seconds_bucket[5m])))`, `without le`},
		{`histogram_quantile(0.99, sum without (le) (rate(strangler_request_duration_seconds_bucket[5m])))`, `without le`},
		// Broken as before: an unknown metric, a selector's unknown label.
		{`rate(strangler_request_total[5m])`, `not a metric`},
		{`rate(strangler_requests_total{kind="reset"}[5m])`, `no label "kind"`},
		{`route:strangler_nothing:rate5m`, `recorded by no rule`},

		// Sound.
		{`sum by (namespace, job, route, backend) (rate(strangler_requests_total{code=~"5.."}[5m]))`, ""},
		{`sum (rate(strangler_requests_total[5m])) by (backend)`, ""},
		{`histogram_quantile(0.99, sum by (route, le) (rate(strangler_request_duration_seconds_bucket[5m])))`, ""},
		{`histogram_quantile(0.99, sum by (route) (rate(strangler_request_duration_seconds[5m])))`, ""},
		{`sum by (route) (rate(strangler_shadow_skipped_total{reason="overload"}[5m]))`, ""},
		{`rate(strangler_fallbacks_total{reason="5xx"}[5m])`, ""},
		{`rate(strangler_requests_total{backend="proxy",route=~"$route"}[5m])`, ""},
		{`rate(strangler_mismatches_total{kind="body"}[5m]) + on (route) group_left rate(strangler_upstream_errors_total{kind="canceled",role!="x"}[5m])`, `no label "role"`},
		{`max by (namespace, job, route) (max_over_time(strangler_service_ejected[2m])) == 1`, ""},
		{`route_backend_role:strangler_request_duration_seconds:quantile_rate5m{quantile="0.99",role="shadow"}`, ""},
	} {
		problems := exprProblems(c.expr, s)
		switch {
		case c.want == "" && len(problems) > 0:
			t.Errorf("%s: sound, but rejected: %q", c.expr, problems)
		case c.want != "" && !slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, c.want) }):
			t.Errorf("%s: broken, but no problem mentions %s: %q", c.expr, c.want, problems)
		}
	}
}
