package schemas

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"
)

// The tests run against franz-go's in-memory schema registry (srfake), which
// serves the Confluent REST API over HTTP; nothing else here fakes it.

var testSubjects = TopicSubjects("whatsapp.status.events", "whatsapp.status.current")

// newRegistry starts an in-memory registry and a client of it. It counts
// the GET /schemas/ids/{id} requests: the lookups of unknown ids.
func newRegistry(t *testing.T) (*srfake.Registry, *sr.Client, *atomic.Int64) {
	t.Helper()
	reg := srfake.New()
	t.Cleanup(reg.Close)
	var lookups atomic.Int64
	reg.Intercept(func(_ http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/schemas/ids/") {
			lookups.Add(1)
		}
		return false
	})
	cl, err := sr.NewClient(sr.URLs(reg.URL()))
	if err != nil {
		t.Fatal(err)
	}
	return reg, cl, &lookups
}

func newRegistryCodec(t *testing.T, cl *sr.Client) *Codec {
	t.Helper()
	c, err := NewRegistryCodec(t.Context(), cl, testSubjects)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestTopicSubjects(t *testing.T) {
	want := Subjects{StatusEvent: "whatsapp.status.events-value", MessageStatus: "whatsapp.status.current-value"}
	if testSubjects != want {
		t.Errorf("TopicSubjects = %+v, want %+v", testSubjects, want)
	}
	for _, bad := range []Subjects{{}, {StatusEvent: "a"}, {MessageStatus: "b"}, {StatusEvent: "a", MessageStatus: "a"}} {
		if err := bad.Validate(); !errors.Is(err, ErrSubjects) {
			t.Errorf("%+v.Validate() = %v, want ErrSubjects", bad, err)
		}
	}
	if err := want.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
}

// The registry's ids frame every record, and registering again (another
// instance, a restart) gets the same ids and adds no version.
func TestRegistryIDs(t *testing.T) {
	reg, cl, _ := newRegistry(t)
	// Another team's schema first, so that the registry's ids are not the
	// fixed ones by chance.
	if _, _, err := reg.RegisterSchema("payments-value", sr.Schema{Schema: `{"type":"record","name":"P","fields":[]}`}); err != nil {
		t.Fatal(err)
	}
	c := newRegistryCodec(t, cl)
	ids := c.IDs()
	for _, s := range []struct {
		subject string
		id      uint32
		schema  string
	}{{testSubjects.StatusEvent, ids.StatusEvent, StatusEventSchema()}, {testSubjects.MessageStatus, ids.MessageStatus, MessageStatusSchema()}} {
		got, ok := reg.GetSchema(s.subject, 1)
		if !ok {
			t.Fatalf("%s: nothing registered", s.subject)
		}
		if uint32(got.ID) != s.id || got.Schema.Schema != s.schema {
			t.Errorf("%s version 1: id %d, want the codec's %d (schema equal: %v)", s.subject, got.ID, s.id, got.Schema.Schema == s.schema)
		}
	}
	if ids.StatusEvent == StatusEventSchemaID || ids.MessageStatus == MessageStatusSchemaID {
		t.Errorf("IDs() = %+v: the fixed ids, not the registry's", ids)
	}

	ev := randStatusEventFull()
	b, err := c.AppendStatusEvent(nil, &ev)
	if err != nil {
		t.Fatal(err)
	}
	if b[0] != 0 || binary.BigEndian.Uint32(b[1:5]) != ids.StatusEvent {
		t.Errorf("StatusEvent header % x, want 00 and id %d", b[:5], ids.StatusEvent)
	}
	m := benchMessageStatus()
	mb, err := c.AppendMessageStatus(nil, &m)
	if err != nil {
		t.Fatal(err)
	}
	if mb[0] != 0 || binary.BigEndian.Uint32(mb[1:5]) != ids.MessageStatus {
		t.Errorf("MessageStatus header % x, want 00 and id %d", mb[:5], ids.MessageStatus)
	}

	// A second instance registers the same schemas: same ids, no new
	// version, and it reads what the first wrote.
	c2 := newRegistryCodec(t, cl)
	if c2.IDs() != ids {
		t.Errorf("second registration: IDs() = %+v, want %+v", c2.IDs(), ids)
	}
	for _, subject := range []string{testSubjects.StatusEvent, testSubjects.MessageStatus} {
		versions, err := cl.SubjectVersions(t.Context(), subject)
		if err != nil || !reflect.DeepEqual(versions, []int{1}) {
			t.Errorf("%s versions = %v, %v; want [1]", subject, versions, err)
		}
	}
	if got, err := c2.DecodeStatusEvent(b); err != nil || !reflect.DeepEqual(got, ev) {
		t.Errorf("second instance decodes: %v\n got %+v\nwant %+v", err, got, ev)
	}
	if got, err := c2.DecodeMessageStatus(mb); err != nil || !reflect.DeepEqual(got, m) {
		t.Errorf("second instance decodes: %v\n got %+v\nwant %+v", err, got, m)
	}
}

// The schema evolution test with a registry: the previous release
// registered v1 of each schema and wrote with it; this release registers the
// current schemas (the subjects' version 2; a real registry checks it
// against version 1 under its default BACKWARD level, srfake does not check)
// and reads the v1 records by looking their ids up, once each.
func TestRegistryEvolution(t *testing.T) {
	_, cl, lookups := newRegistry(t)
	ctx := t.Context()
	v1Event, v1Status := readSchema(t, "status_event.v1.avsc"), readSchema(t, "message_status.v1.avsc")
	v1EventID, err := cl.RegisterSchema(ctx, testSubjects.StatusEvent, sr.Schema{Schema: v1Event}, -1, -1)
	if err != nil {
		t.Fatal(err)
	}
	v1StatusID, err := cl.RegisterSchema(ctx, testSubjects.MessageStatus, sr.Schema{Schema: v1Status}, -1, -1)
	if err != nil {
		t.Fatal(err)
	}
	var oldEvents, oldStatuses [][]byte
	for _, tt := range v1StatusEvents() {
		oldEvents = append(oldEvents, encodeWith(t, v1Event, uint32(v1EventID), tt.native))
	}
	for _, tt := range v1MessageStatuses() {
		oldStatuses = append(oldStatuses, encodeWith(t, v1Status, uint32(v1StatusID), tt.native))
	}

	c := newRegistryCodec(t, cl)
	ids := c.IDs()
	if ids.StatusEvent == uint32(v1EventID) || ids.MessageStatus == uint32(v1StatusID) {
		t.Fatalf("current schemas got the v1 ids: %+v", ids)
	}
	for _, subject := range []string{testSubjects.StatusEvent, testSubjects.MessageStatus} {
		if versions, err := cl.SubjectVersions(ctx, subject); err != nil || !reflect.DeepEqual(versions, []int{1, 2}) {
			t.Errorf("%s versions = %v, %v; want [1 2]", subject, versions, err)
		}
	}

	// Many workers decode the old records at once: each id is looked up once.
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for range 8 {
		wg.Go(func() {
			for i, b := range oldEvents {
				got, err := c.DecodeStatusEvent(b)
				if err == nil && !reflect.DeepEqual(got, v1StatusEvents()[i].want) {
					err = errors.New("v1 StatusEvent decoded wrong")
				}
				if err != nil {
					errs <- err
					return
				}
			}
			for i, b := range oldStatuses {
				got, err := c.DecodeMessageStatusContext(ctx, b)
				if err == nil && !reflect.DeepEqual(got, v1MessageStatuses()[i].want) {
					err = errors.New("v1 MessageStatus decoded wrong")
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := lookups.Load(); n != 2 {
		t.Errorf("%d registry lookups, want 2 (one per earlier schema)", n)
	}
	// The current ids need no lookup at all.
	ev := randStatusEventFull()
	b, err := c.AppendStatusEvent(nil, &ev)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.DecodeStatusEvent(b); err != nil || lookups.Load() != 2 {
		t.Errorf("current id: err %v, %d lookups; want nil, 2", err, lookups.Load())
	}
}

func TestRegistryLookupErrors(t *testing.T) {
	reg, cl, lookups := newRegistry(t)
	c := newRegistryCodec(t, cl)
	ids := c.IDs()
	ev := randStatusEventFull()
	valid, err := c.AppendStatusEvent(nil, &ev)
	if err != nil {
		t.Fatal(err)
	}
	withID := func(id uint32) []byte {
		b := append([]byte(nil), valid...)
		binary.BigEndian.PutUint32(b[1:5], id)
		return b
	}
	// A JSON Schema, and an Avro schema of another record, in the registry.
	jsonID, _, err := reg.RegisterSchema("other-value", sr.Schema{Schema: `{"type":"object"}`, Type: sr.TypeJSON})
	if err != nil {
		t.Fatal(err)
	}
	otherID, _, err := reg.RegisterSchema("other2-value", sr.Schema{Schema: `{"type":"record","name":"Payment","fields":[]}`})
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		b       []byte
		want    []error
		lookups int64 // registry requests this decode makes
	}{
		{"id the registry lacks", withID(4242), []error{ErrSchemaID}, 1},
		{"lacked id again: asked again", withID(4242), []error{ErrSchemaID}, 1},
		{"a JSON Schema", withID(uint32(jsonID)), []error{ErrSchemaID}, 1},
		{"another record's schema", withID(uint32(otherID)), []error{ErrSchemaID, ErrIncompatible}, 1},
		{"another record's schema again", withID(uint32(otherID)), []error{ErrSchemaID, ErrIncompatible}, 0},
		{"the MessageStatus id", withID(ids.MessageStatus), []error{ErrSchemaID}, 0},
		{"id past int32", withID(1 << 31), []error{ErrSchemaID}, 0},
	}
	for _, tt := range tests {
		before := lookups.Load()
		_, err := c.DecodeStatusEvent(tt.b)
		for _, want := range tt.want {
			if !errors.Is(err, want) {
				t.Errorf("%s: err = %v, want %v", tt.name, err, want)
			}
		}
		if errors.Is(err, ErrRegistry) {
			t.Errorf("%s: err = %v: ErrRegistry, but the registry answered", tt.name, err)
		}
		if n := lookups.Load() - before; n != tt.lookups {
			t.Errorf("%s: %d lookups, want %d", tt.name, n, tt.lookups)
		}
	}
}

// A registry that cannot answer is ErrRegistry, not poison, and is not
// remembered: the next attempt asks again.
func TestRegistryUnavailable(t *testing.T) {
	reg, cl, lookups := newRegistry(t)
	v1Event := readSchema(t, "status_event.v1.avsc")
	v1ID, _, err := reg.RegisterSchema(testSubjects.StatusEvent, sr.Schema{Schema: v1Event})
	if err != nil {
		t.Fatal(err)
	}
	c := newRegistryCodec(t, cl)
	old := encodeWith(t, v1Event, uint32(v1ID), v1StatusEvents()[0].native)

	var failing atomic.Bool
	failing.Store(true)
	reg.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
		if !failing.Load() {
			return false
		}
		w.Header().Set("Content-Type", "application/vnd.schemaregistry.v1+json")
		w.WriteHeader(http.StatusInternalServerError)
		_ = json.NewEncoder(w).Encode(sr.ResponseError{ErrorCode: 50001, Message: "store error"})
		return true
	})
	for range 2 {
		_, err := c.DecodeStatusEvent(old)
		if !errors.Is(err, ErrRegistry) || errors.Is(err, ErrSchemaID) || errors.Is(err, ErrDecode) {
			t.Errorf("registry failing: err = %v, want ErrRegistry alone", err)
		}
		var re *sr.ResponseError
		if !errors.As(err, &re) || re.StatusCode != http.StatusInternalServerError {
			t.Errorf("registry failing: err = %v, want the *sr.ResponseError wrapped", err)
		}
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := c.DecodeStatusEventContext(ctx, old); !errors.Is(err, ErrRegistry) || !errors.Is(err, context.Canceled) {
		t.Errorf("canceled: err = %v, want ErrRegistry and context.Canceled", err)
	}

	failing.Store(false)
	before := lookups.Load()
	got, err := c.DecodeStatusEvent(old)
	if err != nil || !reflect.DeepEqual(got, v1StatusEvents()[0].want) {
		t.Errorf("registry back: %v\n got %+v\nwant %+v", err, got, v1StatusEvents()[0].want)
	}
	if n := lookups.Load() - before; n != 1 {
		t.Errorf("registry back: %d lookups, want 1", n)
	}
}

func TestNewRegistryCodecErrors(t *testing.T) {
	reg, cl, _ := newRegistry(t)
	if _, err := NewRegistryCodec(t.Context(), nil, testSubjects); !errors.Is(err, ErrRegistry) {
		t.Errorf("nil client: err = %v, want ErrRegistry", err)
	}
	if _, err := NewRegistryCodec(t.Context(), cl, Subjects{StatusEvent: "x"}); !errors.Is(err, ErrSubjects) {
		t.Errorf("bad subjects: err = %v, want ErrSubjects", err)
	}
	// The subject's compatibility refuses the schema (as a registry does for
	// a change that breaks BACKWARD): 409.
	reg.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != http.MethodPost || !strings.HasSuffix(r.URL.Path, "/versions") {
			return false
		}
		w.Header().Set("Content-Type", "application/vnd.schemaregistry.v1+json")
		w.WriteHeader(http.StatusConflict)
		_ = json.NewEncoder(w).Encode(sr.ResponseError{ErrorCode: 409, Message: "Schema being registered is incompatible with an earlier schema"})
		return true
	})
	_, err := NewRegistryCodec(t.Context(), cl, testSubjects)
	var re *sr.ResponseError
	if !errors.Is(err, ErrRegistry) || !errors.As(err, &re) || re.StatusCode != http.StatusConflict {
		t.Errorf("incompatible: err = %v, want ErrRegistry wrapping the 409", err)
	}
	if !strings.Contains(err.Error(), testSubjects.StatusEvent) {
		t.Errorf("err = %v, want the subject named", err)
	}
}
