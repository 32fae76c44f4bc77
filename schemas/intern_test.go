package schemas

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"sync"
	"testing"
	"unsafe"
)

// TestDecodeStatusEventNoRaw decodes random and sample events both ways:
// DecodeStatusEventNoRaw gives every field DecodeStatusEvent gives, except
// Raw, which it leaves nil.
func TestDecodeStatusEventNoRaw(t *testing.T) {
	c := newOracle(t)
	r := rand.New(rand.NewPCG(testSeed(t), 9))
	events := edgeStatusEvents()
	for range 1000 {
		events = append(events, randStatusEvent(r))
	}
	for _, body := range testdataBodies(t) {
		w, err := ParseWebhook(body, testRegion, testReceivedAt)
		if err != nil {
			t.Fatal(err)
		}
		events = append(events, w.Events...)
	}
	raws := 0
	for i := range events {
		b, err := c.AppendStatusEvent(nil, &events[i])
		if err != nil {
			t.Fatal(err)
		}
		full, err := c.DecodeStatusEvent(b)
		if err != nil {
			t.Fatal(err)
		}
		got, err := c.DecodeStatusEventNoRaw(context.Background(), b)
		if err != nil {
			t.Fatal(err)
		}
		if got.Raw != nil {
			t.Fatalf("event %d: Raw %q, want nil", i, got.Raw)
		}
		if full.Raw != nil {
			raws++
		}
		full.Raw = nil
		if !reflect.DeepEqual(got, full) {
			t.Fatalf("event %d:\n  no raw %+v\n    full %+v", i, got, full)
		}
	}
	if raws == 0 {
		t.Fatal("no event had a Raw: the test checks nothing")
	}
}

// TestInternerConcurrent decodes, from several goroutines at once through
// one Codec, events whose repeated fields (the interned ones) differ by
// goroutine and by event, so the interner's slots keep changing under each
// other: every decoded event must equal the one encoded. Run it with -race.
func TestInternerConcurrent(t *testing.T) {
	c := newOracle(t)
	const goroutines, each = 4, 2000
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				v := fmt.Sprintf("%d-%d", g, i%3) // repeats, and changes
				ev := StatusEvent{
					WAMID: fmt.Sprintf("wamid.%d.%d", g, i), Status: "sent", Timestamp: 1750030073,
					RecipientID: "16505551234", RecipientType: "group-" + v,
					Conversation:  &Conversation{ID: "c", OriginType: "origin-" + v},
					Pricing:       &Pricing{PricingModel: "model-" + v, Type: "type-" + v, Category: "category-" + v},
					PhoneNumberID: "phone-" + v, DisplayPhoneNumber: "display-" + v, WABAID: "waba-" + v,
					Region: "region-" + v, ReceivedAt: 1750030073000,
				}
				b, err := c.AppendStatusEvent(nil, &ev)
				if err != nil {
					errs <- err
					return
				}
				got, err := c.DecodeStatusEventNoRaw(context.Background(), b)
				if err != nil {
					errs <- err
					return
				}
				if !reflect.DeepEqual(got, ev) {
					errs <- fmt.Errorf("goroutine %d event %d:\n got %+v\nwant %+v", g, i, got, ev)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// TestInternerKeepsSeveralValues interleaves a field's values, as events
// from several regions do: each value decoded again is the string handed
// out the first time, for as many values as the interner keeps; another
// field keeps its own.
func TestInternerKeepsSeveralValues(t *testing.T) {
	in := new(interner)
	vals := make([]string, internWays)
	for i := range vals {
		vals[i] = fmt.Sprintf("region-%d", i)
	}
	first := make(map[string]string)
	for round := range 3 {
		for _, v := range vals {
			got := in.str(internRegion, []byte(v))
			if got != v {
				t.Fatalf("str(%q) = %q", v, got)
			}
			if round == 0 {
				first[v] = got
			} else if unsafe.StringData(got) != unsafe.StringData(first[v]) {
				t.Fatalf("round %d: %q decoded again is a new string, not the one kept", round, v)
			}
		}
	}
	// A ninth value takes one slot, the one its hash picks; the other
	// seven values stay.
	newest := in.str(internRegion, []byte("region-new"))
	if newest != "region-new" {
		t.Fatalf("str(region-new) = %q", newest)
	}
	kept := make(map[string]bool)
	for i := range in.vals[internRegion] {
		if p := in.vals[internRegion][i].Load(); p != nil {
			kept[*p] = true
		}
	}
	if !kept["region-new"] || len(kept) != internWays {
		t.Fatalf("after a ninth value the slots hold %v", kept)
	}
	if got := in.str(internWABAID, []byte("waba")); got != "waba" {
		t.Fatalf("another field: %q", got)
	}
	if got := in.str(internRegion, []byte("region-new")); unsafe.StringData(got) != unsafe.StringData(newest) {
		t.Fatal("another field's value took a region's slot")
	}
}
