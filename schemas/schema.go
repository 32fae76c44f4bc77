package schemas

import _ "embed" // for the .avsc files

// Default schema ids used in the Confluent framing when no schema registry is
// configured (see IDs).
const (
	StatusEventSchemaID   uint32 = 1
	MessageStatusSchemaID uint32 = 2
)

var (
	//go:embed status_event.avsc
	statusEventAVSC string

	//go:embed message_status.avsc
	messageStatusAVSC string
)

// StatusEventSchema returns the Avro schema of StatusEvent (status_event.avsc),
// the value of the events topic, as the published JSON text. NewRegistryCodec
// registers it under the events topic's value subject.
func StatusEventSchema() string { return statusEventAVSC }

// MessageStatusSchema returns the Avro schema of MessageStatus
// (message_status.avsc), the value of the current-status topic, as the
// published JSON text.
func MessageStatusSchema() string { return messageStatusAVSC }
