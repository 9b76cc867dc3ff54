//! Why the store survives a power cut at any instant: the argument once,
//! for reviewers; the tests in `tests/tear.rs` and `tests/tear_geometries.rs`
//! check it by cutting at every flash operation. (This module has no code.)
//!
//! # What a cut can do
//! A cut stops the flash in the middle of one operation. A program leaves
//! some of its words programmed, perhaps one in part; a flash that programs
//! a multi-word write in its own order can leave any subset. An erase leaves
//! part of the range erased, perhaps one word half-erased. A flash with ECC
//! may then refuse to read a half-done word. Nothing else changes: every
//! word the cut did not touch reads as before.
//!
//! # Why a transaction is all or nothing
//! 1. Entries are only ever appended; nothing is rewritten in place, so a
//!    cut can damage only the entry being written (and what follows it is
//!    blank).
//! 2. Every entry carries a CRC-32C over its header and value, moved off
//!    the values erased (`FF…`) and zeroed flash give, so a partly written
//!    entry never passes for a whole one. An entry that cannot be read is
//!    treated as one that fails its checksum.
//! 3. A transaction's entries share a number, and only the last carries
//!    their count. It is written after all the others, so when it is intact
//!    the whole transaction is on flash; when it is not, mount ignores the
//!    others. Replay applies transactions in log order, so an older value
//!    can never win over a newer committed one.
//! 4. After a tear nothing is appended inside the torn entry's extent (new
//!    bytes there could complete it into a valid entry). The next append
//!    writes, in a free resume slot at the end of the page, where the blank
//!    space after the torn bytes starts (an offset and its complement, so a
//!    half-written slot is recognised and never followed), and mount jumps
//!    the torn bytes through it, on every page alike: a blank header with
//!    written bytes after it (out-of-order programming) is jumped the same
//!    way. With no slot left the page is closed and a fresh one opened.
//!
//! # Why collection cannot bring anything back
//! 5. Collection copies the live records of the oldest page to the head of
//!    the log, each as its own committed entry with the same value (a cut
//!    between copies leaves duplicates of equal values), then commits a
//!    horizon record, "pages up to sequence S are dead", and only then
//!    erases the page. Mount ignores a page at or below the horizon whatever
//!    a torn erase left in it, so no half-erased page can resurrect a
//!    deleted or overwritten record (a PIN counter's earlier value, say).
//! 6. The horizon has its own slot in the index, so a full index never
//!    stops a collection half-way.
//!
//! # Why the store stays writable
//! 7. Ordinary entries stop one horizon record short of a page's end, so
//!    one collection needs at most one fresh page. Growing transactions
//!    leave four pages free after perfect compaction, same-size updates
//!    (retry counters) three, shrinking ones one: a cut during collection
//!    can strand the page it opened, and a full store must still count PIN
//!    tries and still be emptied.
//! 8. Mount writes nothing, so a cut during recovery is just another cut;
//!    the deferred work (erasing torn pages, writing a resume slot) happens
//!    in the next transaction, which the tests cut as well.
//!
//! # Why a retry counter never regains a try
//! Points 1–5 mean that after any cut the counter reads as its last
//! committed value. The applet commits the decremented counter before it
//! compares a PIN, so a cut before that commit completes leaves the old
//! counter and no comparison happened; a cut after it leaves the try spent.
