package main

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/wastatus/wastatus/edge"
	"github.com/wastatus/wastatus/processor"
)

// statsCollector turns a Stats snapshot into Prometheus counters at scrape
// time, so the library packages need no Prometheus import and no globals.
type statsCollector struct {
	descs   []*prometheus.Desc
	collect func(ch chan<- prometheus.Metric, descs []*prometheus.Desc)
}

func (c statsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

func (c statsCollector) Collect(ch chan<- prometheus.Metric) { c.collect(ch, c.descs) }

func counter(ch chan<- prometheus.Metric, d *prometheus.Desc, v uint64, labels ...string) {
	ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
}

func processorCollector(p *processor.Processor) prometheus.Collector {
	events := prometheus.NewDesc("wastatus_processor_events_total",
		"Input events by what folding them did: advanced, filled (earlier timestamp or new attribute), stale (arrived after a newer status), duplicate, unknown (status not known, dead-lettered).",
		[]string{"outcome"}, nil)
	failedAfter := prometheus.NewDesc("wastatus_processor_failed_after_delivered_total",
		"Failed events for a message already delivered, read or played.", nil, nil)
	dead := prometheus.NewDesc("wastatus_processor_dead_letters_total",
		"Records the processor wrote to the dead-letter topic.", nil, nil)
	emitted := prometheus.NewDesc("wastatus_processor_emitted_total",
		"Message states written to the current topic.", nil, nil)
	replayed := prometheus.NewDesc("wastatus_processor_replayed_total",
		"Events folded without emitting while a partition caught up with the group's committed offset.", nil, nil)
	batches := prometheus.NewDesc("wastatus_processor_transactions_total",
		"Transactions by result: committed (outputs and offsets together, then the store), aborted (by a rebalance; their records are read again).",
		[]string{"result"}, nil)
	restored := prometheus.NewDesc("wastatus_processor_restored_total",
		"States read from the current topic to restore partitions whose state was lost or could not be trusted.", nil, nil)
	return statsCollector{
		descs: []*prometheus.Desc{events, failedAfter, dead, emitted, replayed, batches, restored},
		collect: func(ch chan<- prometheus.Metric, _ []*prometheus.Desc) {
			s := p.Stats()
			counter(ch, events, s.Advanced, "advanced")
			counter(ch, events, s.Filled, "filled")
			counter(ch, events, s.Stale, "stale")
			counter(ch, events, s.Duplicates, "duplicate")
			counter(ch, events, s.Unknown, "unknown")
			counter(ch, replayed, s.Replayed)
			counter(ch, failedAfter, s.FailedAfter)
			counter(ch, dead, s.DeadLetters)
			counter(ch, emitted, s.Emitted)
			counter(ch, batches, s.Batches, "committed")
			counter(ch, batches, s.Aborted, "aborted")
			counter(ch, restored, s.Restored)
		},
	}
}

func edgeCollector(r *edge.Receiver) prometheus.Collector {
	requests := prometheus.NewDesc("wastatus_edge_requests_total",
		"Webhook requests by the answer given: verified, verify_refused (GET handshake); accepted (200), bad_request (400), unauthorized (401), too_large (413), unavailable (503).",
		[]string{"result"}, nil)
	records := prometheus.NewDesc("wastatus_edge_records_total",
		"Records Kafka acknowledged, by topic kind (events, dlq), and records that failed (error).",
		[]string{"kind"}, nil)
	skipped := prometheus.NewDesc("wastatus_edge_skipped_total",
		"Webhook content that is not a status: inbound messages and other change fields; rejected: status objects that were malformed and went to the dead-letter topic.",
		[]string{"what"}, nil)
	inFlight := prometheus.NewDesc("wastatus_edge_in_flight_requests", "POSTs being handled now.", nil, nil)
	return statsCollector{
		descs: []*prometheus.Desc{requests, records, skipped, inFlight},
		collect: func(ch chan<- prometheus.Metric, _ []*prometheus.Desc) {
			s := r.Stats()
			counter(ch, requests, s.Verified, "verified")
			counter(ch, requests, s.VerifyRefused, "verify_refused")
			counter(ch, requests, s.Accepted, "accepted")
			counter(ch, requests, s.BadRequest, "bad_request")
			counter(ch, requests, s.Unauthorized, "unauthorized")
			counter(ch, requests, s.TooLarge, "too_large")
			counter(ch, requests, s.Unavailable, "unavailable")
			counter(ch, records, s.Events, "events")
			counter(ch, records, s.DeadLetters, "dlq")
			counter(ch, records, s.ProduceErrors, "error")
			counter(ch, skipped, s.InboundMessages, "inbound_message")
			counter(ch, skipped, s.OtherChanges, "other_change")
			counter(ch, skipped, s.Rejected, "rejected")
			ch <- prometheus.MustNewConstMetric(inFlight, prometheus.GaugeValue, float64(s.InFlight))
		},
	}
}
