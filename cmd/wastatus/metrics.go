package main

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wastatus/wastatus/edge"
	"github.com/wastatus/wastatus/processor"
	"github.com/wastatus/wastatus/state"
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
	received := prometheus.NewDesc("wastatus_processor_events_by_status_total",
		"Committed input events by status value (unknown ones included) and by the region of the edge that received them.",
		[]string{"status", "region"}, nil)
	failedAfter := prometheus.NewDesc("wastatus_processor_failed_after_delivered_total",
		"Failed events for a message already delivered, read or played.", nil, nil)
	dead := prometheus.NewDesc("wastatus_processor_dead_letters_total",
		"Records the processor wrote to the dead-letter topic.", nil, nil)
	emitted := prometheus.NewDesc("wastatus_processor_emitted_total",
		"Message states written to the current topic.", nil, nil)
	replayed := prometheus.NewDesc("wastatus_processor_replayed_total",
		"Events folded without emitting while a partition caught up with the group's committed offset.", nil, nil)
	txns := prometheus.NewDesc("wastatus_processor_transactions_total",
		"Transactions by result: committed (outputs and offsets together, then the store), aborted (by a rebalance; their records are read again).",
		[]string{"result"}, nil)
	restored := prometheus.NewDesc("wastatus_processor_restored_total",
		"States read from the current topic to restore partitions whose state was lost or could not be trusted.", nil, nil)
	missed := prometheus.NewDesc("wastatus_processor_missed_revokes_total",
		"Workers dropped because the group took their partition from this member and the revoke never reached the processor (franz-go's transactional session passes on none after the first until a transaction ends). A started one, until it was dropped, may have answered reads of its partition with states that no longer changed.", nil, nil)
	cancelled := prometheus.NewDesc("wastatus_processor_transaction_ends_cancelled_total",
		"Transaction ends cancelled, and their transactions aborted (they count as aborted too), because franz-go held them for a rebalance callback that waited for them, or past the transaction timeout.", nil, nil)
	lag := prometheus.NewDesc("wastatus_processor_consumer_lag",
		"Events of an owned partition after the last one polled.", []string{"partition"}, nil)
	preparing := prometheus.NewDesc("wastatus_processor_prepare_progress_ratio",
		"Progress (0 to 1) of a partition being restored from the current topic or caught up on the events topic.", []string{"partition"}, nil)
	latency := prometheus.NewDesc("wastatus_processor_end_to_end_seconds",
		"Time from an event's receipt at the edge to the commit of the transaction that emitted its message's state.", nil, nil)
	return statsCollector{
		descs: []*prometheus.Desc{events, received, failedAfter, dead, emitted, replayed, txns, restored, missed, cancelled, lag, preparing, latency},
		collect: func(ch chan<- prometheus.Metric, _ []*prometheus.Desc) {
			s := p.Stats()
			counter(ch, events, s.Advanced, "advanced")
			counter(ch, events, s.Filled, "filled")
			counter(ch, events, s.Stale, "stale")
			counter(ch, events, s.Duplicates, "duplicate")
			counter(ch, events, s.Unknown, "unknown")
			for k, n := range s.ByStatus {
				counter(ch, received, n, k.Status, k.Region)
			}
			counter(ch, failedAfter, s.FailedAfter)
			counter(ch, dead, s.DeadLetters)
			counter(ch, emitted, s.Emitted)
			counter(ch, replayed, s.Replayed)
			counter(ch, txns, s.Batches, "committed")
			counter(ch, txns, s.Aborted, "aborted")
			counter(ch, restored, s.Restored)
			counter(ch, missed, s.MissedRevokes)
			counter(ch, cancelled, s.EndsCancelled)
			for part, n := range s.Lag {
				ch <- prometheus.MustNewConstMetric(lag, prometheus.GaugeValue, float64(n), strconv.Itoa(int(part)))
			}
			for part, rt := range s.Preparing {
				ratio := 0.0
				if rt[1] > 0 {
					ratio = float64(rt[0]) / float64(rt[1])
				}
				ch <- prometheus.MustNewConstMetric(preparing, prometheus.GaugeValue, ratio, strconv.Itoa(int(part)))
			}
			ch <- prometheus.MustNewConstHistogram(latency, s.Latency.Count, s.Latency.Sum, s.Latency.Buckets)
		},
	}
}

func storeCollector(st *state.Store) prometheus.Collector {
	gauge := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("wastatus_store_"+name, help, nil, nil)
	}
	cacheSize := gauge("block_cache_bytes", "Bytes in Pebble's block cache.")
	cacheHits := gauge("block_cache_hits_total", "Block cache hits.")
	cacheMisses := gauge("block_cache_misses_total", "Block cache misses.")
	filterHits := gauge("bloom_filter_hits_total", "Point lookups a bloom filter answered without reading a block.")
	memtable := gauge("memtable_bytes", "Bytes allocated to memtables.")
	disk := gauge("disk_bytes", "Bytes on disk: tables, WAL, manifests.")
	readAmp := gauge("read_amplification", "Sublevels and levels a read may visit.")
	flushes := gauge("flushes_total", "Memtable flushes.")
	compactions := gauge("compactions_total", "Compactions.")
	diskFree := gauge("disk_free_bytes", "Free bytes on the store's file system; below --min-free-disk the store stops.")
	recentHits := gauge("recent_hits_total", "Lookups of stored messages found at the seq their recent commit left, without reading the index.")
	recentMisses := gauge("recent_misses_total", "Lookups of stored messages that read the index: none of the recent commits' seqs was theirs.")
	falsePositives := gauge("known_false_positives_total", "Lookups of messages a partition's filter of known messages may hold but the partition does not: each read the index in vain.")
	return statsCollector{
		descs: []*prometheus.Desc{cacheSize, cacheHits, cacheMisses, filterHits, memtable, disk, readAmp, flushes, compactions, diskFree, recentHits, recentMisses, falsePositives},
		collect: func(ch chan<- prometheus.Metric, _ []*prometheus.Desc) {
			s := st.Stats()
			g := func(d *prometheus.Desc, v float64) { ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v) }
			c := func(d *prometheus.Desc, v float64) {
				ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v)
			}
			g(cacheSize, float64(s.BlockCacheSize))
			c(cacheHits, float64(s.BlockCacheHits))
			c(cacheMisses, float64(s.BlockCacheMisses))
			c(filterHits, float64(s.FilterHits))
			g(memtable, float64(s.MemTableSize))
			g(disk, float64(s.DiskSpaceUsage))
			g(readAmp, float64(s.ReadAmp))
			c(flushes, float64(s.Flushes))
			c(compactions, float64(s.Compactions))
			c(recentHits, float64(s.RecentHits))
			c(recentMisses, float64(s.RecentMisses))
			c(falsePositives, float64(s.KnownFalsePositives))
			if s.DiskFreeBytes >= 0 {
				g(diskFree, float64(s.DiskFreeBytes))
			}
		},
	}
}

func edgeCollector(r *edge.Receiver) prometheus.Collector {
	requests := prometheus.NewDesc("wastatus_edge_requests_total",
		"Webhook requests by the answer given: verified, verify_refused (GET handshake); accepted (200), bad_request (400), unauthorized (401), timed_out (408), too_large (413), unsupported_media (415), rate_limited (429), unavailable (503).",
		[]string{"result"}, nil)
	records := prometheus.NewDesc("wastatus_edge_records_total",
		"Records Kafka acknowledged, by topic kind (events, dlq), and records that failed (error).",
		[]string{"kind"}, nil)
	skipped := prometheus.NewDesc("wastatus_edge_skipped_total",
		"Webhook content that is not a status: inbound messages and other change fields; rejected: status objects that were malformed and went to the dead-letter topic.",
		[]string{"what"}, nil)
	inFlight := prometheus.NewDesc("wastatus_edge_in_flight_requests", "POSTs being handled now.", nil, nil)
	clients := prometheus.NewDesc("wastatus_edge_rate_limited_clients", "Client addresses the rate limiter remembers now.", nil, nil)
	latency := prometheus.NewDesc("wastatus_edge_request_seconds", "How long webhook POSTs took to answer, whatever the answer.", nil, nil)
	return statsCollector{
		descs: []*prometheus.Desc{requests, records, skipped, inFlight, clients, latency},
		collect: func(ch chan<- prometheus.Metric, _ []*prometheus.Desc) {
			s := r.Stats()
			counter(ch, requests, s.Verified, "verified")
			counter(ch, requests, s.VerifyRefused, "verify_refused")
			counter(ch, requests, s.Accepted, "accepted")
			counter(ch, requests, s.BadRequest, "bad_request")
			counter(ch, requests, s.Unauthorized, "unauthorized")
			counter(ch, requests, s.TooLarge, "too_large")
			counter(ch, requests, s.Unavailable, "unavailable")
			counter(ch, requests, s.TimedOut, "timed_out")
			counter(ch, requests, s.Unsupported, "unsupported_media")
			counter(ch, requests, s.RateLimited, "rate_limited")
			counter(ch, records, s.Events, "events")
			counter(ch, records, s.DeadLetters, "dlq")
			counter(ch, records, s.ProduceErrors, "error")
			counter(ch, skipped, s.InboundMessages, "inbound_message")
			counter(ch, skipped, s.OtherChanges, "other_change")
			counter(ch, skipped, s.Rejected, "rejected")
			ch <- prometheus.MustNewConstMetric(inFlight, prometheus.GaugeValue, float64(s.InFlight))
			ch <- prometheus.MustNewConstMetric(clients, prometheus.GaugeValue, float64(s.Clients))
			ch <- prometheus.MustNewConstHistogram(latency, s.Latency.Count, s.Latency.Sum, s.Latency.Buckets)
		},
	}
}
