package schemas

import (
	"encoding/json"
	"errors"
	"fmt"
)

// This file holds a structural check of Avro binary data, run before goavro
// decodes it. goavro preallocates an array from the block count written in the
// data (up to 2^31-1 items, 32 GiB of interface values), so a single corrupt
// or hostile record could exhaust the processor's memory. The check walks the
// datum without allocating and refuses any block count that the remaining
// bytes cannot hold, any length past the end, and trailing bytes.

// shapeKind is the Avro type of a shape node.
type shapeKind uint8

const (
	shapeNull shapeKind = iota
	shapeBoolean
	shapeVarint // int, long and the logical types built on them
	shapeFloat
	shapeDouble
	shapeBytes // bytes and string
	shapeRecord
	shapeArray
	shapeUnion
)

// shape is one node of a schema's structure: just what is needed to walk a
// binary datum. Built once per Codec; read-only afterwards.
type shape struct {
	kind     shapeKind
	children []*shape // record fields or union branches
	items    *shape   // array items
	min      int      // fewest bytes any datum of this shape encodes to
}

// errShape is wrapped by every failure of (*shape).skip.
var errShape = errors.New("avro check")

// buildShape parses an Avro schema's JSON text into a shape tree. It supports
// the types the wastatus schemas use (primitives, records, arrays, unions and
// named references); anything else is an error, caught by NewCodec.
func buildShape(schema string) (*shape, error) {
	var v any
	if err := json.Unmarshal([]byte(schema), &v); err != nil {
		return nil, err
	}
	b := shapeBuilder{named: map[string]*shape{}}
	return b.build(v, "")
}

type shapeBuilder struct {
	named map[string]*shape // full and short names of the records seen so far
}

func (b *shapeBuilder) build(v any, namespace string) (*shape, error) {
	switch t := v.(type) {
	case string:
		return b.primitive(t, namespace)
	case []any:
		u := &shape{kind: shapeUnion}
		for _, branch := range t {
			s, err := b.build(branch, namespace)
			if err != nil {
				return nil, err
			}
			if len(u.children) == 0 || s.min < u.min {
				u.min = s.min
			}
			u.children = append(u.children, s)
		}
		if len(u.children) == 0 {
			return nil, errors.New("empty union")
		}
		u.min++ // the branch index
		return u, nil
	case map[string]any:
		typ, _ := t["type"].(string)
		switch typ {
		case "record":
			return b.record(t, namespace)
		case "array":
			items, err := b.build(t["items"], namespace)
			if err != nil {
				return nil, err
			}
			return &shape{kind: shapeArray, items: items, min: 1}, nil
		case "":
			// {"type": {...}} or {"type": [...]}: a nested type.
			return b.build(t["type"], namespace)
		default:
			return b.primitive(typ, namespace) // possibly with a logicalType
		}
	}
	return nil, fmt.Errorf("unsupported schema node %T", v)
}

func (b *shapeBuilder) primitive(name, namespace string) (*shape, error) {
	switch name {
	case "null":
		return &shape{kind: shapeNull}, nil
	case "boolean":
		return &shape{kind: shapeBoolean, min: 1}, nil
	case "int", "long":
		return &shape{kind: shapeVarint, min: 1}, nil
	case "float":
		return &shape{kind: shapeFloat, min: 4}, nil
	case "double":
		return &shape{kind: shapeDouble, min: 8}, nil
	case "bytes", "string":
		return &shape{kind: shapeBytes, min: 1}, nil
	}
	if s, ok := b.named[name]; ok {
		return s, nil
	}
	if s, ok := b.named[namespace+"."+name]; ok {
		return s, nil
	}
	return nil, fmt.Errorf("unsupported or unknown type %q", name)
}

func (b *shapeBuilder) record(t map[string]any, namespace string) (*shape, error) {
	name, _ := t["name"].(string)
	if ns, ok := t["namespace"].(string); ok {
		namespace = ns
	}
	fields, _ := t["fields"].([]any)
	r := &shape{kind: shapeRecord}
	for _, f := range fields {
		fm, ok := f.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("record %q: field is not an object", name)
		}
		s, err := b.build(fm["type"], namespace)
		if err != nil {
			return nil, fmt.Errorf("record %q field %v: %w", name, fm["name"], err)
		}
		r.children = append(r.children, s)
		r.min += s.min
	}
	// Registered once complete: the wastatus schemas are not recursive.
	b.named[name] = r
	if namespace != "" {
		b.named[namespace+"."+name] = r
	}
	return r, nil
}

// check reports whether b holds exactly one datum of shape s.
func (s *shape) check(b []byte) error {
	rest, err := s.skip(b, 0)
	if err != nil {
		return err
	}
	if len(rest) != 0 {
		return fmt.Errorf("%w: %d trailing bytes", errShape, len(rest))
	}
	return nil
}

// maxDepth bounds the recursion of skip; the wastatus schemas nest 4 deep.
const maxDepth = 32

// skip returns b without the datum of shape s at its start.
func (s *shape) skip(b []byte, depth int) ([]byte, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("%w: nesting too deep", errShape)
	}
	switch s.kind {
	case shapeNull:
		return b, nil
	case shapeBoolean:
		if len(b) < 1 || b[0] > 1 {
			return nil, fmt.Errorf("%w: bad boolean", errShape)
		}
		return b[1:], nil
	case shapeVarint:
		_, rest, err := varint(b)
		return rest, err
	case shapeFloat, shapeDouble:
		if len(b) < s.min {
			return nil, fmt.Errorf("%w: short float", errShape)
		}
		return b[s.min:], nil
	case shapeBytes:
		n, rest, err := varint(b)
		if err != nil {
			return nil, err
		}
		if n < 0 || n > int64(len(rest)) {
			return nil, fmt.Errorf("%w: length %d with %d bytes left", errShape, n, len(rest))
		}
		return rest[n:], nil
	case shapeRecord:
		var err error
		for _, f := range s.children {
			if b, err = f.skip(b, depth+1); err != nil {
				return nil, err
			}
		}
		return b, nil
	case shapeUnion:
		i, rest, err := varint(b)
		if err != nil {
			return nil, err
		}
		if i < 0 || i >= int64(len(s.children)) {
			return nil, fmt.Errorf("%w: union index %d", errShape, i)
		}
		return s.children[i].skip(rest, depth+1)
	case shapeArray:
		return s.skipArray(b, depth)
	}
	return nil, fmt.Errorf("%w: unknown shape", errShape)
}

func (s *shape) skipArray(b []byte, depth int) ([]byte, error) {
	per := max(s.items.min, 1)
	for {
		n, rest, err := varint(b)
		if err != nil {
			return nil, err
		}
		b = rest
		if n == 0 {
			return b, nil
		}
		if n < 0 {
			// A negative count is followed by the block's size in bytes.
			if n = -n; n < 0 {
				return nil, fmt.Errorf("%w: bad block count", errShape)
			}
			if _, b, err = varint(b); err != nil {
				return nil, err
			}
		}
		if n > int64(len(b)/per) {
			return nil, fmt.Errorf("%w: block of %d items with %d bytes left", errShape, n, len(b))
		}
		for ; n > 0; n-- {
			if b, err = s.items.skip(b, depth+1); err != nil {
				return nil, err
			}
		}
	}
}

// varint reads one zig-zag varint, as Avro encodes int and long.
func varint(b []byte) (int64, []byte, error) {
	var u uint64
	for i := 0; i < len(b) && i < 10; i++ {
		u |= uint64(b[i]&0x7f) << (7 * i)
		if b[i] < 0x80 {
			return int64(u>>1) ^ -int64(u&1), b[i+1:], nil
		}
	}
	return 0, nil, fmt.Errorf("%w: bad varint", errShape)
}
