package schemas

import (
	"hash/fnv"
	"sync/atomic"
)

// internField names the fields whose values most events repeat.
type internField int

const (
	internRegion internField = iota
	internRecipientType
	internPhoneNumberID
	internDisplayPhoneNumber
	internWABAID
	internOriginType
	internPricingModel
	internPricingType
	internPricingCategory
	internFields
)

// internWays is how many values of each field the interner keeps: more
// than the regions one deployment runs in, the phone numbers most
// businesses send from, the pricing categories.
const internWays = 8

// interner hands out one string for each of the values that most events
// repeat: a business's phone number id, display number and WABA id, the
// region, the recipient type, a conversation's origin type, the pricing
// model, type and category. Decoding them afresh was an allocation each,
// most of a decoded event's. Each field keeps internWays values, safe for
// concurrent use without a lock: the first ones it sees, and once all
// slots are taken, a value not among them replaces the one in the slot
// its hash picks, so that values seen again and again come to stay. A
// kept value costs a few comparisons, any other the allocation it would
// have cost anyway. One value a field was not enough: events from three
// regions, interleaved at random as a partition reads them, missed it two
// times in three. Unique values (wamids, recipient ids) are not interned.
type interner struct {
	vals [internFields][internWays]atomic.Pointer[string]
}

// str returns string(b), the same string each time field repeats one of
// its kept values. A nil interner returns string(b).
func (in *interner) str(field internField, b []byte) string {
	if in == nil || len(b) == 0 {
		return string(b)
	}
	ways := &in.vals[field]
	slot := -1
	for i := range ways {
		p := ways[i].Load()
		if p == nil { // slots fill in order and never empty: the rest are empty too
			slot = i
			break
		}
		if *p == string(b) { // the conversion does not allocate
			return *p
		}
	}
	s := string(b)
	if slot < 0 {
		// Every byte counts, so that values differing in one
		// character (us-east-1, us-west-1) pick different slots more
		// often than not.
		h := fnv.New32a()
		_, _ = h.Write(b) // never fails
		slot = int(h.Sum32() % internWays)
	}
	ways[slot].Store(&s)
	return s
}
