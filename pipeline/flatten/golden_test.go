package flatten

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

var update = flag.Bool("update", false, "rewrite the expected outputs of testdata/*.txt")

// TestGolden runs the datadriven files testdata/*.txt. A case is
//
//	# comment naming the rule
//	command arg=value ...
//	input lines
//	----
//	expected output
//	<blank line>
//
// (an output holding blank lines sits between "----\n----" pairs). Commands:
//
//	mapping [delimiter=X] [null=X] [header=false] [max_rows=N] [max_bytes=N] [max_field=N] [max_event=N]
//	                                TOML [[tables]] → "ok" or the Problems; max_* set the Limits
//	flatten [table=NAME] [long=N]   NDJSON → per table "== name", the CSV, then "== rejected" lines
//	files [table=NAME] [long=N]     like flatten; the input lines name JSON files under testdata/
//	rejected [delimiter=X] [null=X] [max_raw=N] Go-quoted partition, offset, reason, raw per line → CSV
//	ddl dialect=D event_type=E      the DDL of the current mapping
//
// An event line "q:<Go-quoted string>" is unquoted (for invalid UTF-8).
// Event lines may hold <<N*TEXT>>, expanded to TEXT N times; long=N
// abbreviates output lines longer than N bytes; rows=N keeps only the first
// and last N lines of each table's output. Run with -update to rewrite.
func TestGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) { runGoldenFile(t, file) })
	}
}

type goldenCase struct {
	comment []string
	cmd     string
	args    map[string]string
	input   []string
	want    string
	line    int
}

func runGoldenFile(t *testing.T, file string) {
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	cases := parseGolden(t, file, string(data))
	g := &goldenRun{t: t}
	changed := false
	for i := range cases {
		c := &cases[i]
		got := g.run(c)
		if got != c.want {
			if *update {
				c.want, changed = got, true
				continue
			}
			t.Errorf("%s:%d: %s %v\n--- got:\n%s\n--- want:\n%s", file, c.line, c.cmd, c.args, got, c.want)
		}
	}
	if changed {
		if err := os.WriteFile(file, []byte(formatGolden(cases)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func parseGolden(t *testing.T, file, data string) []goldenCase {
	lines := strings.Split(data, "\n")
	var cases []goldenCase
	var comment []string
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		switch {
		case strings.HasPrefix(l, "#"):
			comment = append(comment, l)
			continue
		case strings.TrimSpace(l) == "":
			continue
		}
		c := goldenCase{comment: comment, line: i + 1, args: map[string]string{}}
		comment = nil
		fields := strings.Fields(l)
		c.cmd = fields[0]
		for _, f := range fields[1:] {
			k, v, _ := strings.Cut(f, "=")
			c.args[k] = v
		}
		for i++; i < len(lines) && lines[i] != "----"; i++ {
			c.input = append(c.input, lines[i])
		}
		if i >= len(lines) {
			t.Fatalf("%s:%d: no ---- separator", file, c.line)
		}
		i++
		var out []string
		if i < len(lines) && lines[i] == "----" { // output with blank lines
			for i++; i < len(lines) && !(lines[i] == "----" && i+1 < len(lines) && lines[i+1] == "----"); i++ {
				out = append(out, lines[i])
			}
			i++
		} else {
			for ; i < len(lines) && lines[i] != ""; i++ {
				out = append(out, lines[i])
			}
		}
		c.want = strings.Join(out, "\n")
		cases = append(cases, c)
	}
	return cases
}

func formatGolden(cases []goldenCase) string {
	var b strings.Builder
	for i, c := range cases {
		if i > 0 {
			b.WriteString("\n")
		}
		for _, l := range c.comment {
			b.WriteString(l + "\n")
		}
		b.WriteString(c.cmd)
		for _, k := range sortedKeys(c.args) {
			fmt.Fprintf(&b, " %s=%s", k, c.args[k])
		}
		b.WriteString("\n")
		for _, l := range c.input {
			b.WriteString(l + "\n")
		}
		if strings.Contains(c.want, "\n\n") || strings.HasSuffix(c.want, "\n") || strings.HasPrefix(c.want, "\n") {
			b.WriteString("----\n----\n" + c.want + "\n----\n----\n")
		} else {
			b.WriteString("----\n" + c.want + "\n")
		}
	}
	return b.String()
}

func sortedKeys(m map[string]string) []string {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	for i := range keys {
		for j := i + 1; j < len(keys); j++ {
			if keys[j] < keys[i] {
				keys[i], keys[j] = keys[j], keys[i]
			}
		}
	}
	return keys
}

// goldenRun holds the current mapping of a file.
type goldenRun struct {
	t      *testing.T
	specs  []TableSpec
	csvOpt CSV
	m      *Mapping
}

func (g *goldenRun) run(c *goldenCase) string {
	switch c.cmd {
	case "mapping":
		return g.mapping(c)
	case "flatten":
		return g.flatten(c, expandEvents(c.input))
	case "files":
		return g.flatten(c, g.readFiles(c.input))
	case "rejected":
		return g.rejected(c)
	case "ddl":
		out, err := DDL(c.args["dialect"], c.args["event_type"], g.specs)
		if err != nil {
			return "error: " + err.Error()
		}
		return strings.TrimSuffix(out, "\n")
	}
	g.t.Fatalf("line %d: unknown command %q", c.line, c.cmd)
	return ""
}

func csvArgs(t *testing.T, args map[string]string) CSV {
	o := CSV{Header: args["header"] != "false", Null: unquoteArg(t, args["null"])}
	if d := unquoteArg(t, args["delimiter"]); d != "" {
		o.Delimiter = d[0]
	}
	return o
}

// unquoteArg reads an argument, Go-quoted when it starts with '"'.
func unquoteArg(t *testing.T, s string) string {
	if !strings.HasPrefix(s, `"`) {
		return s
	}
	u, err := strconv.Unquote(s)
	if err != nil {
		t.Fatalf("argument %s: %v", s, err)
	}
	return u
}

func (g *goldenRun) mapping(c *goldenCase) string {
	var doc struct {
		Tables []struct {
			Name    string
			Columns []struct {
				Name, Path, Type, Source string
				Required                 bool
			}
		}
	}
	md, err := toml.Decode(strings.Join(c.input, "\n"), &doc)
	if err != nil || len(md.Undecoded()) > 0 {
		g.t.Fatalf("line %d: mapping TOML: %v %v", c.line, err, md.Undecoded())
	}
	g.specs = nil
	for _, tt := range doc.Tables {
		ts := TableSpec{Name: tt.Name}
		for _, cc := range tt.Columns {
			ts.Columns = append(ts.Columns, ColumnSpec{Name: cc.Name, Path: cc.Path, Type: Type(cc.Type),
				Source: Source(cc.Source), Required: cc.Required})
		}
		g.specs = append(g.specs, ts)
	}
	g.csvOpt = csvArgs(g.t, c.args)
	g.m, err = Compile(g.specs, g.csvOpt)
	if err != nil {
		return strings.Join(strings.Split(err.Error(), "; "), "\n")
	}
	num := func(k string) int { n, _ := strconv.Atoi(c.args[k]); return n }
	g.m = g.m.WithLimits(Limits{Rows: num("max_rows"), OutputBytes: num("max_bytes"), FieldBytes: num("max_field"), EventBytes: num("max_event")})
	return "ok"
}

// expandEvents expands event lines into NDJSON.
func expandEvents(lines []string) []byte {
	var b bytes.Buffer
	for _, l := range lines {
		b.WriteString(expandLine(l) + "\n")
	}
	return b.Bytes()
}

// expandLine unquotes a "q:" line and expands <<N*TEXT>>.
func expandLine(l string) string {
	{
		if q, ok := strings.CutPrefix(l, "q:"); ok {
			u, err := strconv.Unquote(q)
			if err != nil {
				panic(fmt.Sprintf("q: line %s: %v", l, err))
			}
			l = u
		}
		for {
			i := strings.Index(l, "<<")
			if i < 0 {
				break
			}
			j := strings.Index(l[i:], ">>") + i
			count, text, _ := strings.Cut(l[i+2:j], "*")
			n, err := strconv.Atoi(count)
			if err != nil || j < i {
				panic("bad repeat macro in " + l)
			}
			l = l[:i] + strings.Repeat(text, n) + l[j+2:]
		}
	}
	return l
}

// readFiles compacts the JSON files named (relative to testdata/) into
// NDJSON lines.
func (g *goldenRun) readFiles(names []string) []byte {
	var b bytes.Buffer
	for _, name := range names {
		data, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			g.t.Fatal(err)
		}
		if err := json.Compact(&b, data); err != nil {
			g.t.Fatalf("%s: %v", name, err)
		}
		b.WriteString("\n")
	}
	return b.Bytes()
}

func (g *goldenRun) flatten(c *goldenCase, events []byte) string {
	if g.m == nil {
		g.t.Fatalf("line %d: flatten before a valid mapping", c.line)
	}
	tables := g.m.Tables()
	var out strings.Builder
	var stderr bytes.Buffer
	for ti, info := range tables {
		if name, ok := c.args["table"]; ok && name != info.Name {
			continue
		}
		var stdout bytes.Buffer
		stderr.Reset()
		lin := func(line int) Lineage {
			return Lineage{EventType: "test.event", Partition: "0", Offset: strconv.Itoa(line)}
		}
		rejected, err := WriteNDJSON(bytes.NewReader(events), &stdout, &stderr, g.m, ti, lin)
		if err != nil {
			g.t.Fatal(err)
		}
		if n := strings.Count(stderr.String(), "\n"); n != rejected {
			g.t.Errorf("line %d: %d rejected, %d messages", c.line, rejected, n)
		}
		g.checkCSV(c, ti, stdout.Bytes())
		g.checkValidate(c, events)
		if len(tables) > 1 && c.args["table"] == "" {
			out.WriteString("== " + info.Name + "\n")
		}
		out.WriteString(abbreviate(elide(stdout.String(), c.args["rows"]), c.args["long"]))
	}
	if stderr.Len() > 0 {
		out.WriteString("== rejected\n" + stderr.String())
	}
	return strings.TrimSuffix(out.String(), "\n")
}

// checkCSV reads the output back with encoding/csv: every record has one
// field per column.
func (g *goldenRun) checkCSV(c *goldenCase, ti int, out []byte) {
	r := csv.NewReader(bytes.NewReader(out))
	r.Comma = rune(g.m.csv.delim)
	r.FieldsPerRecord = len(g.m.tables[ti].cols)
	if _, err := r.ReadAll(); err != nil {
		g.t.Errorf("line %d: encoding/csv cannot read the output back: %v", c.line, err)
	}
}

// checkValidate checks that Validate agrees with AppendRows on every event
// and table.
func (g *goldenRun) checkValidate(c *goldenCase, events []byte) {
	var p Parser
	for n, line := range bytes.Split(events, []byte("\n")) {
		d, err := p.Parse(line)
		if err != nil {
			continue
		}
		verr := g.m.Validate(d)
		var aerr error
		for ti := range g.m.tables {
			if _, _, err := g.m.AppendRows(nil, ti, d, Lineage{}); err != nil && aerr == nil {
				aerr = err
			}
		}
		if fmt.Sprint(verr) != fmt.Sprint(aerr) {
			g.t.Errorf("line %d, event %d: Validate %v, AppendRows %v", c.line, n+1, verr, aerr)
		}
	}
}

// elide keeps the first and last n lines of s.
func elide(s, rows string) string {
	n, err := strconv.Atoi(rows)
	lines := strings.SplitAfter(strings.TrimSuffix(s, "\n"), "\n")
	if err != nil || len(lines) <= 2*n {
		return s
	}
	skipped := fmt.Sprintf("… %d lines …\n", len(lines)-2*n)
	return strings.Join(lines[:n], "") + skipped + strings.Join(lines[len(lines)-n:], "") + "\n"
}

func abbreviate(s, long string) string {
	n, err := strconv.Atoi(long)
	if err != nil {
		return s
	}
	lines := strings.SplitAfter(s, "\n")
	for i, l := range lines {
		if len(l) > n {
			lines[i] = fmt.Sprintf("<%d bytes> %s…%s", len(l), l[:20], strings.TrimSuffix(l[len(l)-20:], "\n")) + "\n"
		}
	}
	return strings.Join(lines, "")
}

func (g *goldenRun) rejected(c *goldenCase) string {
	o := csvArgs(g.t, c.args)
	out := RejectedHeader(o)
	for _, l := range c.input {
		var f [4]string
		rest := expandLine(l)
		for i := range f {
			q, err := strconv.QuotedPrefix(strings.TrimLeft(rest, " "))
			if err != nil {
				g.t.Fatalf("line %d: %q: %v", c.line, l, err)
			}
			f[i], _ = strconv.Unquote(q)
			rest = strings.TrimLeft(rest, " ")[len(q):]
		}
		maxRaw, _ := strconv.Atoi(c.args["max_raw"])
		out = AppendRejectedRow(out, o, f[0], f[1], f[2], []byte(f[3]), maxRaw)
	}
	return strings.TrimSuffix(string(out), "\n")
}
