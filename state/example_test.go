package state_test

import (
	"fmt"
	"log"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/wastatus/wastatus/schemas"
	"github.com/wastatus/wastatus/state"
)

// Events arrive out of order, duplicated, with steps skipped: the fold does
// not care.
func ExampleMessage_Apply() {
	const id = "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUFERjg0NDEzNDdFODU3MUMxMAA="
	events := []schemas.StatusEvent{
		{WAMID: id, Status: "read", Timestamp: 1750030080},
		{WAMID: id, Status: "sent", Timestamp: 1750030073, RecipientID: "16505551234",
			Pricing: &schemas.Pricing{PricingModel: "PMP", Category: "marketing"}},
		{WAMID: id, Status: "read", Timestamp: 1750030080}, // Meta's retry
		{WAMID: id, Status: "delivered", Timestamp: 1750030075, RecipientUserID: "US.13491208655302741918"},
	}
	var m state.Message
	for i := range events {
		out, err := m.Apply(&events[i], state.FailedWins)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%-9s -> %s\n", events[i].Status, out)
	}
	v := m.View(state.FailedWins)
	fmt.Println("status:", v.Status)
	fmt.Println("sent, delivered, read at:", v.SentAt, v.DeliveredAt, v.ReadAt)
	fmt.Println("recipient:", v.RecipientID, v.RecipientUserID)
	fmt.Println("pricing:", v.Pricing.Category)
	// Output:
	// read      -> advanced
	// sent      -> filled
	// read      -> duplicate
	// delivered -> filled
	// status: read
	// sent, delivered, read at: 1750030073 1750030075 1750030080
	// recipient: 16505551234 US.13491208655302741918
	// pricing: marketing
}

// A processor's partition worker: one Batch per polled batch, Commit after
// the Kafka transaction, state and offset together.
func ExampleStore() {
	s, err := state.Open("state", state.Options{FS: vfs.NewMem()}) // nil FS: disk
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	const partition = 7
	polled := []schemas.StatusEvent{
		{WAMID: "wamid.A", Status: "sent", Timestamp: 1750030073, Region: "eu"},
		{WAMID: "wamid.B", Status: "delivered", Timestamp: 1750030074, Region: "us"},
		{WAMID: "wamid.A", Status: "read", Timestamp: 1750030079, Region: "us"},
	}
	b := s.NewBatch(partition)
	defer b.Close()
	for i := range polled {
		if _, _, err := b.Apply(&polled[i], int64(100+i)); err != nil {
			log.Fatal(err) // an unknown status would go to the dead-letter topic instead
		}
	}
	for _, m := range b.Changed() {
		v := m.View(s.Policy())
		fmt.Println("emit", v.WAMID, v.Status) // the record for the current topic
	}
	b.SetNextOffset(103)
	if err := b.Commit(); err != nil {
		log.Fatal(err)
	}

	next, _, _ := s.NextOffset(partition)
	m, _, _ := s.Get(partition, "wamid.A")
	history, _ := s.History(partition, "wamid.A")
	fmt.Println("next offset", next, "wamid.A is", m.Status(s.Policy()))
	for _, h := range history {
		fmt.Println(h.Offset, h.Status, h.Region, h.Outcome)
	}
	// Output:
	// emit wamid.A read
	// emit wamid.B delivered
	// next offset 103 wamid.A is read
	// 100 sent eu advanced
	// 102 read us advanced
}
