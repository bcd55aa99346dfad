package conf

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"

	"github.com/BurntSushi/toml"
)

// origin is where an included event type came from: its file and its
// index there.
type origin struct {
	file  string
	index int
}

// included is what an included file may hold.
type included struct {
	EventTypes []EventType `toml:"event_types"`
}

// readIncludes adds the [[event_types]] of every file the include patterns
// match (sorted by path; relative patterns are relative to dir) to c.
// Problems name the file and the key in it.
func (c *Config) readIncludes(ps *problems, dir string) {
	if len(c.Include) == 0 {
		return
	}
	c.includes = make([]origin, len(c.EventTypes)) // the main file's own: no origin
	for i, pattern := range c.Include {
		if !filepath.IsAbs(pattern) {
			pattern = filepath.Join(dir, pattern)
		}
		files, err := filepath.Glob(pattern)
		if err != nil {
			ps.bad(fmt.Sprintf("include[%d]", i), c.Include[i], "is not a valid glob pattern: %v", err)
			continue
		}
		sort.Strings(files)
		for _, f := range files {
			c.readInclude(ps, f)
		}
	}
}

// readInclude decodes one included file and appends its event types.
func (c *Config) readInclude(ps *problems, file string) {
	data, err := os.ReadFile(file)
	if err != nil {
		ps.add(file, "", "cannot read the included file: %v", pathError(err))
		return
	}
	var raw map[string]any
	if _, err := toml.Decode(string(data), &raw); err != nil {
		p := syntaxProblem(err)
		p.Key = file + ": " + p.Key
		ps.list = append(ps.list, p)
		return
	}
	for key := range raw {
		if key != "event_types" {
			ps.add(file+": "+key, "", "is not allowed in an included file: it may hold [[event_types]] only")
			delete(raw, key)
		}
	}
	var inc included
	decodeTable(ps, file+":", raw, reflect.ValueOf(&inc).Elem())
	for i := range inc.EventTypes {
		c.EventTypes = append(c.EventTypes, inc.EventTypes[i])
		c.includes = append(c.includes, origin{file: file, index: i})
	}
}

// eventTypeKey is the problem key of event type i: "event_types[i]", or
// "FILE: event_types[j]" for one from an included file.
func (c *Config) eventTypeKey(i int) string {
	if i < len(c.includes) && c.includes[i].file != "" {
		return fmt.Sprintf("%s: event_types[%d]", c.includes[i].file, c.includes[i].index)
	}
	return fmt.Sprintf("event_types[%d]", i)
}
