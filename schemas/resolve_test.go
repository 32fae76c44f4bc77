package schemas

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/linkedin/goavro/v2"
)

// record wraps fields (JSON) in a record schema named R.
func record(fields string) string {
	return `{"type":"record","name":"R","namespace":"t","fields":[` + fields + `]}`
}

// resolveDatum writes datum with the writer schema, reads it back with
// goavro, and resolves it into the reader schema, as Codec.decode does.
func resolveDatum(t *testing.T, writer, reader string, datum any) (any, error) {
	t.Helper()
	wc, err := goavro.NewCodec(writer)
	if err != nil {
		t.Fatalf("writer schema: %v", err)
	}
	bin, err := wc.BinaryFromNative(nil, datum)
	if err != nil {
		t.Fatalf("encode with the writer schema: %v", err)
	}
	native, _, err := wc.NativeFromBinary(bin)
	if err != nil {
		t.Fatal(err)
	}
	res := compile(t, writer, reader)
	if res == nil {
		return native, nil
	}
	return res(native)
}

func compile(t *testing.T, writer, reader string) resolver {
	t.Helper()
	w, err := parseSchema(writer)
	if err != nil {
		t.Fatalf("parse writer: %v", err)
	}
	r, err := parseSchema(reader)
	if err != nil {
		t.Fatalf("parse reader: %v", err)
	}
	res, err := compileResolver(w, r)
	if err != nil {
		t.Fatalf("compileResolver: %v", err)
	}
	return res
}

func TestResolve(t *testing.T) {
	ms := time.UnixMilli(1750030076123).UTC()
	tests := []struct {
		name     string
		writer   string
		reader   string
		datum    any // goavro native of the writer schema
		want     any // goavro native of the reader schema
		identity bool
	}{{
		name:     "same schema",
		writer:   record(`{"name":"a","type":["null","string"],"default":null}`),
		reader:   record(`{"name":"a","type":["null","string"],"default":null}`),
		datum:    map[string]any{"a": goavro.Union("string", "x")},
		want:     map[string]any{"a": goavro.Union("string", "x")},
		identity: true,
	}, {
		name:   "added fields take their defaults",
		writer: record(`{"name":"a","type":"long"}`),
		reader: record(`{"name":"a","type":"long"},
			{"name":"n","type":["null","string"],"default":null},
			{"name":"s","type":["string","null"],"default":"dflt"},
			{"name":"l","type":{"type":"array","items":"long"},"default":[1,2]},
			{"name":"m","type":{"type":"map","values":"int"},"default":{"k":7}},
			{"name":"b","type":"bytes","default":"\u00ff\u0001"},
			{"name":"f","type":"float","default":1.5},
			{"name":"d","type":"double","default":2},
			{"name":"t","type":{"type":"long","logicalType":"timestamp-millis"},"default":1750030076123},
			{"name":"big","type":"long","default":9007199254740993},
			{"name":"ok","type":"boolean","default":true},
			{"name":"e","type":{"type":"enum","name":"E","symbols":["X","Y"]},"default":"Y"},
			{"name":"rec","type":{"type":"record","name":"S","fields":[{"name":"x","type":"int","default":3},{"name":"y","type":"string"}]},"default":{"y":"why"}}`),
		datum: map[string]any{"a": int64(1)},
		want: map[string]any{
			"a": int64(1), "n": nil, "s": goavro.Union("string", "dflt"), "l": []any{int64(1), int64(2)},
			"m": map[string]any{"k": int32(7)}, "b": []byte{0xff, 1}, "f": float32(1.5), "d": float64(2),
			"t": ms, "big": int64(9007199254740993), "ok": true, "e": "Y",
			"rec": map[string]any{"x": int32(3), "y": "why"},
		},
	}, {
		name:   "dropped writer fields",
		writer: record(`{"name":"gone","type":"string"},{"name":"a","type":"long"},{"name":"gone2","type":{"type":"map","values":"long"}}`),
		reader: record(`{"name":"a","type":"long"}`),
		datum:  map[string]any{"gone": "x", "a": int64(5), "gone2": map[string]any{"k": int64(1)}},
		want:   map[string]any{"a": int64(5)},
	}, {
		name:   "promotions",
		writer: record(`{"name":"il","type":"int"},{"name":"if","type":"int"},{"name":"id","type":"int"},{"name":"lf","type":"long"},{"name":"ld","type":"long"},{"name":"fd","type":"float"},{"name":"sb","type":"string"},{"name":"bs","type":"bytes"}`),
		reader: record(`{"name":"il","type":"long"},{"name":"if","type":"float"},{"name":"id","type":"double"},{"name":"lf","type":"float"},{"name":"ld","type":"double"},{"name":"fd","type":"double"},{"name":"sb","type":"bytes"},{"name":"bs","type":"string"}`),
		datum:  map[string]any{"il": int32(-3), "if": int32(4), "id": int32(5), "lf": int64(6), "ld": int64(1 << 40), "fd": float32(0.5), "sb": "s", "bs": []byte("b")},
		want:   map[string]any{"il": int64(-3), "if": float32(4), "id": float64(5), "lf": float32(6), "ld": float64(1 << 40), "fd": float64(0.5), "sb": []byte("s"), "bs": "b"},
	}, {
		name:   "long and timestamp-millis",
		writer: record(`{"name":"a","type":"long"},{"name":"b","type":{"type":"long","logicalType":"timestamp-millis"}}`),
		reader: record(`{"name":"a","type":{"type":"long","logicalType":"timestamp-millis"}},{"name":"b","type":"long"}`),
		datum:  map[string]any{"a": int64(1750030076123), "b": ms},
		want:   map[string]any{"a": ms, "b": int64(1750030076123)},
	}, {
		name:   "a value becomes optional",
		writer: record(`{"name":"a","type":"int"},{"name":"s","type":"string"}`),
		reader: record(`{"name":"a","type":["null","long"],"default":null},{"name":"s","type":["null","string"],"default":null}`),
		datum:  map[string]any{"a": int32(2), "s": "x"},
		want:   map[string]any{"a": goavro.Union("long", int64(2)), "s": goavro.Union("string", "x")},
	}, {
		name:   "union branches promote and rename",
		writer: record(`{"name":"a","type":["null","int"]},{"name":"b","type":["null","int"]},{"name":"c","type":["null",{"type":"record","name":"old.C","fields":[{"name":"x","type":"long"}]}]}`),
		reader: record(`{"name":"a","type":["null","long"]},{"name":"b","type":["null","long"]},{"name":"c","type":["null",{"type":"record","name":"C","fields":[{"name":"x","type":"long"}]}]}`),
		datum:  map[string]any{"a": goavro.Union("int", int32(9)), "b": nil, "c": goavro.Union("old.C", map[string]any{"x": int64(1)})},
		want:   map[string]any{"a": goavro.Union("long", int64(9)), "b": nil, "c": goavro.Union("t.C", map[string]any{"x": int64(1)})},
	}, {
		name:   "writer union read as its branch",
		writer: record(`{"name":"a","type":["int","string"]}`),
		reader: record(`{"name":"a","type":"string"}`),
		datum:  map[string]any{"a": goavro.Union("string", "x")},
		want:   map[string]any{"a": "x"},
	}, {
		name:   "field alias",
		writer: record(`{"name":"old","type":"string"}`),
		reader: record(`{"name":"new","aliases":["old"],"type":"string"}`),
		datum:  map[string]any{"old": "x"},
		want:   map[string]any{"new": "x"},
	}, {
		name:   "enum symbol the reader lacks reads as its default",
		writer: record(`{"name":"e","type":{"type":"enum","name":"E","symbols":["A","B","C"]}}`),
		reader: record(`{"name":"e","type":{"type":"enum","name":"E","symbols":["A","B","Z"],"default":"Z"}}`),
		datum:  map[string]any{"e": "C"},
		want:   map[string]any{"e": "Z"},
	}, {
		name:   "arrays and maps of records",
		writer: record(`{"name":"l","type":{"type":"array","items":{"type":"record","name":"I","fields":[{"name":"x","type":"int"}]}}},{"name":"m","type":{"type":"map","values":"int"}}`),
		reader: record(`{"name":"l","type":{"type":"array","items":{"type":"record","name":"I","fields":[{"name":"x","type":"long"},{"name":"y","type":["null","string"],"default":null}]}}},{"name":"m","type":{"type":"map","values":"long"}}`),
		datum:  map[string]any{"l": []any{map[string]any{"x": int32(1)}}, "m": map[string]any{"k": int32(2)}},
		want:   map[string]any{"l": []any{map[string]any{"x": int64(1), "y": nil}}, "m": map[string]any{"k": int64(2)}},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if res := compile(t, tt.writer, tt.reader); (res == nil) != tt.identity {
				t.Errorf("identity resolver = %v, want %v", res == nil, tt.identity)
			}
			got, err := resolveDatum(t, tt.writer, tt.reader, tt.datum)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("resolved\n got %#v\nwant %#v", got, tt.want)
			}
			// The result is the reader schema's native form: goavro writes it.
			rc, err := goavro.NewCodec(tt.reader)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := rc.BinaryFromNative(nil, got); err != nil {
				t.Errorf("the reader schema cannot encode the result: %v", err)
			}
		})
	}
}

// A union branch the reader has no match for fails only the data using it.
func TestResolveUnmatchedBranch(t *testing.T) {
	writer := record(`{"name":"a","type":["null","string","long"]}`)
	reader := record(`{"name":"a","type":["null","string"]}`)
	if _, err := resolveDatum(t, writer, reader, map[string]any{"a": goavro.Union("string", "x")}); err != nil {
		t.Errorf("string branch: %v", err)
	}
	_, err := resolveDatum(t, writer, reader, map[string]any{"a": goavro.Union("long", int64(1))})
	if !errors.Is(err, errResolve) {
		t.Errorf("long branch: err = %v, want errResolve", err)
	}
	writer = record(`{"name":"a","type":["null","string"]}`)
	reader = record(`{"name":"a","type":"string"}`)
	if _, err := resolveDatum(t, writer, reader, map[string]any{"a": nil}); !errors.Is(err, errResolve) {
		t.Errorf("null into string: err = %v, want errResolve", err)
	}
	writer = record(`{"name":"e","type":{"type":"enum","name":"E","symbols":["A","B"]}}`)
	reader = record(`{"name":"e","type":{"type":"enum","name":"E","symbols":["A"]}}`)
	if _, err := resolveDatum(t, writer, reader, map[string]any{"e": "B"}); !errors.Is(err, errResolve) {
		t.Errorf("enum symbol without a default: err = %v, want errResolve", err)
	}
}

func TestResolveIncompatible(t *testing.T) {
	tests := []struct {
		name           string
		writer, reader string
		why            string // in the error
	}{
		{"field added without a default", record(`{"name":"a","type":"long"}`), record(`{"name":"a","type":"long"},{"name":"b","type":"string"}`), `"b" is not in the writer schema and has no default`},
		{"changed type", record(`{"name":"a","type":"string"}`), record(`{"name":"a","type":"long"}`), "string cannot be read as long"},
		{"narrowing", record(`{"name":"a","type":"long"}`), record(`{"name":"a","type":"int"}`), "long cannot be read as int"},
		{"renamed record", `{"type":"record","name":"Other","fields":[]}`, record(``), "record Other cannot be read as record t.R"},
		{"logical types differ", record(`{"name":"a","type":{"type":"long","logicalType":"timestamp-micros"}}`), record(`{"name":"a","type":{"type":"long","logicalType":"timestamp-millis"}}`), "long.timestamp-micros cannot be read as long.timestamp-millis"},
		{"fixed size", record(`{"name":"a","type":{"type":"fixed","name":"F","size":4}}`), record(`{"name":"a","type":{"type":"fixed","name":"F","size":8}}`), "fixed"},
		{"no union branch matches", record(`{"name":"a","type":["boolean","double"]}`), record(`{"name":"a","type":["null","string"]}`), "matches"},
		{"bad default", record(`{"name":"a","type":"long"}`), record(`{"name":"a","type":"long"},{"name":"b","type":["null","string"],"default":"x"}`), "default"},
		{"array as map", record(`{"name":"a","type":{"type":"array","items":"long"}}`), record(`{"name":"a","type":{"type":"map","values":"long"}}`), "cannot be read as map"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, err := parseSchema(tt.writer)
			if err != nil {
				t.Fatal(err)
			}
			r, err := parseSchema(tt.reader)
			if err != nil {
				t.Fatal(err)
			}
			_, err = compileResolver(w, r)
			if err == nil || !strings.Contains(err.Error(), tt.why) {
				t.Errorf("compileResolver err = %v, want one saying %q", err, tt.why)
			}
		})
	}
}

// parseSchema names union branches exactly as goavro keys their values.
func TestBranchNamesMatchGoavro(t *testing.T) {
	schema := `{"type":"record","name":"R","namespace":"a.b","fields":[
		{"name":"u","type":["null","int","long","float","double","boolean","string","bytes",
			{"type":"long","logicalType":"timestamp-millis"},
			{"type":"record","name":"Rec","fields":[]},
			{"type":"record","name":"x.Full","fields":[]},
			{"type":"enum","name":"En","namespace":"other","symbols":["A"]},
			{"type":"fixed","name":"Fx","size":1},
			{"type":"array","items":"long"},
			{"type":"map","values":"long"}]},
		{"name":"ignored","type":{"type":"string","logicalType":"not-a-goavro-one"}}]}`
	values := []any{nil, int32(1), int64(1), float32(1), float64(1), true, "s", []byte("b"), time.UnixMilli(1).UTC(),
		map[string]any{}, map[string]any{}, "A", []byte{1}, []any{int64(1)}, map[string]any{"k": int64(1)}}
	c, err := goavro.NewCodec(schema)
	if err != nil {
		t.Fatal(err)
	}
	typ, err := parseSchema(schema)
	if err != nil {
		t.Fatal(err)
	}
	u := typ.fields[0].typ
	for i, v := range values {
		b := u.branches[i]
		in := map[string]any{"u": goavro.Union(b.branchName(), v), "ignored": "x"}
		bin, err := c.BinaryFromNative(nil, in)
		if err != nil {
			t.Errorf("branch %d named %q: goavro does not know it: %v", i, b.branchName(), err)
			continue
		}
		out, _, err := c.NativeFromBinary(bin)
		if err != nil {
			t.Fatal(err)
		}
		if got := out.(map[string]any)["u"]; !reflect.DeepEqual(got, in["u"]) {
			t.Errorf("branch %d: goavro decoded %#v, want %#v", i, got, in["u"])
		}
	}
	if got := typ.fields[1].typ; got.kind != avroString || got.logical != "" {
		t.Errorf("unknown logical type: parsed %+v, want a plain string", got)
	}
}

// Any schema text (a registry serves what it was given) is refused with
// ErrIncompatible or compiled; none panics. One that compiles has a shape.
func FuzzWriterSchema(f *testing.F) {
	c := newTestCodec(f)
	for _, s := range []string{
		StatusEventSchema(), MessageStatusSchema(),
		readSchema(f, "status_event.v1.avsc"), readSchema(f, "message_status.v1.avsc"),
		record(`{"name":"a","type":["null","int"]},{"name":"e","type":{"type":"enum","name":"E","symbols":["A"]}}`),
		`{"type":"record","name":"L","fields":[{"name":"next","type":["null","L"]}]}`,
		`{"type":"map","values":{"type":"fixed","name":"F","size":2}}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, schema string) {
		for _, kind := range []Kind{KindStatusEvent, KindMessageStatus} {
			w, err := c.compileWriter(kind, schema)
			if err != nil {
				if !errors.Is(err, ErrIncompatible) {
					t.Fatalf("compileWriter: %v, want ErrIncompatible", err)
				}
				continue
			}
			if w.shape == nil || w.codec == nil {
				t.Fatalf("compiled %q without a shape or codec", schema)
			}
		}
	})
}
