package flatten

// Mapping is the compiled form of an event type's tables.
//
// STUB: the flatten issue replaces this file with the real compiler. The
// signature of Compile is the contract conf/ validates through.
type Mapping struct {
	Tables []TableSpec
}

// Compile checks and compiles the tables of one event type. The error, when
// not nil, is a Problems listing every problem found (paths that do not parse,
// unknown types or sources, [*] columns not on one array chain, duplicate
// column names, ...).
func Compile(tables []TableSpec, csv CSV) (*Mapping, error) {
	return &Mapping{Tables: tables}, nil
}
