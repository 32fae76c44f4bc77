package schemas

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"

	"github.com/twmb/franz-go/pkg/sr"
)

// Subjects names the schema-registry subjects the two value schemas are
// registered under. TopicSubjects gives Confluent's default naming.
type Subjects struct {
	StatusEvent   string // the events topic's value subject, e.g. "whatsapp.status.events-value"
	MessageStatus string // the current-status topic's, e.g. "whatsapp.status.current-value"
}

// TopicSubjects returns the subjects of Confluent's default subject naming
// (TopicNameStrategy): the topic's name followed by "-value".
func TopicSubjects(eventsTopic, currentTopic string) Subjects {
	return Subjects{StatusEvent: eventsTopic + "-value", MessageStatus: currentTopic + "-value"}
}

// Validate returns an error wrapping ErrSubjects when a subject is empty or
// both are the same.
func (s Subjects) Validate() error {
	switch {
	case s.StatusEvent == "" || s.MessageStatus == "":
		return fmt.Errorf("%w: empty subject in %+v", ErrSubjects, s)
	case s.StatusEvent == s.MessageStatus:
		return fmt.Errorf("%w: both schemas under %q", ErrSubjects, s.StatusEvent)
	}
	return nil
}

// NewRegistryCodec registers the embedded schemas (StatusEventSchema and
// MessageStatusSchema) with the schema registry cl under subjects, and
// returns a Codec that writes with the ids the registry assigned and looks
// up in the registry any other id it is asked to decode (the schema an
// earlier version wrote with), by sr.Client.SchemaByID, once per id.
//
// Registering is idempotent: a schema the subject already has keeps its id
// and version, so every instance, and every restart, gets the same ids. A
// changed schema becomes the subject's next version, if the subject's
// compatibility level accepts it (the registry's default, BACKWARD, does for
// a field added with a default).
//
// ctx bounds the registrations only. It fails with ErrSubjects, or with
// ErrRegistry wrapping the sr client's error (an *sr.ResponseError when the
// registry answered, for example 409 for a schema incompatible with the
// subject's earlier versions).
func NewRegistryCodec(ctx context.Context, cl *sr.Client, subjects Subjects) (*Codec, error) {
	if cl == nil {
		return nil, fmt.Errorf("%w: nil *sr.Client", ErrRegistry)
	}
	if err := subjects.Validate(); err != nil {
		return nil, err
	}
	ev, err := register(ctx, cl, subjects.StatusEvent, statusEventAVSC)
	if err != nil {
		return nil, err
	}
	ms, err := register(ctx, cl, subjects.MessageStatus, messageStatusAVSC)
	if err != nil {
		return nil, err
	}
	c, err := NewCodec(IDs{StatusEvent: ev, MessageStatus: ms})
	if err != nil {
		return nil, err
	}
	c.registry = cl
	return c, nil
}

// register registers schema under subject and returns its id.
func register(ctx context.Context, cl *sr.Client, subject, schema string) (uint32, error) {
	id, err := cl.RegisterSchema(ctx, subject, sr.Schema{Schema: schema, Type: sr.TypeAvro}, -1, -1)
	if err != nil {
		return 0, fmt.Errorf("%w: register %s: %w", ErrRegistry, subject, err)
	}
	if id <= 0 || id > math.MaxInt32 {
		return 0, fmt.Errorf("%w: register %s: the registry answered id %d", ErrRegistry, subject, id)
	}
	return uint32(id), nil
}

// lookup asks the registry for the schema of key.id and builds what reads it
// as key.kind. Concurrent lookups of one key share one request. The answer is
// cached when it is a schema, readable or not (an id's schema never changes).
// It is not when the registry lacks the id (ErrSchemaID: it may be a replica
// that has not caught up yet) or could not answer (ErrRegistry): the next
// record with that id asks again.
func (c *Codec) lookup(ctx context.Context, key writerKey) (*writerSchema, error) {
	v, err, _ := c.lookups.Do(key.kind.String()+"/"+strconv.FormatUint(uint64(key.id), 10), func() (any, error) {
		c.mu.RLock()
		w := c.writers[key] // a lookup that finished while this one waited
		c.mu.RUnlock()
		if w != nil {
			return w, nil
		}
		s, err := c.registry.SchemaByID(ctx, int(key.id))
		var re *sr.ResponseError
		switch {
		case errors.As(err, &re) && re.ErrorCode == sr.ErrSchemaNotFound.Code:
			return nil, fmt.Errorf("%w: %d is not in the schema registry: %w", ErrSchemaID, key.id, err)
		case err != nil:
			return nil, fmt.Errorf("%w: look up schema id %d: %w", ErrRegistry, key.id, err)
		case s.Type != sr.TypeAvro:
			w = &writerSchema{err: fmt.Errorf("%w: %d is a %s schema, not Avro", ErrSchemaID, key.id, s.Type)}
		case len(s.References) > 0:
			w = &writerSchema{err: fmt.Errorf("%w: %d has schema references, which wastatus does not follow", ErrSchemaID, key.id)}
		default:
			if w, err = c.compileWriter(key.kind, s.Schema); err != nil {
				w = &writerSchema{err: fmt.Errorf("%w: registry schema %d: %w", ErrSchemaID, key.id, err)}
			}
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		if old := c.writers[key]; old != nil {
			return old, nil // added meanwhile with AddWriterSchema
		}
		c.writers[key] = w
		return w, nil
	})
	if err != nil {
		return nil, err
	}
	w := v.(*writerSchema)
	if w.err != nil {
		return nil, w.err
	}
	return w, nil
}
