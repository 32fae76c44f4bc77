package schemas

import "sync/atomic"

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
// most of a decoded event's. Each field keeps the last internWays values
// it saw, safe for concurrent use without a lock: a value among them costs
// a few comparisons, any other the allocation it would have cost anyway,
// and takes a slot. Keeping one value a field was not enough: events from
// three regions, interleaved, missed two times in three. Unique values
// (wamids, recipient ids) are not interned.
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
		if p == nil { // slots fill in order: the rest are empty too
			slot = i
			break
		}
		if *p == string(b) { // the conversion does not allocate
			return *p
		}
	}
	s := string(b)
	if slot < 0 {
		// All taken: replace the one the value's bytes pick.
		slot = int((uint(len(b))*31 + uint(b[0]) + uint(b[len(b)-1])) % internWays)
	}
	ways[slot].Store(&s)
	return s
}
