package conf

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
)

// Diff lists the keys whose values differ between a and b (with indices for
// arrays, e.g. "event_types[0].session_gap"; an event type added or removed
// shows as "event_types"), sorted. SIGHUP uses it to tell what changed.
func Diff(a, b *Config) []string {
	va, vb := flatValues(a), flatValues(b)
	changed := map[string]bool{}
	for k, v := range va {
		if w, ok := vb[k]; !ok || w != v {
			changed[strings.TrimSuffix(k, ".#")] = true
		}
	}
	for k := range vb {
		if _, ok := va[k]; !ok {
			changed[strings.TrimSuffix(k, ".#")] = true
		}
	}
	return sortedKeys(changed)
}

// flatValues renders every leaf of c under its key.
func flatValues(c *Config) map[string]string {
	m := map[string]string{}
	flattenValue(m, "", reflect.ValueOf(c).Elem())
	return m
}

func flattenValue(m map[string]string, key string, v reflect.Value) {
	switch {
	case v.Type() == reflect.TypeOf(Duration{}), v.Type() == reflect.TypeOf(ByteSize{}):
		m[key] = v.Interface().(fmt.Stringer).String()
	case v.Kind() == reflect.Struct:
		for i := range v.NumField() {
			if tag := v.Type().Field(i).Tag.Get("toml"); tag != "" {
				flattenValue(m, join(key, tag), v.Field(i))
			}
		}
	case v.Kind() == reflect.Slice:
		m[key+".#"] = strconv.Itoa(v.Len()) // a length change is reported at key
		for i := range v.Len() {
			flattenValue(m, fmt.Sprintf("%s[%d]", key, i), v.Index(i))
		}
	default:
		m[key] = fmt.Sprint(v.Interface())
	}
}
