// Package state keeps all of materializer's durable state in one Pebble
// database: per-key compaction state, session and retention timers, the
// per-partition consumed cursors with the recent batches that make
// redelivery exact, counters, staging-file records and the delivery outbox.
//
// Every processing step of the engine writes one Batch and commits it synced;
// nothing else may make the Nakadi cursor move.
//
// This is the bottom layer: it imports nothing from pipeline/. Key states,
// keys and events are bytes to it; their meaning is the engine's.
//
// # Key layout
//
// Every key starts with a one-byte tag. slot is a 4-byte big-endian id of an
// (event type, partition) pair, allocated once and kept forever; key is the
// encoded composite partition key (the engine's; to this package, bytes); deadline is unix
// nanoseconds, 8 bytes big-endian; fileID is "event_type\x00table\x00kind\x00partition".
//
//	'V'                             format version (uvarint)
//	'W'                             writer id of this data dir
//	'E' event_type                  fingerprint of the config that shaped the event type's state
//	'I' event_type 0x00 partition   slot id
//	'i'                             next slot id
//	'M' slot key                    the key's compaction state (encoded by the engine)
//	'S' slot deadline key           an open session, filed under its deadline: the engine's
//	                                key state and best event offset, then the best event
//	'X' slot deadline key           retention timer: forget hi(k) (checked against 'M' when due)
//	'C' slot                        consumed cursor: applied offset, ring bounds
//	'R' slot seq                    recent durable batch: end offset, event count, first eid
//	'N' event_type                  counters (docs/design.md)
//	'Q' fileID                      next file sequence number
//	'G' fileID                      the open staging file (at most one per fileID)
//	'O' fileID seq                  outbox: a sealed file waiting for upload and notice
//
// Sessions and timers are ordered by deadline within a slot, so closing due
// sessions is one range scan per slot that reads their best events in
// passing — never a point read per session, never a full scan. A session's
// record is filed lazily: an event for an open session rewrites the record
// where it is (the best event changes anyway); when it is due and the
// session's real deadline is later, it is moved (one move per gap instead
// of one per event). Format 1 kept the best event ('B') and a session timer
// ('T') apart; UpgradeFrom1 turns them into 'S' records.
package state
