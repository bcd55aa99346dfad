package systemd

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// The fleet operations kit in monitoring/: Prometheus alerting rules with
// their unit tests, and a Grafana dashboard. promtool checks and tests the
// rules; the tests here check what promtool cannot: every alert is tested,
// documented and linked to its runbook, the dashboard imports, and every
// metric and label they use is one the daemon exports
// (monitoring_metrics_test.go).

const (
	alertsFile     = "monitoring/alerts.yml"
	alertTestsFile = "monitoring/alerts_test.yml"
	dashboardFile  = "monitoring/dashboard.json"
	runbook        = "../docs/operations.md"
)

// promtool finds the pinned promtool: $PROMTOOL if set (the Makefile
// exports it), else <repo>/.cache/bin/promtool. Without it the test is
// skipped, or fails when CI=true.
func promtool(t *testing.T) string {
	t.Helper()
	p := os.Getenv("PROMTOOL")
	if p == "" {
		p = filepath.Join("..", ".cache", "bin", "promtool")
	}
	if _, err := os.Stat(p); err != nil {
		msg := "promtool not found ($PROMTOOL or <repo>/.cache/bin/promtool): run `make tools`; the alert rules are not checked"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip("SKIPPED — " + msg)
	}
	return p
}

// runPromtool runs promtool in dir and returns its output and error.
func runPromtool(t *testing.T, dir string, args ...string) (string, error) {
	t.Helper()
	tool, err := filepath.Abs(promtool(t))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cmd := exec.Command(tool, args...)
	cmd.Dir, cmd.Stdout, cmd.Stderr = dir, &out, &out
	err = cmd.Run()
	return out.String(), err
}

func TestAlertRulesCheck(t *testing.T) {
	if out, err := runPromtool(t, "monitoring", "check", "rules", "alerts.yml"); err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
}

func TestAlertRulesUnitTests(t *testing.T) {
	if out, err := runPromtool(t, "monitoring", "test", "rules", "alerts_test.yml"); err != nil {
		t.Fatalf("promtool test rules: %v\n%s", err, out)
	}
}

// TestAlertRulesUnitTestsCanFail: an alert whose threshold changed fails
// its unit test, naming it.
func TestAlertRulesUnitTestsCanFail(t *testing.T) {
	dir := t.TempDir()
	rules, err := os.ReadFile(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	broken := strings.Replace(string(rules), "materializer_nakadi_consumer_lag_seconds) > 900", "materializer_nakadi_consumer_lag_seconds) > 9000", 1)
	if broken == string(rules) {
		t.Fatal("the threshold to break is not in alerts.yml")
	}
	tests, err := os.ReadFile(alertTestsFile)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "alerts.yml"), []byte(broken), 0o644)
	os.WriteFile(filepath.Join(dir, "alerts_test.yml"), tests, 0o644)
	out, err := runPromtool(t, dir, "test", "rules", "alerts_test.yml")
	if err == nil || !strings.Contains(out, "alertname: MaterializerConsumerLagHigh") {
		t.Fatalf("promtool test rules passed a broken rule: %v\n%s", err, out)
	}
}

type alertRule struct {
	Alert       string            `yaml:"alert"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

func alertRules(t *testing.T) []alertRule {
	t.Helper()
	var f struct {
		Groups []struct {
			Rules []alertRule `yaml:"rules"`
		} `yaml:"groups"`
	}
	readYAML(t, alertsFile, &f)
	var out []alertRule
	for _, g := range f.Groups {
		out = append(out, g.Rules...)
	}
	if len(out) == 0 {
		t.Fatal("no alert rules")
	}
	return out
}

type alertTests struct {
	Tests []struct {
		Name        string `yaml:"name"`
		InputSeries []struct {
			Series string `yaml:"series"`
		} `yaml:"input_series"`
		AlertRuleTest []struct {
			Alertname string `yaml:"alertname"`
			ExpAlerts []any  `yaml:"exp_alerts"`
		} `yaml:"alert_rule_test"`
	} `yaml:"tests"`
}

func readYAML(t *testing.T, name string, v any) {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

// TestEveryAlertTestedAndDocumented: each alert has a severity, a summary,
// a description and a runbook link to its own heading in
// docs/operations.md, and a unit test where it fires and one where it
// stays quiet.
func TestEveryAlertTestedAndDocumented(t *testing.T) {
	doc, err := os.ReadFile(runbook)
	if err != nil {
		t.Fatal(err)
	}
	anchors := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^#+ (.+)$`).FindAllStringSubmatch(string(doc), -1) {
		anchors[githubAnchor(m[1])] = true
	}
	var tests alertTests
	readYAML(t, alertTestsFile, &tests)
	fires, quiet := map[string]bool{}, map[string]bool{}
	for _, tc := range tests.Tests {
		for _, a := range tc.AlertRuleTest {
			fires[a.Alertname] = fires[a.Alertname] || len(a.ExpAlerts) > 0
			quiet[a.Alertname] = quiet[a.Alertname] || len(a.ExpAlerts) == 0
		}
	}
	seen := map[string]bool{}
	for _, r := range alertRules(t) {
		if seen[r.Alert] {
			t.Errorf("alert %s defined twice", r.Alert)
		}
		seen[r.Alert] = true
		if s := r.Labels["severity"]; s != "critical" && s != "warning" {
			t.Errorf("%s: severity %q, want critical or warning", r.Alert, s)
		}
		if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
			t.Errorf("%s: needs a summary and a description", r.Alert)
		}
		want := "docs/operations.md#" + strings.ToLower(r.Alert)
		if got := r.Annotations["runbook_url"]; got != want {
			t.Errorf("%s: runbook_url %q, want %q", r.Alert, got, want)
		}
		if !anchors[strings.ToLower(r.Alert)] {
			t.Errorf("%s: no heading %q in docs/operations.md", r.Alert, r.Alert)
		}
		if !fires[r.Alert] || !quiet[r.Alert] {
			t.Errorf("%s: alerts_test.yml must have a case where it fires (%v) and one where it stays quiet (%v)", r.Alert, fires[r.Alert], quiet[r.Alert])
		}
	}
	for name := range fires {
		if !seen[name] {
			t.Errorf("alerts_test.yml tests %s, which alerts.yml does not define", name)
		}
	}
}

// githubAnchor is the anchor GitHub gives a heading.
func githubAnchor(heading string) string {
	s := strings.ToLower(strings.TrimSpace(heading))
	s = regexp.MustCompile(`[^a-z0-9 _-]`).ReplaceAllString(s, "")
	return strings.ReplaceAll(s, " ", "-")
}

type dashboard struct {
	Title      string `json:"title"`
	UID        string `json:"uid"`
	Templating struct {
		List []struct {
			Name       string `json:"name"`
			Type       string `json:"type"`
			Query      any    `json:"query"`
			Datasource *struct {
				UID string `json:"uid"`
			} `json:"datasource"`
		} `json:"list"`
	} `json:"templating"`
	Panels []panel `json:"panels"`
}

type panel struct {
	ID         int    `json:"id"`
	Type       string `json:"type"`
	Title      string `json:"title"`
	Datasource *struct {
		Type string `json:"type"`
		UID  string `json:"uid"`
	} `json:"datasource"`
	GridPos *struct{ H, W, X, Y int } `json:"gridPos"`
	Targets []struct {
		Expr  string `json:"expr"`
		RefID string `json:"refId"`
	} `json:"targets"`
	Panels []panel `json:"panels"`
}

func readDashboard(t *testing.T) dashboard {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("%s does not parse: %v", dashboardFile, err)
	}
	return d
}

// TestDashboardImports: the dashboard is one JSON object Grafana imports:
// a title and uid, a Prometheus data source variable every panel and query
// uses, the job, instance and event_type variables, unique panel ids, every
// panel placed, every query with an expression.
func TestDashboardImports(t *testing.T) {
	d := readDashboard(t)
	if d.Title == "" || d.UID == "" {
		t.Fatalf("title %q uid %q", d.Title, d.UID)
	}
	vars := map[string]string{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v.Type
		if v.Type == "query" && (v.Datasource == nil || v.Datasource.UID != "${datasource}") {
			t.Errorf("variable %s does not query the data source variable", v.Name)
		}
	}
	if vars["datasource"] != "datasource" {
		t.Fatalf("no datasource variable: %v", vars)
	}
	for _, v := range []string{"job", "instance", "event_type"} {
		if vars[v] != "query" {
			t.Errorf("no %s variable", v)
		}
	}
	ids := map[int]bool{}
	queries := 0
	for _, p := range flatPanels(d.Panels) {
		if ids[p.ID] || p.ID == 0 {
			t.Errorf("panel %q: id %d missing or used twice", p.Title, p.ID)
		}
		ids[p.ID] = true
		if p.GridPos == nil || p.GridPos.W == 0 || p.GridPos.H == 0 || p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("panel %q: gridPos %+v", p.Title, p.GridPos)
		}
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || p.Datasource.Type != "prometheus" || p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q does not use the data source variable", p.Title)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, q := range p.Targets {
			queries++
			if strings.TrimSpace(q.Expr) == "" || q.RefID == "" {
				t.Errorf("panel %q: a query without expr or refId", p.Title)
			}
		}
	}
	if queries < 20 {
		t.Errorf("only %d queries", queries)
	}
}

func flatPanels(ps []panel) []panel {
	var out []panel
	for _, p := range ps {
		out = append(out, p)
		out = append(out, flatPanels(p.Panels)...)
	}
	return out
}

// dashboardExprs are the dashboard's queries with Grafana's variables
// replaced, so they are PromQL.
func dashboardExprs(t *testing.T) map[string]string {
	t.Helper()
	r := strings.NewReplacer("$__rate_interval", "5m", "${datasource}", "x", "$job", "materializer", "$instance", ".*", "$event_type", ".*")
	out := map[string]string{}
	for _, p := range flatPanels(readDashboard(t).Panels) {
		for _, q := range p.Targets {
			out[p.Title+"/"+q.RefID] = r.Replace(q.Expr)
		}
	}
	return out
}

// TestDashboardQueriesParse: every dashboard query is valid PromQL
// (promtool checks them as recording rules).
func TestDashboardQueriesParse(t *testing.T) {
	var b strings.Builder
	b.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	for name, expr := range dashboardExprs(t) {
		e, _ := json.Marshal(expr)
		n, _ := json.Marshal(name)
		b.WriteString("      # " + string(n) + "\n      - record: dashboard:query\n        expr: " + string(e) + "\n")
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "dashboard_rules.yml"), []byte(b.String()), 0o644)
	if out, err := runPromtool(t, dir, "check", "rules", "--lint=none", "dashboard_rules.yml"); err != nil {
		t.Fatalf("dashboard queries: %v\n%s", err, out)
	}
}
