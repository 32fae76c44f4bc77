package schemas

import (
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
	shapeVarint // int, long, enum and the logical types built on them
	shapeFixed  // float, double and fixed: min bytes
	shapeBytes  // bytes and string
	shapeRecord
	shapeArray
	shapeMap
	shapeUnion
)

// shape is one node of a schema's structure: just what is needed to walk a
// binary datum. Built once per schema; read-only afterwards.
type shape struct {
	kind     shapeKind
	children []*shape // record fields or union branches
	items    *shape   // array items, map values
	min      int      // fewest bytes any datum of this shape encodes to
}

// errShape is wrapped by every failure of (*shape).skip.
var errShape = errors.New("avro check")

// buildShape parses an Avro schema's JSON text into a shape tree. Every Avro
// type is supported, so that any writer schema is checked before goavro
// decodes with it.
func buildShape(schema string) (*shape, error) {
	t, err := parseSchema(schema)
	if err != nil {
		return nil, err
	}
	return shapeOf(t, map[*avroType]*shape{}), nil
}

// shapeOf returns the shape of t. A named type is one shape, however often
// it is referenced; a recursive reference sees its record's min as 0, a
// lower bound, so the check stays sound (only weaker) for recursive schemas.
func shapeOf(t *avroType, named map[*avroType]*shape) *shape {
	if s, ok := named[t]; ok {
		return s
	}
	switch t.kind {
	case avroNull:
		return &shape{kind: shapeNull}
	case avroBoolean:
		return &shape{kind: shapeBoolean, min: 1}
	case avroInt, avroLong:
		return &shape{kind: shapeVarint, min: 1}
	case avroEnum:
		s := &shape{kind: shapeVarint, min: 1}
		named[t] = s
		return s
	case avroFloat:
		return &shape{kind: shapeFixed, min: 4}
	case avroDouble:
		return &shape{kind: shapeFixed, min: 8}
	case avroFixed:
		s := &shape{kind: shapeFixed, min: t.size}
		named[t] = s
		return s
	case avroBytes, avroString:
		return &shape{kind: shapeBytes, min: 1}
	case avroArray:
		return &shape{kind: shapeArray, items: shapeOf(t.items, named), min: 1}
	case avroMap:
		// Each entry is a string key, then the value.
		return &shape{kind: shapeMap, items: shapeOf(t.items, named), min: 1}
	case avroUnion:
		u := &shape{kind: shapeUnion}
		for i, b := range t.branches {
			s := shapeOf(b, named)
			if i == 0 || s.min < u.min {
				u.min = s.min
			}
			u.children = append(u.children, s)
		}
		u.min++ // the branch index
		return u
	}
	r := &shape{kind: shapeRecord}
	named[t] = r
	for _, f := range t.fields {
		s := shapeOf(f.typ, named)
		r.children = append(r.children, s)
		r.min += s.min
	}
	return r
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
	case shapeFixed:
		if len(b) < s.min {
			return nil, fmt.Errorf("%w: %d fixed bytes with %d left", errShape, s.min, len(b))
		}
		return b[s.min:], nil
	case shapeBytes:
		return skipBytes(b)
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
	case shapeArray, shapeMap:
		return s.skipBlocks(b, depth)
	}
	return nil, fmt.Errorf("%w: unknown shape", errShape)
}

// skipBlocks skips an array or a map: blocks of items (map entries are a
// string key then the value), each block's count checked against what is
// left before any item is read.
func (s *shape) skipBlocks(b []byte, depth int) ([]byte, error) {
	per := s.items.min
	if s.kind == shapeMap {
		per++ // the key's length
	}
	per = max(per, 1)
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
			if s.kind == shapeMap {
				if b, err = skipBytes(b); err != nil {
					return nil, err
				}
			}
			if b, err = s.items.skip(b, depth+1); err != nil {
				return nil, err
			}
		}
	}
}

// skipBytes returns b without the bytes or string datum at its start.
func skipBytes(b []byte) ([]byte, error) {
	n, rest, err := varint(b)
	if err != nil {
		return nil, err
	}
	if n < 0 || n > int64(len(rest)) {
		return nil, fmt.Errorf("%w: length %d with %d bytes left", errShape, n, len(rest))
	}
	return rest[n:], nil
}

// varint reads one zig-zag varint, as Avro encodes int and long. Ten bytes
// hold 64 bits: a tenth byte with more than its low bit set would overflow
// (goavro drops those bits; a value that needs them is no valid long).
func varint(b []byte) (int64, []byte, error) {
	var u uint64
	for i := 0; i < len(b) && i < 10; i++ {
		if i == 9 && b[i] > 1 {
			return 0, nil, fmt.Errorf("%w: varint overflows 64 bits", errShape)
		}
		u |= uint64(b[i]&0x7f) << (7 * i)
		if b[i] < 0x80 {
			return int64(u>>1) ^ -int64(u&1), b[i+1:], nil
		}
	}
	return 0, nil, fmt.Errorf("%w: bad varint", errShape)
}
