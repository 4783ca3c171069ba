// Package audit records every decision keyferry makes as one JSON line per
// event in a hash-chained, append-only file, and verifies such files.
// Events are durable (fsync'd) before Write returns; callers fail closed
// when Write fails. No event ever carries a secret or a session token.
//
// # File format
//
// Each line is the Go encoding/json encoding of an Event followed by "\n".
// "seq" is the first key and "hash" is always the last one. Seq starts at 1
// in a new file and grows by exactly 1 per line. The chain is
//
//	hash = hex(sha256(prev_hash + "\n" + line with "hash":""))
//
// where prev_hash is the previous line's hash ("" for the first event of a
// new file, the genesis). The hash is computed over the exact bytes written,
// so a verifier needs no knowledge of the schema: it takes each raw line,
// replaces the trailing `"hash":"<64 hex>"}` with `"hash":""}`, recomputes
// and compares. Fields added in later versions therefore verify with old
// verifiers.
//
// # What the chain proves, and what it does not
//
// Verify detects a modified, deleted, inserted or reordered line anywhere
// after the first line of a file. It cannot detect, on its own:
//   - lines cut from the end of a file: compare Report.Last and
//     Report.LastHash with a value recorded elsewhere (another system's log,
//     a metrics sample, the next file's first prev_hash);
//   - lines cut from the start of a file, or a file that starts mid-chain
//     after rotation: Report.FirstPrevHash must equal the LastHash of the
//     previous file, which an operator must check;
//   - an attacker who rewrites the whole file and recomputes every hash:
//     the chain is unkeyed; anchoring hashes outside the host is what
//     defeats that.
//
// # Durability
//
// FileSink group-commits: concurrent writers are batched into one write and
// one fsync. A crash can leave a partial last line, which OpenFile removes,
// and can leave complete lines of a batch whose writers were never
// acknowledged: the log may then record a decision whose credentials were
// never handed out, never the reverse.
package audit
