package systemd

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"materializer/internal/e2etest"
	"materializer/internal/natstest"
)

// dataLabels have values from the data or the deployment, not from the
// code: their values are not checked.
var dataLabels = map[string]bool{"job": true, "instance": true, "event_type": true, "subscription_event_type": true,
	"partition": true, "version": true, "goversion": true}

// prometheusOwn are series Prometheus makes itself: up per scrape target,
// ALERTS per alert.
var prometheusOwn = map[string][]string{"up": {}, "ALERTS": nil}

// exported is what the daemon exports: metric names with their label
// names (nil: labels unknown, not checked), and every string literal of
// the code (label values must be among them).
type exported struct {
	labels   map[string][]string
	literals map[string]bool
}

var (
	exportedOnce sync.Once
	exportedSet  exported
)

// exportedMetrics runs the real pipeline in process (Nakadi emulator, NATS,
// file storage) on a registry that records the description of every
// collector the pipeline registers — also the vectors no series has used
// yet — and adds the Go and process collectors the daemon registers and the
// metric names the daemon's own code spells out (readiness, admin requests,
// build info).
func exportedMetrics(t *testing.T) exported {
	t.Helper()
	exportedOnce.Do(func() {
		exportedSet = exported{labels: map[string][]string{}, literals: map[string]bool{}}
		rec := &descRecorder{Registerer: prometheus.NewRegistry(), labels: exportedSet.labels}
		rec.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		dir := t.TempDir()
		nk := e2etest.ArticleEmulator(t, 2)
		_, cfg := e2etest.Config(t, e2etest.Setup{Dir: dir, NakadiURL: nk.URL(), NATSURL: natstest.Start(t).URL()})
		_, stop := e2etest.StartPipeline(t, cfg, rec)
		stop()
		scanLiterals(t, "..", exportedSet)
	})
	if len(exportedSet.labels) < 30 {
		t.Fatalf("only %d metrics recorded: %v", len(exportedSet.labels), exportedSet.labels)
	}
	return exportedSet
}

// descRecorder is a Registerer that records the name and labels of each
// collector's metrics.
type descRecorder struct {
	prometheus.Registerer
	mu     sync.Mutex
	labels map[string][]string
}

var descRE = regexp.MustCompile(`fqName: "([^"]+)".*constLabels: \{([^}]*)\}, variableLabels: \{([^}]*)\}`)

func (r *descRecorder) Register(c prometheus.Collector) error {
	if err := r.Registerer.Register(c); err != nil {
		return err
	}
	ch := make(chan *prometheus.Desc)
	go func() { c.Describe(ch); close(ch) }()
	r.mu.Lock()
	defer r.mu.Unlock()
	for d := range ch {
		m := descRE.FindStringSubmatch(d.String())
		if m == nil {
			continue
		}
		labels := []string{} // known, maybe none
		for _, kv := range strings.Split(m[2], ",") {
			if k, _, ok := strings.Cut(kv, "="); ok {
				labels = append(labels, k)
			}
		}
		for _, l := range strings.Split(m[3], ",") {
			if l = strings.TrimSuffix(strings.TrimPrefix(l, "c("), ")"); l != "" {
				labels = append(labels, l)
			}
		}
		r.labels[m[1]] = labels
	}
	return nil
}

func (r *descRecorder) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			panic(err)
		}
	}
}

// scanLiterals adds every string literal of the repository's non-test Go
// code; the ones that look like our metric names become metrics with
// unknown labels unless the pipeline registered them.
func scanLiterals(t *testing.T, root string, e exported) {
	metricName := regexp.MustCompile(`^materializer_[a-z0-9_]*[a-z0-9]$`)
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != root && strings.HasPrefix(d.Name(), ".") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			if lit, ok := n.(*ast.BasicLit); ok && lit.Kind == token.STRING {
				if s, err := strconv.Unquote(lit.Value); err == nil {
					e.literals[s] = true
					if _, known := e.labels[s]; metricName.MatchString(s) && !known {
						e.labels[s] = nil
					}
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A selector of a PromQL expression: a metric name and its matchers.
var (
	groupingRE = regexp.MustCompile(`\b(?:by|on|without|ignoring|group_left|group_right)\s*\(([^)]*)\)`)
	rangeRE    = regexp.MustCompile(`\[[^\]]*\]`)
	selectorRE = regexp.MustCompile(`\b([A-Za-z_:][A-Za-z0-9_:]*)\s*(\{[^}]*\})?(\s*\()?`)
	matcherRE  = regexp.MustCompile(`(\w+)\s*(=~|!~|!=|=)\s*"([^"]*)"`)
	keywords   = map[string]bool{"and": true, "or": true, "unless": true, "bool": true, "offset": true}
)

type selector struct {
	name     string
	matchers [][3]string // label, op, value
}

// parseExpr returns the selectors and grouping labels of expr.
func parseExpr(expr string) (sels []selector, grouping []string) {
	for _, m := range groupingRE.FindAllStringSubmatch(expr, -1) {
		for _, l := range strings.Split(m[1], ",") {
			if l = strings.TrimSpace(l); l != "" {
				grouping = append(grouping, l)
			}
		}
	}
	rest := rangeRE.ReplaceAllString(groupingRE.ReplaceAllString(expr, " "), " ")
	for _, m := range selectorRE.FindAllStringSubmatch(rest, -1) {
		if m[3] != "" || keywords[m[1]] { // a function call, or an operator
			continue
		}
		s := selector{name: m[1]}
		for _, mm := range matcherRE.FindAllStringSubmatch(m[2], -1) {
			s.matchers = append(s.matchers, [3]string{mm[1], mm[2], mm[3]})
		}
		sels = append(sels, s)
	}
	return sels, grouping
}

// labelsOf returns a metric's labels (with the scrape's job and instance)
// and whether the metric exists; nil labels: not known.
func (e exported) labelsOf(name string) ([]string, bool) {
	if l, ok := prometheusOwn[name]; ok {
		return appendScrape(l), true
	}
	if l, ok := e.labels[name]; ok {
		return appendScrape(l), true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if l, ok := e.labels[strings.TrimSuffix(name, suffix)]; ok && strings.HasSuffix(name, suffix) {
			if suffix == "_bucket" && l != nil {
				l = append(slices.Clone(l), "le")
			}
			return appendScrape(l), true
		}
	}
	return nil, false
}

func appendScrape(l []string) []string {
	if l == nil {
		return nil
	}
	return append(slices.Clone(l), "job", "instance")
}

// check returns what is wrong with expr: metrics the daemon does not
// export, labels those metrics do not have, label values the code never
// spells, grouping labels no selector of the expression has; labels are
// the labels of its selectors (nil when one is not known).
func (e exported) check(expr string) (problems, labels []string) {
	sels, grouping := parseExpr(expr)
	if len(sels) == 0 {
		problems = append(problems, "no metric")
	}
	labels = []string{"le"}
	complete := true
	for _, s := range sels {
		own, ok := e.labelsOf(s.name)
		if !ok {
			problems = append(problems, "metric "+s.name+" is not exported by the daemon")
		}
		complete = complete && own != nil
		labels = append(labels, own...)
		for _, m := range s.matchers {
			if own != nil && !slices.Contains(own, m[0]) {
				problems = append(problems, fmt.Sprintf("%s has no label %q (it has %v)", s.name, m[0], own))
			}
			if _, prom := prometheusOwn[s.name]; !prom && m[1] == "=" && !dataLabels[m[0]] &&
				!strings.Contains(m[2], "$") && !e.literals[m[2]] {
				problems = append(problems, fmt.Sprintf("%s{%s=%q}: the code never uses the value %q", s.name, m[0], m[2], m[2]))
			}
		}
	}
	if !complete {
		return problems, nil
	}
	for _, g := range grouping {
		if !slices.Contains(labels, g) {
			problems = append(problems, fmt.Sprintf("groups by %q, which none of its metrics has", g))
		}
	}
	return problems, labels
}

// checkExpr reports the problems of expr as errors.
func checkExpr(t *testing.T, e exported, where, expr string) []string {
	t.Helper()
	problems, labels := e.check(expr)
	for _, p := range problems {
		t.Errorf("%s: %s", where, p)
	}
	return labels
}

// TestMonitoringUsesExportedMetrics: every metric, label and label value
// of the alert rules, their unit tests' input series and the dashboard is
// one the daemon exports (the unit tests would pass on series the daemon
// never produces); every label an alert's text names is there too.
func TestMonitoringUsesExportedMetrics(t *testing.T) {
	e := exportedMetrics(t)
	labelRef := regexp.MustCompile(`\$labels\.(\w+)`)
	for _, r := range alertRules(t) {
		labels := checkExpr(t, e, r.Alert, r.Expr)
		for _, text := range r.Annotations {
			for _, m := range labelRef.FindAllStringSubmatch(text, -1) {
				if labels != nil && !slices.Contains(labels, m[1]) {
					t.Errorf("%s: its text names $labels.%s, which its expression does not have", r.Alert, m[1])
				}
			}
		}
	}
	var tests alertTests
	readYAML(t, alertTestsFile, &tests)
	for _, tc := range tests.Tests {
		for _, s := range tc.InputSeries {
			checkExpr(t, e, "alerts_test.yml "+tc.Name, s.Series)
		}
	}
	for name, expr := range dashboardExprs(t) {
		checkExpr(t, e, "dashboard "+name, expr)
	}
}

// TestMetricCheckCatchesMistakes shows the check above fails on a metric
// that does not exist, a label a metric lacks, a value the code never
// spells and a grouping label no metric has.
func TestMetricCheckCatchesMistakes(t *testing.T) {
	e := exportedMetrics(t)
	for _, expr := range []string{
		`rate(materializer_events_totl[5m])`,
		`materializer_backpressure{event_type="a"}`,
		`materializer_delivery_failures_total{step="uploads"}`,
		`sum by (partition) (materializer_staged_bytes)`,
	} {
		if problems, _ := e.check(expr); len(problems) != 1 {
			t.Errorf("%s: problems %q, want one", expr, problems)
		}
	}
	if problems, _ := e.check(`sum by (instance, outcome) (rate(materializer_events_total{outcome="main"}[5m]))`); len(problems) != 0 {
		t.Errorf("a good expression: %q", problems)
	}
}
