package conf

import (
	"testing"

	"materializer/pipeline/flatten"
)

func TestTableSpecsCompile(t *testing.T) {
	cfg, err := Load("example.toml", ForRun)
	if err != nil {
		t.Fatal(err)
	}
	for _, et := range cfg.EventTypes {
		m, err := flatten.Compile(et.TableSpecs(), cfg.CSV.Flatten())
		if err != nil {
			t.Fatalf("%s: %v", et.Name, err)
		}
		if got := len(m.Tables()); got != len(et.Tables) {
			t.Fatalf("%s: %d tables compiled, want %d", et.Name, got, len(et.Tables))
		}
	}
	if got := (CSV{Delimiter: ";", Header: false, Null: `\N`}).Flatten(); got != (flatten.CSV{Delimiter: ';', Null: `\N`}) {
		t.Fatalf("CSV.Flatten = %+v", got)
	}
}
