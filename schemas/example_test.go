package schemas_test

import (
	"context"
	"fmt"
	"log"

	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"

	"github.com/wastatus/wastatus/schemas"
)

// An edge parses a webhook body, sends each event to the events topic in
// Avro, and each rejected status to the dead-letter topic as it came.
func ExampleParseWebhook() {
	body := []byte(`{
  "object": "whatsapp_business_account",
  "entry": [{
    "id": "102290129340398",
    "changes": [{
      "field": "messages",
      "value": {
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
        "statuses": [
          {"id": "wamid.A", "status": "delivered", "timestamp": "1750030073", "recipient_id": "16505551234"},
          {"id": "wamid.A", "status": "read", "timestamp": 1750030075, "recipient_id": "16505551234"},
          {"id": "wamid.B", "status": "sent", "timestamp": "1750030073000"}
        ]
      }
    }]
  }]
}`)
	const receivedAt = 1750030076123 // the edge's clock, unix ms
	w, err := schemas.ParseWebhook(body, "eu-west-1", receivedAt)
	if err != nil {
		log.Fatal(err) // the edge answers 400
	}
	for _, ev := range w.Events {
		fmt.Println(ev.WAMID, ev.Status, ev.Timestamp, ev.WABAID, ev.Region)
	}
	for _, r := range w.Rejected {
		fmt.Printf("rejected %s: %v\n%s\n", r.WAMID, r.Err, r.Raw)
	}
	// Output:
	// wamid.A delivered 1750030073 102290129340398 eu-west-1
	// wamid.A read 1750030075 102290129340398 eu-west-1
	// rejected wamid.B: schemas: status timestamp looks like milliseconds: 1750030073000
	// {"id": "wamid.B", "status": "sent", "timestamp": "1750030073000"}
}

// Values travel in the Confluent wire format: byte 0, the schema id, Avro.
func ExampleCodec() {
	codec, err := schemas.NewCodec(schemas.IDs{}) // default ids: no schema registry
	if err != nil {
		log.Fatal(err)
	}
	ev := schemas.StatusEvent{
		WAMID:      "wamid.A",
		Status:     "read",
		Timestamp:  1750030075,
		Region:     "eu-west-1",
		ReceivedAt: 1750030076123,
		Raw:        []byte(`{"id":"wamid.A","status":"read","timestamp":"1750030075"}`),
	}
	value, err := codec.AppendStatusEvent(nil, &ev)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("header % x\n", value[:5])

	got, err := codec.DecodeStatusEvent(value)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(got.WAMID, got.Status, got.Timestamp, got.RecipientID == "", got.Conversation == nil)

	_, err = codec.DecodeMessageStatus(value)
	fmt.Println(err)
	// Output:
	// header 00 00 00 00 01
	// wamid.A read 1750030075 true true
	// schemas: unexpected schema id: 1 is the StatusEvent schema, not a MessageStatus one
}

// Without a registry, NewCodec takes the ids to write with; zero fields
// are the fixed ids.
func ExampleNewCodec() {
	codec, err := schemas.NewCodec(schemas.IDs{StatusEvent: 100017, MessageStatus: 100018})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%+v\n", codec.IDs())
	// Output: {StatusEvent:100017 MessageStatus:100018}
}

// With a schema registry, NewRegistryCodec registers the embedded schemas
// and writes with the ids the registry assigned; a record framed with
// another id (an earlier version of a schema) is read by looking that id up.
func ExampleNewRegistryCodec() {
	reg := srfake.New() // an in-memory registry, for the example
	defer reg.Close()
	// Another team's schema is there already.
	reg.SeedSchema("payments-value", 1, 100, sr.Schema{Schema: `{"type":"record","name":"Payment","fields":[]}`})

	cl, err := sr.NewClient(sr.URLs(reg.URL())) // e.g. sr.URLs("http://schema-registry:8081")
	if err != nil {
		log.Fatal(err)
	}
	subjects := schemas.TopicSubjects("whatsapp.status.events", "whatsapp.status.current")
	codec, err := schemas.NewRegistryCodec(context.Background(), cl, subjects)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%+v\n", codec.IDs())

	// Another instance, or a restart, registers again: the same ids.
	again, err := schemas.NewRegistryCodec(context.Background(), cl, subjects)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(again.IDs() == codec.IDs())

	value, err := codec.AppendStatusEvent(nil, &schemas.StatusEvent{WAMID: "wamid.A", Status: "read", Region: "eu-west-1"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("header % x\n", value[:5])
	// Output:
	// {StatusEvent:101 MessageStatus:102}
	// true
	// header 00 00 00 00 65
}
