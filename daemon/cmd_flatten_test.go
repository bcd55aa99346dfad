package main

import (
	"bytes"
	"os/exec"
	"strings"
	"syscall"
	"testing"
)

// runBinaryIn runs the binary with stdin and returns exit code, stdout and
// stderr.
func runBinaryIn(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(binPath, args...)
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, stdout.String(), stderr.String()
}

// flattenInput: two good events, a rejected one, a blank line, a non-object.
const flattenInput = `{"metadata":{"occurred_at":"2024-05-01T10:00:00.5+02:00"},"article_id":7,"version":3,"brand":"comma, inc","price":{"amount":1.5e1},"sizes":[{"size":"40","qty":2},{"size":"41","qty":0}]}
{"article_id":"A-1","version":1}

{"article_id":8,"version":1,"brand":"new\nline","sizes":[]}
[1,2]
`

func TestFlatten(t *testing.T) {
	cases := []struct {
		table, want string
	}{
		{"", "article_id,brand,version,price,occurred_at\n" +
			"7,\"comma, inc\",3,15,2024-05-01T08:00:00.500000Z\n" +
			"8,\"new\nline\",1,,\n"},
		{"article_size", "article_id,size,qty,version\n7,40,2,3\n7,41,0,3\n"},
	}
	for _, tc := range cases {
		args := []string{"flatten", "-config", "../conf/demo.toml", "-event-type", "article.updated"}
		if tc.table != "" {
			args = append(args, "-table", tc.table)
		}
		code, stdout, stderr := runBinaryIn(t, flattenInput, args...)
		lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
		if code != 1 || stdout != tc.want || len(lines) != 3 ||
			lines[0] != `line 2: table article column article_id: "A-1" is not an int` ||
			!strings.HasPrefix(lines[1], "line 5: not a JSON object") ||
			lines[2] != "materializer flatten: 2 events rejected" {
			t.Errorf("%v: exit %d\nstdout:\n%s\nwant:\n%s\nstderr:\n%s", args, code, stdout, tc.want, stderr)
		}
	}
}

func TestFlattenAllAccepted(t *testing.T) {
	code, stdout, stderr := runBinaryIn(t, "{\"article_id\":1}\r\n\n{\"article_id\":2,\"version\":9}",
		"flatten", "-config", "../conf/demo.toml", "-event-type", "article.updated")
	if want := "article_id,brand,version,price,occurred_at\n1,,,,\n2,,9,,\n"; code != 0 || stdout != want || stderr != "" {
		t.Fatalf("exit %d\nstdout %q want %q\nstderr %q", code, stdout, want, stderr)
	}
	code, stdout, stderr = runBinaryIn(t, "", "flatten", "-config", "../conf/demo.toml", "-event-type", "article.updated", "-table", "article_size")
	if code != 0 || stdout != "article_id,size,qty,version\n" || stderr != "" {
		t.Fatalf("empty input: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}

func TestFlattenUsageErrors(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"-config", "../conf/demo.toml"}, "materializer flatten: -event-type is required\n"},
		{[]string{"-config", "../conf/demo.toml", "-event-type", "nope"},
			`materializer flatten: no event type "nope" in the config (configured: article.updated)` + "\n"},
		{[]string{"-config", "../conf/demo.toml", "-event-type", "article.updated", "-table", "x"},
			`materializer flatten: event type article.updated has no table "x" (tables: article, article_size)` + "\n"},
		{[]string{"-config", "missing.toml", "-event-type", "article.updated"}, "missing.toml: no such file or directory"},
	}
	for _, tc := range cases {
		code, stdout, stderr := runBinaryIn(t, "{}\n", append([]string{"flatten"}, tc.args...)...)
		if code != 2 || stdout != "" || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit 2 and %q", tc.args, code, stdout, stderr, tc.want)
		}
	}
}

// The row bomb of issue 15 through `materializer flatten`: once 4 GB of CSV
// and 15 GB of peak RSS over a minute. Under the default [limits] it is
// rejected at once, naming the limit, without the memory being taken; so is
// an event above max_event_bytes, which is not even held whole; the good
// events around them are flattened.
func TestFlattenObeysTheLimits(t *testing.T) {
	bomb := `{"article_id":1,"brand":"` + strings.Repeat("b", 200<<10) + `","sizes":[` +
		strings.Repeat(`{"size":"S","qty":1},`, 19999) + `{"size":"S","qty":1}]}`
	huge := `{"article_id":2,"brand":"` + strings.Repeat("h", 9<<20) + `"}`
	input := `{"article_id":7,"sizes":[{"size":"M","qty":3}]}` + "\n" + bomb + "\n" + huge + "\n" + `{"article_id":8}` + "\n"
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(binPath, "flatten", "-config", "../conf/demo.toml", "-event-type", "article.updated", "-table", "article_size")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = strings.NewReader(input), &stdout, &stderr
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("exit: %v; stderr %q", err, stderr.String())
	}
	want := "line 2: table article_size: more than 10000 rows (limits.max_rows_per_event = 10000)\n" +
		"line 3: event of 9437211 bytes exceeds limits.max_event_bytes = 8388608: rejected unparsed\n" +
		"materializer flatten: 2 events rejected\n"
	if stdout.String() != "article_id,size,qty,version\n7,M,3,\n" || stderr.String() != want {
		t.Fatalf("stdout %q\nstderr %q\nwant   %q", stdout.String(), stderr.String(), want)
	}
	limit := int64(256 << 20) // the race detector multiplies memory
	if raceEnabled {
		limit = 1 << 30
	}
	if rss := cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss << 10; rss > limit {
		t.Errorf("peak RSS %d MiB, want at most %d", rss>>20, limit>>20)
	}
}
