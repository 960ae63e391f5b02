package config

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// decode reads YAML into the struct pointed to by out, walking the node
// tree itself so that every error names its field path, unknown and
// repeated keys are errors, and aliases (which could expand without bound)
// are refused.
func decode(b []byte, out any) error {
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return fmt.Errorf("yaml: %w", cleanYAMLError(err))
	}
	if doc.Kind == 0 {
		return nil // empty document: every field takes its default
	}
	n := &doc
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			return nil
		}
		n = n.Content[0]
	}
	if isNull(n) {
		return nil
	}
	return decodeValue(n, reflect.ValueOf(out).Elem(), "")
}

var durationType = reflect.TypeOf(time.Duration(0))

func decodeValue(n *yaml.Node, v reflect.Value, path string) error {
	if n.Kind == yaml.AliasNode || n.Anchor != "" {
		return fieldErr(name(path), "YAML anchors and aliases are not supported (line %d)", n.Line)
	}
	if isNull(n) {
		return nil // leave the default
	}
	switch {
	case v.Type() == durationType:
		s, err := scalar(n, path)
		if err != nil {
			return err
		}
		d, err := time.ParseDuration(s)
		if err != nil {
			return fieldErr(name(path), "%q is not a duration such as 250ms, 30s or 5m (line %d)", clip(s), n.Line)
		}
		v.SetInt(int64(d))
		return nil
	case v.Kind() == reflect.String:
		s, err := scalar(n, path)
		if err != nil {
			return err
		}
		v.SetString(s)
		return nil
	case v.Kind() == reflect.Int:
		s, err := scalar(n, path)
		if err != nil {
			return err
		}
		i, err := strconv.ParseInt(s, 10, 64)
		if err != nil || i > math.MaxInt32 || i < math.MinInt32 {
			return fieldErr(name(path), "%q is not an integer in range (line %d)", clip(s), n.Line)
		}
		v.SetInt(i)
		return nil
	case v.Kind() == reflect.Bool:
		s, err := scalar(n, path)
		if err != nil {
			return err
		}
		switch s {
		case "true":
			v.SetBool(true)
		case "false":
			v.SetBool(false)
		default:
			return fieldErr(name(path), "%q is not true or false (line %d)", clip(s), n.Line)
		}
		return nil
	case v.Kind() == reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return fieldErr(name(path), "must be a list (line %d)", n.Line)
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, c := range n.Content {
			if err := decodeValue(c, s.Index(i), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
		v.Set(s)
		return nil
	case v.Kind() == reflect.Struct:
		return decodeStruct(n, v, path)
	case v.Kind() == reflect.Pointer && v.Type().Elem().Kind() == reflect.Struct:
		p := reflect.New(v.Type().Elem())
		if err := decodeStruct(n, p.Elem(), path); err != nil {
			return err
		}
		v.Set(p)
		return nil
	}
	return fieldErr(name(path), "unsupported field type %s", v.Type())
}

func decodeStruct(n *yaml.Node, v reflect.Value, path string) error {
	if n.Kind != yaml.MappingNode {
		return fieldErr(name(path), "must be a mapping of keys to values (line %d)", n.Line)
	}
	fields := make(map[string]int, v.NumField())
	var known []string
	for i := range v.NumField() {
		tag := v.Type().Field(i).Tag.Get("yaml")
		if tag == "" || tag == "-" {
			continue
		}
		fields[tag] = i
		known = append(known, tag)
	}
	seen := make(map[string]bool, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode || k.Value == "" || k.Anchor != "" {
			return fieldErr(name(path), "keys must be plain names (line %d)", k.Line)
		}
		p := k.Value
		if path != "" {
			p = path + "." + k.Value
		}
		idx, ok := fields[k.Value]
		if !ok {
			return fieldErr(p, "unknown field (line %d); known fields here: %s", k.Line, strings.Join(known, ", "))
		}
		if seen[k.Value] {
			return fieldErr(p, "repeated key (line %d)", k.Line)
		}
		seen[k.Value] = true
		if err := decodeValue(val, v.Field(idx), p); err != nil {
			return err
		}
	}
	return nil
}

func scalar(n *yaml.Node, path string) (string, error) {
	if n.Kind != yaml.ScalarNode {
		return "", fieldErr(name(path), "must be a single value (line %d)", n.Line)
	}
	return n.Value, nil
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

func name(path string) string {
	if path == "" {
		return "(top level)"
	}
	return path
}

// cleanYAMLError drops the library's "yaml: " prefix, which decode adds back.
func cleanYAMLError(err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	return errors.New(msg)
}
