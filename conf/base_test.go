package conf

import "testing"

func TestBaseIsValid(t *testing.T) {
	if ps := problemsOf(t, edited(t, nil), ForRun); ps != nil {
		t.Fatalf("testdata/base.toml: %v", ps)
	}
}
