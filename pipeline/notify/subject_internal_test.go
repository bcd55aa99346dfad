package notify

import (
	"errors"
	"testing"
)

func TestSubjectCovers(t *testing.T) {
	for _, tc := range []struct {
		pat, sub string
		want     bool
	}{
		{"materializer.files.>", "materializer.files.>", true},
		{"materializer.>", "materializer.files.>", true},
		{">", "materializer.files.>", true},
		{"*.files.>", "materializer.files.>", true},
		{"materializer.*.>", "materializer.files.>", true},
		{"materializer.files.*", "materializer.files.>", false},
		{"materializer.files", "materializer.files.>", false},
		{"materializer.files.a.>", "materializer.files.>", false},
		{"other.>", "materializer.files.>", false},
		{"materializer.files.>", "materializer.files.a.b", true},
		{"materializer.files.*", "materializer.files.a", true},
		{"materializer.files.*", "materializer.files.a.b", false},
	} {
		if got := subjectCovers(tc.pat, tc.sub); got != tc.want {
			t.Errorf("subjectCovers(%q, %q) = %v, want %v", tc.pat, tc.sub, got, tc.want)
		}
	}
}

func TestCheckSubject(t *testing.T) {
	for _, s := range []string{"", "a..b", ".a", "a.", "a.*", "a.>", "a b"} {
		if err := checkSubject(s); !errors.Is(err, ErrConfig) {
			t.Errorf("checkSubject(%q) = %v, want ErrConfig", s, err)
		}
	}
	if err := checkSubject("materializer.files.article-v2.updated_x"); err != nil {
		t.Fatal(err)
	}
}

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"nats://u:secret@h:4222": "nats://u:xxxxx@h:4222",
		"nats://sometoken@h":     "nats://redacted@h",
		"tls://h:4222":           "tls://h:4222",
	} {
		if got := redactURL(in); got != want {
			t.Errorf("redactURL(%q) = %q, want %q", in, got, want)
		}
	}
}
