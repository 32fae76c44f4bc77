package schemas

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"
	"unicode/utf8"
)

// This file holds Avro schema resolution: reading a record written with one
// schema (the writer's: an earlier version) as another (the reader's: the
// Codec's current schema). goavro v2 does not resolve schemas (it decodes
// only with the schema the data was written with; its SCHEMA-EVOLUTION.md
// says so), so a Codec decodes with the writer schema's goavro codec and a
// resolver turns goavro's native form of the writer schema into the native
// form of the reader schema, which the typed conversion then reads as usual.
//
// The rules are the Avro specification's ("Schema Resolution"):
//
//   - records match by unqualified name; fields match by name or by one of
//     the reader field's aliases; a writer field the reader lacks is
//     dropped; a reader field the writer lacks takes its default, and is an
//     error (at compile time) without one;
//   - int promotes to long, float and double; long to float and double;
//     float to double; string and bytes convert to each other;
//   - a reader union takes the first branch matching the writer's type
//     (exact kind first, then a promotion); a writer union resolves each
//     branch, and a datum of a branch with no match is a decoding error, as
//     the specification says;
//   - enums match by name, and a writer symbol the reader lacks takes the
//     reader's enum default; fixed match by name and size; arrays and maps
//     resolve their items.
//
// Logical types must agree, except that a plain long and a timestamp-millis
// long convert to each other (the wire data is the same). Every mismatch is
// found when the resolver is compiled (when a writer schema is added or
// looked up), not when a record is decoded, except for a union branch with
// no match and an enum symbol the reader lacks (without an enum default),
// which fail only the records that use them.

// resolver turns goavro's native value of a writer type into the native
// value of the matching reader type. A nil resolver is the identity.
type resolver func(v any) (any, error)

// errResolve is wrapped by every decoding failure of a resolver.
var errResolve = errors.New("schema resolution")

// compileResolver returns the resolver from writer schema w to reader schema
// r. It fails with a description of the first incompatibility.
func compileResolver(w, r *avroType) (resolver, error) {
	return resolveType(w, r, 0)
}

func resolveType(w, r *avroType, depth int) (resolver, error) {
	if depth > maxSchemaDepth {
		return nil, errors.New("schemas nested too deep to resolve")
	}
	switch {
	case w.kind == avroUnion && r.kind == avroUnion:
		return resolveUnionToUnion(w, r, depth)
	case w.kind == avroUnion:
		return resolveUnionToType(w, r, depth)
	case r.kind == avroUnion:
		return resolveTypeToUnion(w, r, depth)
	}
	switch r.kind {
	case avroRecord:
		return resolveRecord(w, r, depth)
	case avroEnum:
		return resolveEnum(w, r)
	case avroFixed:
		if w.kind != avroFixed || w.shortName() != r.shortName() || w.size != r.size {
			return nil, fmt.Errorf("writer %s cannot be read as fixed %s of size %d", describe(w), r.name, r.size)
		}
		return nil, nil
	case avroArray, avroMap:
		if w.kind != r.kind {
			return nil, fmt.Errorf("writer %s cannot be read as %s", describe(w), r.kind)
		}
		items, err := resolveType(w.items, r.items, depth+1)
		if err != nil {
			return nil, fmt.Errorf("%s items: %w", r.kind, err)
		}
		if items == nil {
			return nil, nil
		}
		if r.kind == avroMap {
			return mapResolver(items), nil
		}
		return arrayResolver(items), nil
	}
	return primitive(w, r)
}

// describe names a type in an error.
func describe(t *avroType) string {
	switch t.kind {
	case avroRecord, avroEnum, avroFixed:
		return t.kind.String() + " " + t.name
	}
	return t.branchName()
}

func arrayResolver(items resolver) resolver {
	return func(v any) (any, error) {
		in, ok := v.([]any)
		if !ok {
			return nil, fmt.Errorf("%w: array decoded as %T", errResolve, v)
		}
		out := make([]any, len(in))
		for i, x := range in {
			y, err := items(x)
			if err != nil {
				return nil, err
			}
			out[i] = y
		}
		return out, nil
	}
}

func mapResolver(values resolver) resolver {
	return func(v any) (any, error) {
		in, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%w: map decoded as %T", errResolve, v)
		}
		out := make(map[string]any, len(in))
		for k, x := range in {
			y, err := values(x)
			if err != nil {
				return nil, err
			}
			out[k] = y
		}
		return out, nil
	}
}

// fieldPlan says where one reader field's value comes from.
type fieldPlan struct {
	name    string   // the reader field
	from    string   // the writer field, or "" for the default
	resolve resolver // from the writer field's value; nil is the identity
	def     any      // the default's native value, when from is "": shared by
	// every record decoded, which is safe because the typed conversion only
	// reads native values
}

func resolveRecord(w, r *avroType, depth int) (resolver, error) {
	if w.kind != avroRecord || w.shortName() != r.shortName() {
		return nil, fmt.Errorf("writer %s cannot be read as record %s", describe(w), r.name)
	}
	writerFields := make(map[string]*avroField, len(w.fields))
	for i := range w.fields {
		writerFields[w.fields[i].name] = &w.fields[i]
	}
	identity := len(w.fields) == len(r.fields)
	plans := make([]fieldPlan, len(r.fields))
	for i := range r.fields {
		rf := &r.fields[i]
		plan := fieldPlan{name: rf.name}
		wf := writerFields[rf.name]
		for _, alias := range rf.aliases {
			if wf != nil {
				break
			}
			wf = writerFields[alias]
		}
		if wf == nil {
			if !rf.hasDefault {
				return nil, fmt.Errorf("record %s: field %q is not in the writer schema and has no default", r.name, rf.name)
			}
			def, err := defaultValue(rf.typ, rf.def, 0)
			if err != nil {
				return nil, fmt.Errorf("record %s: field %q: default: %w", r.name, rf.name, err)
			}
			plan.def = def
			plans[i] = plan
			identity = false
			continue
		}
		res, err := resolveType(wf.typ, rf.typ, depth+1)
		if err != nil {
			return nil, fmt.Errorf("record %s: field %q: %w", r.name, rf.name, err)
		}
		plan.from, plan.resolve = wf.name, res
		if res != nil || wf.name != rf.name {
			identity = false
		}
		plans[i] = plan
	}
	if identity {
		return nil, nil
	}
	return func(v any) (any, error) {
		in, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%w: record %s decoded as %T", errResolve, r.name, v)
		}
		out := make(map[string]any, len(plans))
		for i := range plans {
			p := &plans[i]
			if p.from == "" {
				out[p.name] = p.def
				continue
			}
			x := in[p.from]
			if p.resolve != nil {
				var err error
				if x, err = p.resolve(x); err != nil {
					return nil, err
				}
			}
			out[p.name] = x
		}
		return out, nil
	}, nil
}

func resolveEnum(w, r *avroType) (resolver, error) {
	if w.kind != avroEnum || w.shortName() != r.shortName() {
		return nil, fmt.Errorf("writer %s cannot be read as enum %s", describe(w), r.name)
	}
	known := make(map[string]bool, len(r.symbols))
	for _, s := range r.symbols {
		known[s] = true
	}
	missing := false
	for _, s := range w.symbols {
		missing = missing || !known[s]
	}
	if !missing {
		return nil, nil
	}
	// A writer symbol the reader lacks reads as the reader enum's default,
	// and is a decoding error without one.
	return func(v any) (any, error) {
		s, ok := v.(string)
		switch {
		case ok && known[s]:
			return s, nil
		case ok && r.enumDefault != "":
			return r.enumDefault, nil
		}
		return nil, fmt.Errorf("%w: enum %s has no symbol %v", errResolve, r.name, v)
	}, nil
}

// primitive resolves a primitive writer type to a primitive reader type.
func primitive(w, r *avroType) (resolver, error) {
	if w.kind == r.kind && w.logical == r.logical {
		return nil, nil
	}
	if w.logical != r.logical {
		switch {
		case w.kind == avroLong && r.kind == avroLong && w.logical == "" && r.logical == "timestamp-millis":
			return func(v any) (any, error) {
				n, ok := v.(int64)
				if !ok {
					return nil, fmt.Errorf("%w: long decoded as %T", errResolve, v)
				}
				return time.UnixMilli(n).UTC(), nil
			}, nil
		case w.kind == avroLong && r.kind == avroLong && w.logical == "timestamp-millis" && r.logical == "":
			return func(v any) (any, error) {
				t, ok := v.(time.Time)
				if !ok {
					return nil, fmt.Errorf("%w: timestamp-millis decoded as %T", errResolve, v)
				}
				return unixMillis(t), nil
			}, nil
		}
		return nil, fmt.Errorf("writer %s cannot be read as %s", describe(w), describe(r))
	}
	if conv := promotion(w.kind, r.kind); conv != nil {
		return conv, nil
	}
	return nil, fmt.Errorf("writer %s cannot be read as %s", describe(w), describe(r))
}

// promotion returns the conversion of a promotable primitive, or nil.
func promotion(w, r avroKind) resolver {
	bad := func(v any) (any, error) {
		return nil, fmt.Errorf("%w: %s decoded as %T", errResolve, w, v)
	}
	switch {
	case w == avroInt && (r == avroLong || r == avroFloat || r == avroDouble):
		return func(v any) (any, error) {
			n, ok := v.(int32)
			if !ok {
				return bad(v)
			}
			return numberAs(r, int64(n), float64(n)), nil
		}
	case w == avroLong && (r == avroFloat || r == avroDouble):
		return func(v any) (any, error) {
			n, ok := v.(int64)
			if !ok {
				return bad(v)
			}
			return numberAs(r, n, float64(n)), nil
		}
	case w == avroFloat && r == avroDouble:
		return func(v any) (any, error) {
			f, ok := v.(float32)
			if !ok {
				return bad(v)
			}
			return float64(f), nil
		}
	case w == avroString && r == avroBytes:
		return func(v any) (any, error) {
			s, ok := v.(string)
			if !ok {
				return bad(v)
			}
			return []byte(s), nil
		}
	case w == avroBytes && r == avroString:
		return func(v any) (any, error) {
			b, ok := v.([]byte)
			if !ok {
				return bad(v)
			}
			return string(b), nil
		}
	}
	return nil
}

// numberAs is goavro's native value of a number of kind k.
func numberAs(k avroKind, n int64, f float64) any {
	switch k {
	case avroLong:
		return n
	case avroFloat:
		return float32(f)
	}
	return f
}

// branchPlan resolves one writer union branch into the reader's type.
type branchPlan struct {
	ok      bool     // false: no reader branch matches this writer branch
	name    string   // the reader branch's name when the reader is a union
	null    bool     // the reader branch is null (goavro's native nil)
	resolve resolver // nil is the identity
}

// matchBranch finds the reader branch for writer type w: the first of the same
// kind (and name, for named types) that resolves, else the first that
// resolves through a promotion.
func matchBranch(w *avroType, r *avroType, depth int) (branchPlan, error) {
	var firstErr error
	for pass := 0; pass < 2; pass++ {
		for _, b := range r.branches {
			exact := b.kind == w.kind && (b.name == "" || b.shortName() == w.shortName())
			if exact != (pass == 0) {
				continue
			}
			res, err := resolveType(w, b, depth+1)
			if err != nil {
				if firstErr == nil {
					firstErr = err
				}
				continue
			}
			return branchPlan{ok: true, name: b.branchName(), null: b.kind == avroNull, resolve: res}, nil
		}
	}
	if firstErr == nil {
		firstErr = fmt.Errorf("writer %s matches no branch of the reader's union", describe(w))
	}
	return branchPlan{}, firstErr
}

func resolveTypeToUnion(w, r *avroType, depth int) (resolver, error) {
	p, err := matchBranch(w, r, depth)
	if err != nil {
		return nil, err
	}
	return p.wrap, nil
}

// wrap returns a resolved value in goavro's native union form.
func (p *branchPlan) wrap(v any) (any, error) {
	if p.null {
		return nil, nil
	}
	if p.resolve != nil {
		var err error
		if v, err = p.resolve(v); err != nil {
			return nil, err
		}
	}
	return map[string]any{p.name: v}, nil
}

func resolveUnionToUnion(w, r *avroType, depth int) (resolver, error) {
	plans := make(map[string]*branchPlan, len(w.branches))
	// goavro keys a union value by its branch's name, so the native form is
	// the same when every writer branch is a reader branch of the same name.
	identity := true
	var firstErr error
	for _, wb := range w.branches {
		p, err := matchBranch(wb, r, depth)
		if err != nil && firstErr == nil {
			firstErr = err
		}
		plans[wb.branchName()] = &p
		identity = identity && err == nil && p.resolve == nil && p.name == wb.branchName()
	}
	if identity {
		return nil, nil
	}
	anyOK := false
	for _, p := range plans {
		anyOK = anyOK || p.ok
	}
	if !anyOK {
		return nil, fmt.Errorf("no branch of the writer's union %v matches the reader's %v: %w", unionNames(w), unionNames(r), firstErr)
	}
	return func(v any) (any, error) {
		name, x, err := unionValue(v)
		if err != nil {
			return nil, err
		}
		p, ok := plans[name]
		if !ok || !p.ok {
			return nil, fmt.Errorf("%w: union branch %q has no match in the reader's union %v", errResolve, name, unionNames(r))
		}
		return p.wrap(x)
	}, nil
}

func resolveUnionToType(w, r *avroType, depth int) (resolver, error) {
	plans := make(map[string]resolver, len(w.branches))
	var firstErr error
	for _, wb := range w.branches {
		res, err := resolveType(wb, r, depth+1)
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		if res == nil {
			res = func(v any) (any, error) { return v, nil }
		}
		plans[wb.branchName()] = res
	}
	if len(plans) == 0 {
		return nil, firstErr
	}
	return func(v any) (any, error) {
		name, x, err := unionValue(v)
		if err != nil {
			return nil, err
		}
		res, ok := plans[name]
		if !ok {
			return nil, fmt.Errorf("%w: union branch %q cannot be read as %s", errResolve, name, describe(r))
		}
		return res(x)
	}, nil
}

// unionValue splits goavro's native union value into its branch name and
// value: nil is the null branch, anything else a one-entry map.
func unionValue(v any) (string, any, error) {
	if v == nil {
		return "null", nil, nil
	}
	m, ok := v.(map[string]any)
	if !ok || len(m) != 1 {
		return "", nil, fmt.Errorf("%w: union decoded as %T", errResolve, v)
	}
	for k, x := range m {
		return k, x, nil
	}
	return "", nil, fmt.Errorf("%w: empty union value", errResolve)
}

func unionNames(u *avroType) []string {
	names := make([]string, len(u.branches))
	for i, b := range u.branches {
		names[i] = b.branchName()
	}
	return names
}

// defaultValue converts a field's default, as parsed JSON, into goavro's
// native value of type t. A union's default is of its first branch.
func defaultValue(t *avroType, v any, depth int) (any, error) {
	if depth > maxSchemaDepth {
		return nil, errors.New("default nested too deep")
	}
	bad := func() (any, error) {
		return nil, fmt.Errorf("%v is not a %s", v, describe(t))
	}
	switch t.kind {
	case avroNull:
		if v != nil {
			return bad()
		}
		return nil, nil
	case avroBoolean:
		b, ok := v.(bool)
		if !ok {
			return bad()
		}
		return b, nil
	case avroInt, avroLong:
		n, ok := v.(json.Number)
		if !ok {
			return bad()
		}
		i, err := n.Int64()
		if err != nil || (t.kind == avroInt && (i < math.MinInt32 || i > math.MaxInt32)) {
			return bad()
		}
		switch {
		case t.kind == avroInt && t.logical == "":
			return int32(i), nil
		case t.kind == avroLong && t.logical == "":
			return i, nil
		case t.logical == "timestamp-millis":
			return time.UnixMilli(i).UTC(), nil
		}
		return nil, fmt.Errorf("defaults of logical type %s are not supported", t.logical)
	case avroFloat, avroDouble:
		n, ok := v.(json.Number)
		if !ok {
			return bad()
		}
		f, err := n.Float64()
		if err != nil {
			return bad()
		}
		if t.kind == avroFloat {
			return float32(f), nil
		}
		return f, nil
	case avroString:
		s, ok := v.(string)
		if !ok || t.logical != "" {
			return bad()
		}
		return s, nil
	case avroBytes, avroFixed:
		// JSON strings whose code points 0-255 are the bytes.
		s, ok := v.(string)
		if !ok || t.logical != "" {
			return bad()
		}
		b := make([]byte, 0, len(s))
		for _, r := range s {
			if r > 255 || r == utf8.RuneError {
				return bad()
			}
			b = append(b, byte(r))
		}
		if t.kind == avroFixed && len(b) != t.size {
			return bad()
		}
		return b, nil
	case avroEnum:
		s, ok := v.(string)
		if !ok {
			return bad()
		}
		for _, sym := range t.symbols {
			if sym == s {
				return s, nil
			}
		}
		return bad()
	case avroArray:
		items, ok := v.([]any)
		if !ok {
			return bad()
		}
		out := make([]any, len(items))
		for i, x := range items {
			y, err := defaultValue(t.items, x, depth+1)
			if err != nil {
				return nil, err
			}
			out[i] = y
		}
		return out, nil
	case avroMap:
		m, ok := v.(map[string]any)
		if !ok {
			return bad()
		}
		out := make(map[string]any, len(m))
		for k, x := range m {
			y, err := defaultValue(t.items, x, depth+1)
			if err != nil {
				return nil, err
			}
			out[k] = y
		}
		return out, nil
	case avroRecord:
		m, ok := v.(map[string]any)
		if !ok {
			return bad()
		}
		out := make(map[string]any, len(t.fields))
		for _, f := range t.fields {
			x, ok := m[f.name]
			if !ok {
				if !f.hasDefault {
					return nil, fmt.Errorf("field %q of record %s has neither a value nor a default", f.name, t.name)
				}
				x = f.def
			}
			y, err := defaultValue(f.typ, x, depth+1)
			if err != nil {
				return nil, err
			}
			out[f.name] = y
		}
		return out, nil
	case avroUnion:
		first := t.branches[0]
		y, err := defaultValue(first, v, depth+1)
		if err != nil || first.kind == avroNull {
			return nil, err
		}
		return map[string]any{first.branchName(): y}, nil
	}
	return bad()
}
