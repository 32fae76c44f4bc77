package state

import (
	"bufio"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wastatus/wastatus/internal/gen"
	"github.com/wastatus/wastatus/schemas"
)

// benchSize reads a benchmark's size from env, or returns def.
func benchSize(b *testing.B, env string, def int) int {
	b.Helper()
	v := os.Getenv(env)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		b.Fatalf("%s: %v", env, err)
	}
	return n
}

// seqWAMID is the i-th of a sequence of distinct wamids shaped like Meta's.
func seqWAMID(dst []byte, i int) []byte {
	return fmt.Appendf(dst[:0], "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQz%012dQUFERjg0NDEz", i)
}

// BenchmarkLoad is a restore's store side without Kafka: the states of
// WASTATUS_BENCH_MESSAGES messages (default 200,000) restored into an empty
// partition in store batches of 20,000, as processor restores do. "load"
// uses a load batch (no lookups of messages it has not written); "batch" a
// plain one, as before load batches existed. It reports records per second.
//
//	WASTATUS_BENCH_MESSAGES=1000000 go test -run '^$' -bench Load -benchtime 1x ./state/
func BenchmarkLoad(b *testing.B) {
	n := benchSize(b, "WASTATUS_BENCH_MESSAGES", 200_000)
	tmpl := benchMessage(b)
	for _, mode := range []string{"load", "batch"} {
		b.Run(mode, func(b *testing.B) {
			var id []byte
			read := 0
			for b.Loop() {
				b.StopTimer()
				s, err := Open(b.TempDir(), Options{})
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				batch := s.NewBatch(0)
				if mode == "load" {
					batch.Close()
					if batch, err = s.NewLoadBatch(0, 1<<16); err != nil {
						b.Fatal(err)
					}
				}
				m := tmpl.Clone()
				for i := range n {
					id = seqWAMID(id, i)
					m.wamid = string(id)
					if err := batch.Restore(&m); err != nil {
						b.Fatal(err)
					}
					if (i+1)%20_000 == 0 {
						if err := batch.Commit(); err != nil {
							b.Fatal(err)
						}
					}
				}
				batch.SetNextOffset(int64(n))
				if err := batch.Commit(); err != nil {
					b.Fatal(err)
				}
				read += n
				batch.Close()
				b.StopTimer()
				if err := s.Close(); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			b.ReportMetric(float64(read)/b.Elapsed().Seconds(), "records/s")
		})
	}
}

// scaleParts is the number of partitions BenchmarkScale spreads messages
// over, as the processor's default topics do.
const scaleParts = 12

// BenchmarkScale measures what the number of messages in state costs: it
// folds three events (sent with conversation and pricing, delivered, read)
// for each of WASTATUS_BENCH_MESSAGES messages (default 1,000,000), over 12
// partitions, into a store on disk with default Options, as a rebuild does
// (with load batches, one partition after another), then times
// Batch.Apply on live-like traffic against it: 200,000 events, a third new
// messages and two thirds later statuses of random stored ones (so nearly
// every lookup misses the caches), a synced Commit of every partition's
// batch per 1,000 events, in parallel, as the processor's transactions do. It
// reports the per-event cost of that phase (all of it, and the Apply calls
// alone: the commits' fsyncs vary with the disk's other load), the time of
// a commit, and the process's peak RSS (VmHWM) over the whole run: compare
// 1M with 10M for flatness and the memory bound.
//
//	WASTATUS_BENCH_MESSAGES=10000000 go test -run '^$' -bench Scale -benchtime 1x -timeout 30m ./state/
func BenchmarkScale(b *testing.B) {
	n := benchSize(b, "WASTATUS_BENCH_MESSAGES", 1_000_000)
	pr, cv := benchAttrs()
	s, err := Open(b.TempDir(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()

	var (
		id  []byte
		e   schemas.StatusEvent
		off = make([]int64, scaleParts)
	)
	began := time.Now()
	for p := range int32(scaleParts) {
		batch, err := s.NewLoadBatch(p, n/scaleParts)
		if err != nil {
			b.Fatal(err)
		}
		for i := int(p); i < n; i += scaleParts {
			id = seqWAMID(id, i)
			wamid := string(id)
			for _, st := range []Status{Sent, Delivered, Read} {
				benchEvent(&e, wamid, st, pr, cv)
				if _, _, err := batch.Apply(&e, off[p]); err != nil {
					b.Fatal(err)
				}
				off[p]++
			}
			if (i/scaleParts+1)%10_000 == 0 {
				if err := batch.Commit(); err != nil {
					b.Fatal(err)
				}
			}
		}
		batch.SetNextOffset(off[p])
		if err := batch.Commit(); err != nil {
			b.Fatal(err)
		}
		batch.Close()
	}
	took := time.Since(began)
	b.Logf("loaded %d messages (%d events) in %v, %.0f events/s; disk %d MiB, peak RSS %d MiB",
		n, 3*n, took.Round(time.Millisecond), float64(3*n)/took.Seconds(), s.Stats().DiskSpaceUsage>>20, peakRSS(b)>>20)

	const events = 200_000
	r := rand.New(rand.NewPCG(4, 4))
	live := make([]*Batch, scaleParts)
	for p := range live {
		live[p] = s.NewBatch(int32(p))
		defer live[p].Close()
	}
	fresh := n
	var applying, committing time.Duration
	b.ResetTimer()
	for b.Loop() {
		chunk := time.Now()
		for k := range events {
			i := r.IntN(n)
			st := Status(1 + r.IntN(5))
			if k%3 == 0 {
				i, st = fresh, Sent
				fresh++
			}
			id = seqWAMID(id, i)
			benchEvent(&e, string(id), st, pr, cv)
			p := i % scaleParts
			if _, _, err := live[p].Apply(&e, off[p]); err != nil {
				b.Fatal(err)
			}
			off[p]++
			if (k+1)%1000 == 0 { // a transaction: every partition's batch
				began := time.Now()
				applying += began.Sub(chunk)
				commitAll(b, live, off)
				chunk = time.Now()
				committing += chunk.Sub(began)
			}
		}
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	st := s.Stats()
	b.Logf("after %d live events: Go heap in use %d MiB, Go sys %d MiB; block cache %d MiB (%d hits, %d misses), filter %d hits %d misses, read amp %d, memtables %d MiB; peak RSS %d MiB",
		events, ms.HeapInuse>>20, ms.Sys>>20, st.BlockCacheSize>>20, st.BlockCacheHits, st.BlockCacheMisses,
		st.FilterHits, st.FilterMisses, st.ReadAmp, st.MemTableSize>>20, peakRSS(b)>>20)
	if status, err := os.ReadFile("/proc/self/status"); err == nil {
		var mem []string
		for _, l := range strings.Split(string(status), "\n") {
			if strings.HasPrefix(l, "Rss") || strings.HasPrefix(l, "VmRSS") {
				mem = append(mem, strings.Join(strings.Fields(l), " "))
			}
		}
		b.Logf("memory now: %s", strings.Join(mem, ", "))
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*events), "ns/event")
	b.ReportMetric(float64(applying.Nanoseconds())/float64(b.N*events), "apply-ns/event")
	b.ReportMetric(float64(committing.Microseconds())/float64(b.N*events/1000)/1000, "commit-ms/txn")
	b.ReportMetric(float64(peakRSS(b))/(1<<20), "peak-RSS-MiB")
	b.ReportMetric(0, "ns/op")
}

// commitAll commits every batch with its next offset, in parallel as the
// processor does after a transaction, so that Pebble syncs its log once for
// all of them.
func commitAll(b *testing.B, batches []*Batch, off []int64) {
	b.Helper()
	var wg sync.WaitGroup
	errs := make([]error, len(batches))
	for p, l := range batches {
		l.SetNextOffset(off[p])
		wg.Go(func() { errs[p] = l.Commit() })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		b.Fatal(err)
	}
}

// peakRSS returns the process's peak resident set size (VmHWM) in bytes,
// or 0 where /proc is missing.
func peakRSS(b *testing.B) int64 {
	b.Helper()
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				b.Fatalf("VmHWM %q: %v", v, err)
			}
			return kb << 10
		}
	}
	return 0
}

// BenchmarkFoldStream folds the bench command's workload (internal/gen's
// Stream: 3 events per message over WASTATUS_BENCH_MESSAGES messages,
// default 1,000,000, with its delays, duplicates and late retries) into a
// store on disk with default Options, over 12 partitions by the wamid's
// hash, committing every partition's batch each 12,000 events (or
// WASTATUS_BENCH_COMMIT_EVENTS), as the processor's transactions do at
// full speed, without Kafka: a processor that keeps up with a lower rate
// commits smaller transactions, and then finds more of a message's
// events in the store rather than in its batch. It reports what the key
// layout costs as the store grows: the bytes Pebble's flushes and
// compactions wrote per event (of which to blob files: valueSeparation),
// the store's size on disk, the lookups the filters of known messages let
// through in vain and the block cache's misses per event, and the
// process's CPU time per event (user and system: Pebble compacts on its
// own goroutines), compared between 1M and 10M messages; and the share of
// what reached the bottom level that Pebble moved there without rewriting
// it.
//
//	WASTATUS_BENCH_MESSAGES=10000000 go test -run '^$' -bench FoldStream -benchtime 1x -timeout 30m ./state/
func BenchmarkFoldStream(b *testing.B) {
	messages := benchSize(b, "WASTATUS_BENCH_MESSAGES", 1_000_000)
	every := benchSize(b, "WASTATUS_BENCH_COMMIT_EVENTS", benchCommitEvents)
	events := 3 * messages
	for b.Loop() {
		s, err := Open(b.TempDir(), Options{})
		if err != nil {
			b.Fatal(err)
		}
		cpu0 := cpuTime(b)
		foldStream(b, s, benchStream(messages), make([]int64, scaleParts), events, every)
		cpu := cpuTime(b) - cpu0
		m := s.db.Metrics()
		var written, blobs uint64
		for _, l := range m.Levels {
			written += l.TableBytesFlushed + l.TableBytesCompacted
			blobs += l.BlobBytesCompacted // a flush's too
		}
		b.ReportMetric(float64(written+blobs)/float64(events), "written-B/event")
		b.ReportMetric(float64(blobs)/float64(events), "blob-B/event")
		// Of the bytes that reached the bottom level from above, the
		// share moved there whole rather than merged (levelMultiplier).
		if l := m.Levels[len(m.Levels)-1]; l.TableBytesIn+l.TableBytesMoved > 0 {
			b.ReportMetric(100*float64(l.TableBytesMoved)/float64(l.TableBytesIn+l.TableBytesMoved), "bottom-moved-%")
		}
		b.ReportMetric(float64(m.DiskSpaceUsage())/(1<<20), "disk-MiB")
		b.ReportMetric(float64(cpu.Nanoseconds())/float64(events), "cpu-ns/event")
		st := s.Stats()
		if st.RecentHits+st.RecentMisses > 0 {
			b.ReportMetric(100*float64(st.RecentHits)/float64(st.RecentHits+st.RecentMisses), "recent-hit-%")
		}
		b.ReportMetric(float64(st.KnownFalsePositives)/float64(events), "false-pos/event")
		b.ReportMetric(float64(st.BlockCacheMisses)/float64(events), "cache-misses/event")
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(0, "ns/op")
}

// BenchmarkFoldRestarted is a processor restarted on its store: it folds
// the first half of BenchmarkFoldStream's events, closes and reopens the
// store, and folds the second half, about half of whose messages are new.
// It reports the CPU time per event of the second half and the time the
// reopened store took to read its partitions' index keys into filters of
// known messages, with that filter (format 2) and without it (how format 1
// restarted: every message looked up).
//
//	WASTATUS_BENCH_MESSAGES=1000000 go test -run '^$' -bench FoldRestarted -benchtime 1x ./state/
func BenchmarkFoldRestarted(b *testing.B) {
	messages := benchSize(b, "WASTATUS_BENCH_MESSAGES", 1_000_000)
	half := 3 * messages / 2
	for _, learn := range []bool{true, false} {
		name := "filter"
		if !learn {
			name = "no-filter"
		}
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				dir := b.TempDir()
				st, off := benchStream(messages), make([]int64, scaleParts)
				s, err := Open(dir, Options{})
				if err != nil {
					b.Fatal(err)
				}
				foldStream(b, s, st, off, half, benchCommitEvents)
				if err := s.Close(); err != nil {
					b.Fatal(err)
				}
				if s, err = Open(dir, Options{}); err != nil {
					b.Fatal(err)
				}
				cpu0, began := cpuTime(b), time.Now()
				for p := range int32(scaleParts) {
					if k := s.knownKeys(p, learn); (k.f != nil) != learn {
						b.Fatalf("partition %d: filter %v, want %v", p, k.f != nil, learn)
					}
				}
				learnt := time.Since(began)
				foldStream(b, s, st, off, half, benchCommitEvents)
				cpu := cpuTime(b) - cpu0
				b.ReportMetric(float64(cpu.Nanoseconds())/float64(half), "cpu-ns/event")
				b.ReportMetric(float64(learnt.Milliseconds()), "learn-ms")
				if err := s.Close(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(0, "ns/op")
		})
	}
}

// benchStream is the bench command's workload over messages messages.
func benchStream(messages int) *gen.Stream {
	return gen.NewStream(gen.StreamOptions{Messages: messages, Events: 3 * messages, DupRate: 0.2, LateRate: 0.1, GroupRate: 0.05, Seed: 7})
}

// benchCommitEvents is how many events the fold benchmarks fold between
// commits by default: the processor's transactions at full speed.
const benchCommitEvents = 12_000

// foldStream folds st's next n events into s over scaleParts partitions
// by the wamid's hash, from the partitions' offsets off, committing every
// partition's batch each every events and at the end.
func foldStream(b *testing.B, s *Store, st *gen.Stream, off []int64, n, every int) {
	b.Helper()
	batches := make([]*Batch, scaleParts)
	for p := range batches {
		batches[p] = s.NewBatch(int32(p))
		defer batches[p].Close()
	}
	var e schemas.StatusEvent
	for k := range n {
		a, ok := st.Next()
		if !ok {
			break
		}
		e = schemas.StatusEvent{WAMID: a.WAMID, Status: a.Status.Status, Timestamp: a.Timestamp,
			RecipientID: a.RecipientID, Region: a.Region}
		p := wamidHash(a.WAMID) % scaleParts
		if _, _, err := batches[p].Apply(&e, off[p]); err != nil {
			b.Fatal(err)
		}
		off[p]++
		if (k+1)%every == 0 {
			commitAll(b, batches, off)
		}
	}
	commitAll(b, batches, off)
}

// cpuTime returns the process's CPU time so far, user and system.
func cpuTime(b *testing.B) time.Duration {
	b.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
