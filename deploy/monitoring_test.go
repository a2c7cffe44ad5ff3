package deploy

import (
	"encoding/json"
	"os"
	"os/exec"
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
	// A PromQL string literal: dropped before looking for names, so that a
	// label value never passes for a metric.
	promString = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'`)
	// A metric or recorded name that mentions strangler_; recorded names
	// (level:metric:operations) contain colons.
	strangler = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)
	// A selector: a name and its label matchers.
	selector = regexp.MustCompile(`([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{([^}]*)\}`)
	matcher  = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)`)
)

// targetLabels are the labels Prometheus adds to every scraped series (the
// Prometheus Operator adds namespace).
var targetLabels = []string{"job", "instance", "namespace"}

// checkExpr reports every strangler_ metric in expr that the proxy does not
// export, every recorded name that rules.yml does not record, and every
// label matcher on a proxy metric that names a label it does not have.
func checkExpr(t *testing.T, where, expr string, exported map[string][]string, recorded map[string]bool) {
	t.Helper()
	for _, m := range selector.FindAllStringSubmatch(expr, -1) {
		labels, ok := exported[baseName(m[1])]
		if !ok {
			continue // unknown names are reported below
		}
		for _, l := range matcher.FindAllStringSubmatch(promString.ReplaceAllString(m[2], `""`), -1) {
			if !slices.Contains(labels, l[1]) && !slices.Contains(targetLabels, l[1]) {
				t.Errorf("%s: %s has no label %q (it has %v)", where, m[1], l[1], labels)
			}
		}
	}
	n := 0
	for _, name := range strangler.FindAllString(promString.ReplaceAllString(expr, `""`), -1) {
		if !strings.Contains(name, "strangler_") {
			continue
		}
		n++
		if strings.Contains(name, ":") {
			if !recorded[name] {
				t.Errorf("%s: %s is recorded by no rule in %s", where, name, rulesFile)
			}
			continue
		}
		if _, ok := exported[baseName(name)]; !ok {
			t.Errorf("%s: %s is not a metric the proxy exports", where, name)
		}
	}
	if n == 0 {
		t.Errorf("%s: %q names no Strangler metric", where, expr)
	}
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
	exported := exportedMetrics(t)
	rf := readRules(t)
	recorded := map[string]bool{}
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			if r.Record != "" {
				recorded[r.Record] = true
			}
		}
	}
	alerts := 0
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			name := r.Record + r.Alert
			checkExpr(t, rulesFile+": "+name, r.Expr, exported, recorded)
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
	exported := exportedMetrics(t)
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
			checkExpr(t, "variable "+v.Name, s, exported, nil)
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
				checkExpr(t, where, q.Expr, exported, nil)
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
