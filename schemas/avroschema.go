package schemas

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// This file parses an Avro schema's JSON text into a small tree that the
// structural check (avrocheck.go) and schema resolution (resolve.go) walk.
// It names types exactly as goavro does, so that the union branch names it
// computes are the keys of goavro's native union values. goavro compiles
// every schema this file parses, and rejects the invalid ones first.

// avroKind is the Avro type of an avroType node.
type avroKind uint8

const (
	avroNull avroKind = iota
	avroBoolean
	avroInt
	avroLong
	avroFloat
	avroDouble
	avroBytes
	avroString
	avroRecord
	avroEnum
	avroArray
	avroMap
	avroFixed
	avroUnion
)

func (k avroKind) String() string {
	switch k {
	case avroNull:
		return "null"
	case avroBoolean:
		return "boolean"
	case avroInt:
		return "int"
	case avroLong:
		return "long"
	case avroFloat:
		return "float"
	case avroDouble:
		return "double"
	case avroBytes:
		return "bytes"
	case avroString:
		return "string"
	case avroRecord:
		return "record"
	case avroEnum:
		return "enum"
	case avroArray:
		return "array"
	case avroMap:
		return "map"
	case avroFixed:
		return "fixed"
	case avroUnion:
		return "union"
	}
	return "avroKind(" + strconv.Itoa(int(k)) + ")"
}

// primitiveKind returns the kind of an Avro primitive type name.
func primitiveKind(name string) (avroKind, bool) {
	for k := avroNull; k <= avroString; k++ {
		if k.String() == name {
			return k, true
		}
	}
	return 0, false
}

// goavroLogical reports whether goavro decodes a logical type to another Go
// type than the underlying one's ("long.timestamp-millis" decodes to
// time.Time). goavro ignores every other logicalType, and so does avroType.
func goavroLogical(typeAndLogical string) bool {
	switch typeAndLogical {
	case "long.timestamp-millis", "long.timestamp-micros", "int.time-millis",
		"long.time-micros", "int.date", "bytes.decimal", "string.validated-string":
		return true
	}
	return false
}

// avroType is one node of a parsed schema. Named types (record, enum, fixed)
// are one node however often they are referenced, so a recursive schema is a
// cyclic graph.
type avroType struct {
	kind        avroKind
	logical     string      // a logicalType goavro applies (see goavroLogical), else ""
	name        string      // full name of a record, enum or fixed
	fields      []avroField // record
	items       *avroType   // array items, map values
	branches    []*avroType // union
	symbols     []string    // enum
	enumDefault string      // enum: the symbol an unknown one reads as, or ""
	size        int         // fixed
}

// avroField is one field of a record.
type avroField struct {
	name       string
	aliases    []string
	typ        *avroType
	def        any // the default value as JSON (numbers as json.Number)
	hasDefault bool
}

// branchName is the key goavro uses for a non-null value of this type in a
// union: the full name of a named type, else the type name, suffixed with
// the logical type goavro applies.
func (t *avroType) branchName() string {
	switch t.kind {
	case avroRecord, avroEnum, avroFixed:
		return t.name
	}
	if t.logical != "" {
		return t.kind.String() + "." + t.logical
	}
	return t.kind.String()
}

// shortName is the unqualified name of a named type, which schema resolution
// matches on.
func (t *avroType) shortName() string {
	return t.name[strings.LastIndexByte(t.name, '.')+1:]
}

// parseSchema parses an Avro schema's JSON text.
func parseSchema(schema string) (*avroType, error) {
	d := json.NewDecoder(strings.NewReader(schema))
	d.UseNumber() // a long default keeps all its digits
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	if d.More() {
		return nil, errors.New("trailing data after the schema")
	}
	p := schemaParser{named: map[string]*avroType{}}
	return p.parse(v, "", 0)
}

type schemaParser struct {
	named map[string]*avroType // by full name
}

// maxSchemaDepth bounds the nesting of a schema's JSON, so that a hostile
// schema from a registry cannot exhaust the stack.
const maxSchemaDepth = 64

func (p *schemaParser) parse(v any, namespace string, depth int) (*avroType, error) {
	if depth > maxSchemaDepth {
		return nil, errors.New("schema nested too deep")
	}
	switch t := v.(type) {
	case string:
		return p.reference(t, namespace)
	case []any:
		u := &avroType{kind: avroUnion}
		for _, b := range t {
			bt, err := p.parse(b, namespace, depth+1)
			if err != nil {
				return nil, err
			}
			if bt.kind == avroUnion {
				return nil, errors.New("union directly inside a union")
			}
			u.branches = append(u.branches, bt)
		}
		if len(u.branches) == 0 {
			return nil, errors.New("empty union")
		}
		return u, nil
	case map[string]any:
		switch typ := t["type"].(type) {
		case string:
			return p.object(t, typ, namespace, depth)
		case map[string]any, []any:
			return p.parse(typ, namespace, depth+1) // {"type": {...}}
		}
		return nil, fmt.Errorf("schema object without a type: %v", t)
	}
	return nil, fmt.Errorf("unsupported schema node %T", v)
}

// reference resolves a type name: a primitive, or a named type defined
// earlier (full name, or short name in the enclosing namespace).
func (p *schemaParser) reference(name, namespace string) (*avroType, error) {
	if k, ok := primitiveKind(name); ok {
		return &avroType{kind: k}, nil
	}
	if t, ok := p.named[name]; ok {
		return t, nil
	}
	if t, ok := p.named[namespace+"."+name]; ok && namespace != "" {
		return t, nil
	}
	return nil, fmt.Errorf("unknown type %q", name)
}

func (p *schemaParser) object(m map[string]any, typ, namespace string, depth int) (*avroType, error) {
	switch typ {
	case "record", "enum", "fixed":
		return p.namedType(m, typ, namespace, depth)
	case "array", "map":
		key := "items"
		kind := avroArray
		if typ == "map" {
			key, kind = "values", avroMap
		}
		items, err := p.parse(m[key], namespace, depth+1)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", typ, key, err)
		}
		return &avroType{kind: kind, items: items}, nil
	}
	t, err := p.reference(typ, namespace)
	if err != nil {
		return nil, err
	}
	if lt, ok := m["logicalType"].(string); ok && t.name == "" && goavroLogical(typ+"."+lt) {
		return &avroType{kind: t.kind, logical: lt}, nil
	}
	return t, nil
}

func (p *schemaParser) namedType(m map[string]any, typ, namespace string, depth int) (*avroType, error) {
	name, _ := m["name"].(string)
	if name == "" {
		return nil, fmt.Errorf("%s without a name", typ)
	}
	full := name
	if !strings.Contains(name, ".") {
		if ns, _ := m["namespace"].(string); ns != "" {
			full = ns + "." + name
		} else if namespace != "" {
			full = namespace + "." + name
		}
	}
	if _, dup := p.named[full]; dup {
		return nil, fmt.Errorf("type %q defined twice", full)
	}
	t := &avroType{name: full}
	// Registered before its fields, so that a field may refer to it.
	p.named[full] = t
	switch typ {
	case "enum":
		t.kind = avroEnum
		syms, _ := m["symbols"].([]any)
		for _, s := range syms {
			sym, ok := s.(string)
			if !ok {
				return nil, fmt.Errorf("enum %q: symbol %v is not a string", full, s)
			}
			t.symbols = append(t.symbols, sym)
		}
		if len(t.symbols) == 0 {
			return nil, fmt.Errorf("enum %q without symbols", full)
		}
		t.enumDefault, _ = m["default"].(string)
		return t, nil
	case "fixed":
		t.kind = avroFixed
		n, ok := m["size"].(json.Number)
		size, err := n.Int64()
		if !ok || err != nil || size < 0 || size > 1<<30 {
			return nil, fmt.Errorf("fixed %q: bad size %v", full, m["size"])
		}
		t.size = int(size)
		return t, nil
	}
	t.kind = avroRecord
	ns := full[:max(strings.LastIndexByte(full, '.'), 0)]
	fields, ok := m["fields"].([]any)
	if !ok {
		return nil, fmt.Errorf("record %q without fields", full)
	}
	for _, f := range fields {
		fm, ok := f.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("record %q: field is not an object", full)
		}
		fname, _ := fm["name"].(string)
		ft, err := p.parse(fm["type"], ns, depth+1)
		if err != nil {
			return nil, fmt.Errorf("record %q field %q: %w", full, fname, err)
		}
		field := avroField{name: fname, typ: ft}
		field.def, field.hasDefault = fm["default"]
		if as, ok := fm["aliases"].([]any); ok {
			for _, a := range as {
				if s, ok := a.(string); ok {
					field.aliases = append(field.aliases, s)
				}
			}
		}
		t.fields = append(t.fields, field)
	}
	return t, nil
}

// sameSchemaText reports whether two schema texts are the same JSON value,
// whatever their spacing.
func sameSchemaText(a, b string) bool {
	if a == b {
		return true
	}
	var ca, cb bytes.Buffer
	if json.Compact(&ca, []byte(a)) != nil || json.Compact(&cb, []byte(b)) != nil {
		return false
	}
	return bytes.Equal(ca.Bytes(), cb.Bytes())
}
