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

// interner hands out one string for each of the values that most events
// repeat: a business's phone number id, display number and WABA id, the
// region, the recipient type, a conversation's origin type, the pricing
// model, type and category. Decoding them afresh was an allocation each,
// most of a decoded event's. Each field keeps the last value it saw, safe
// for concurrent use without a lock: a value equal to it costs a
// comparison, any other the allocation it would have cost anyway. Unique
// values (wamids, recipient ids) are not interned.
type interner struct {
	last [internFields]atomic.Pointer[string]
}

// str returns string(b), the same string each time field repeats its last
// value. A nil interner returns string(b).
func (in *interner) str(field internField, b []byte) string {
	if in == nil || len(b) == 0 {
		return string(b)
	}
	slot := &in.last[field]
	if p := slot.Load(); p != nil && *p == string(b) { // the conversion does not allocate
		return *p
	}
	s := string(b)
	slot.Store(&s)
	return s
}
