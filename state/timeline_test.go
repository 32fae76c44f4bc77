package state

import (
	"slices"
	"testing"

	"github.com/wastatus/wastatus/schemas"
)

func kinds(as []Anomaly) []string {
	var ks []string
	for _, a := range as {
		ks = append(ks, a.Kind)
	}
	return ks
}

func TestExplain(t *testing.T) {
	for _, tc := range []struct {
		name    string
		history []HistoryEntry
		view    schemas.MessageStatus
		want    []string
	}{
		{
			name: "in order, nothing to say",
			history: []HistoryEntry{
				{Offset: 1, Status: "sent", Timestamp: 10, ReceivedAt: 10_500, Outcome: Advanced},
				{Offset: 2, Status: "delivered", Timestamp: 10, ReceivedAt: 11_000, Outcome: Advanced},
				{Offset: 3, Status: "read", Timestamp: 40, ReceivedAt: 41_000, Outcome: Advanced},
			},
			view: schemas.MessageStatus{Status: "read", SentAt: 10, DeliveredAt: 10, ReadAt: 40},
		},
		{
			name: "the reference article's test: read, then delivered",
			history: []HistoryEntry{
				{Offset: 1, Status: "read", Timestamp: 40, Outcome: Advanced},
				{Offset: 2, Status: "delivered", Timestamp: 10, Outcome: Filled},
			},
			view: schemas.MessageStatus{Status: "read", DeliveredAt: 10, ReadAt: 40},
			want: []string{AnomalyOutOfOrder, AnomalyNeverSent},
		},
		{
			name: "read without delivered, a duplicate, and a retry a day late",
			history: []HistoryEntry{
				{Offset: 1, Status: "sent", Timestamp: 10, Outcome: Advanced},
				{Offset: 2, Status: "read", Timestamp: 40, Outcome: Advanced},
				{Offset: 3, Status: "read", Timestamp: 40, ReceivedAt: (40 + 86400) * 1000, Outcome: Duplicate},
			},
			view: schemas.MessageStatus{Status: "read", SentAt: 10, ReadAt: 40},
			want: []string{AnomalyDuplicate, AnomalyLate, AnomalyReadWithoutDelivered},
		},
		{
			name: "failed after delivered is not out of order",
			history: []HistoryEntry{
				{Offset: 1, Status: "sent", Timestamp: 10, Outcome: Advanced},
				{Offset: 2, Status: "delivered", Timestamp: 11, Outcome: Advanced},
				{Offset: 3, Status: "failed", Timestamp: 12, Outcome: Advanced},
			},
			view: schemas.MessageStatus{Status: "failed", SentAt: 10, DeliveredAt: 11, FailedAt: 12},
			want: []string{AnomalyFailedAfterDelivered},
		},
		{
			name: "group participants are ordered each on their own",
			history: []HistoryEntry{
				{Offset: 1, Status: "read", Timestamp: 40, Participant: "a", Outcome: Advanced},
				{Offset: 2, Status: "delivered", Timestamp: 20, Participant: "b", Outcome: Advanced},
				{Offset: 3, Status: "sent", Timestamp: 5, Participant: "a", Outcome: Filled},
			},
			view: schemas.MessageStatus{Status: "read", SentAt: 5, DeliveredAt: 20, ReadAt: 40},
			want: []string{AnomalyOutOfOrder},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := kinds(Explain(tc.history, &tc.view))
			if !slices.Equal(got, tc.want) {
				t.Fatalf("Explain = %v, want %v", got, tc.want)
			}
		})
	}
}
