// Package e2e holds the end-to-end scenarios: edges, a processor and a
// reader of the current topic, wired together over Kafka. They run against
// franz-go's in-process kfake by default and against a real broker when
// WASTATUS_TEST_BROKERS is set (see internal/kafkatest and scripts/kafka).
package e2e
