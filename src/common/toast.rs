//! Reading a few bytes of a value stored out of line, without PostgreSQL fetching the whole
//! value and without paying for a TOAST lookup per piece.
//!
//! `pg_detoast_datum_slice` fetches one byte range: it opens the TOAST relation and its
//! indexes, starts an index scan (a B-tree scan allocates tens of kilobytes), reads the chunks
//! of the range, and closes it all again. A Count-Min point query reads the header and one
//! counter a row, five or more ranges, and that cost, paid for each, made a point query on a
//! large stored sketch four times the cost of a small one fetched whole. [`ChunkReader`] opens
//! the relation, its valid index and one index scan once per value and fetches each chunk that
//! a read needs by rescanning that scan with new keys: the same checks on the chunks as
//! PostgreSQL's `heap_fetch_toast_slice` (PostgreSQL 15 to 18), with the same snapshot.
//!
//! Only heap TOAST relations are read this way (their chunk layout is the heap's); any other
//! table access method gives `None`, and the caller falls back to slices.

use pgrx::pg_sys;
use std::ffi::c_int;

// Called through pg_guard_ffi_boundary, which turns a PostgreSQL error into a Rust panic.
unsafe extern "C-unwind" {
    // access/toast_internals.h, the same in 15 to 18.
    fn toast_open_indexes(
        toastrel: pg_sys::Relation,
        lock: pg_sys::LOCKMODE,
        toastidxs: *mut *mut pg_sys::Relation,
        num_indexes: *mut c_int,
    ) -> c_int;
    fn toast_close_indexes(
        toastidxs: *mut pg_sys::Relation,
        num_indexes: c_int,
        lock: pg_sys::LOCKMODE,
    );
}

#[cfg(not(feature = "pg18"))]
unsafe extern "C-unwind" {
    // Fills in a SNAPSHOT_TOAST snapshot (15 and 16: with the oldest snapshot's LSN and time,
    // for old_snapshot_threshold); errors without an active or registered snapshot.
    fn init_toast_snapshot(toast_snapshot: pg_sys::Snapshot);
}

#[cfg(feature = "pg18")]
unsafe extern "C-unwind" {
    // PostgreSQL 18 replaced init_toast_snapshot with one static TOAST snapshot.
    fn get_toast_snapshot() -> pg_sys::Snapshot;
}

/// A call into PostgreSQL outside pgrx's bindings, its errors turned into Rust panics.
unsafe fn guarded<T>(f: impl FnOnce() -> T) -> T {
    unsafe { pg_sys::ffi::pg_guard_ffi_boundary(f) }
}

const LOCK: pg_sys::LOCKMODE = pg_sys::AccessShareLock as pg_sys::LOCKMODE;

/// TOAST_MAX_CHUNK_SIZE of access/heaptoast.h: the data bytes of every chunk but the last, so
/// that four chunk tuples fit on a page (1,996 with 8 kB blocks).
const fn toast_max_chunk_size() -> usize {
    const fn maxalign(n: usize) -> usize {
        (n + 7) & !7
    }
    const BLOCK: usize = pg_sys::BLCKSZ as usize;
    const PAGE_HEADER: usize = 24; // SizeOfPageHeaderData
    const ITEM_ID: usize = 4;
    const TUPLES_PER_PAGE: usize = 4; // EXTERN_TUPLES_PER_PAGE
    // MaximumBytesPerTuple(4): MAXALIGN_DOWN((BLCKSZ - MAXALIGN(header + 4 line pointers)) / 4)
    let tuple_max =
        ((BLOCK - maxalign(PAGE_HEADER + TUPLES_PER_PAGE * ITEM_ID)) / TUPLES_PER_PAGE) & !7;
    // less MAXALIGN(SizeofHeapTupleHeader = 23), chunk_id (Oid), chunk_seq (int4), VARHDRSZ
    tuple_max - maxalign(23) - 4 - 4 - 4
}

pub const CHUNK_SIZE: usize = toast_max_chunk_size();

/// One value stored out of line without compression, open for reading chunk by chunk. Close it
/// with [`ChunkReader::close`]; dropped unclosed (an error is unwinding), it leaves the
/// relations, the scan and the buffer pin to the transaction's abort, which releases them.
///
/// # Where the chunks are
///
/// Each chunk is a heap tuple `(chunk_id, chunk_seq, chunk_data)` found through the unique
/// index on `(chunk_id, chunk_seq)`. An index lookup descends the B-tree, and a point query
/// needs six or more chunks of a large value, so the reader first tries where the chunk most
/// likely is: PostgreSQL writes a value's chunks one after the other, four full chunks to a
/// page, so after a chunk known to be at (block, offset) the next ones fill that page's
/// remaining slots and then whole pages from offset 1. A tuple at that place is taken only if
/// it is visible to the TOAST snapshot and is this value's chunk of that number (chunk_id and
/// chunk_seq read from the tuple itself; a value's chunks are the only tuples holding its
/// chunk_id, as the index lookup also assumes); anything else, or a block past the end of the
/// relation, and the chunk is looked up in the index as PostgreSQL does. A table whose
/// values were written in between others' (concurrent inserts, space reused after deletes)
/// costs one wasted page visit per miss.
pub struct ChunkReader {
    toastrel: pg_sys::Relation,
    indexes: *mut pg_sys::Relation,
    num_indexes: c_int,
    scan: pg_sys::IndexScanDesc,
    slot: *mut pg_sys::TupleTableSlot,
    /// PostgreSQL 15 to 17: the snapshot the scan reads with (palloc'd, outlives the scan).
    snapshot: pg_sys::Snapshot,
    value_id: pg_sys::Oid,
    /// Bytes of the stored value (its payload, no header).
    len: usize,
    chunks: usize,
    /// The chunk read last, its data pointing into a pinned buffer page: the slot's tuple, or
    /// a tuple found in place, whose buffer `pinned` holds.
    current: Option<(usize, *const u8)>,
    pinned: pg_sys::Buffer,
    /// Chunks found so far and where: (chunk, block, offset), ascending by chunk.
    found: Vec<(usize, u32, u16)>,
    /// Blocks known to exist past those chunks were found in (see `block_exists`).
    exists_up_to: u32,
    looked_ahead: bool,
    /// Blocks of the relation, read once when needed.
    blocks: Option<u32>,
    closed: bool,
}

/// Full chunks a heap page holds (EXTERN_TUPLES_PER_PAGE).
const CHUNKS_PER_PAGE: usize = 4;

impl ChunkReader {
    /// Opens the TOAST value `value_id` of `len` bytes in the relation `toast_relid`; None when
    /// that relation is not a heap (its chunks need its own access method).
    ///
    /// # Safety
    /// The value must be one stored uncompressed (its stored size equal to `len`), named by a
    /// TOAST pointer the caller holds in the current transaction.
    pub unsafe fn open(
        toast_relid: pg_sys::Oid,
        value_id: pg_sys::Oid,
        len: usize,
    ) -> Option<ChunkReader> {
        unsafe {
            let toastrel = pg_sys::table_open(toast_relid, LOCK);
            if (*toastrel).rd_tableam != pg_sys::GetHeapamTableAmRoutine() {
                pg_sys::table_close(toastrel, LOCK);
                return None;
            }
            let mut indexes: *mut pg_sys::Relation = std::ptr::null_mut();
            let mut num_indexes: c_int = 0;
            let valid =
                guarded(|| toast_open_indexes(toastrel, LOCK, &mut indexes, &mut num_indexes));
            let snapshot = toast_snapshot();
            // Three keys for every rescan: chunk_id = value, lo <= chunk_seq <= hi.
            #[cfg(not(feature = "pg18"))]
            let scan =
                pg_sys::index_beginscan(toastrel, *indexes.add(valid as usize), snapshot, 3, 0);
            #[cfg(feature = "pg18")]
            let scan = pg_sys::index_beginscan(
                toastrel,
                *indexes.add(valid as usize),
                snapshot,
                std::ptr::null_mut(),
                3,
                0,
            );
            let slot = pg_sys::table_slot_create(toastrel, std::ptr::null_mut());
            Some(ChunkReader {
                toastrel,
                indexes,
                num_indexes,
                scan,
                slot,
                snapshot,
                value_id,
                len,
                chunks: len.div_ceil(CHUNK_SIZE),
                current: None,
                pinned: pg_sys::InvalidBuffer as pg_sys::Buffer,
                found: Vec::new(),
                exists_up_to: 0,
                looked_ahead: false,
                blocks: None,
                closed: false,
            })
        }
    }

    /// The value's length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Fills `out` with the bytes at `offset`; the caller keeps the range within the value.
    /// Missing, misnumbered or missized chunks are errors (data corrupted), as PostgreSQL's.
    pub fn read(&mut self, offset: usize, out: &mut [u8]) {
        if out.is_empty() {
            return;
        }
        assert!(
            offset + out.len() <= self.len,
            "TOAST read past the end of the value"
        );
        let first = offset / CHUNK_SIZE;
        let last = (offset + out.len() - 1) / CHUNK_SIZE;
        for chunk in first..=last {
            let data = self.chunk(chunk);
            let start = chunk * CHUNK_SIZE;
            let from = offset.max(start);
            let to = (offset + out.len()).min(start + CHUNK_SIZE);
            unsafe {
                std::ptr::copy_nonoverlapping(
                    data.add(from - start),
                    out.as_mut_ptr().add(from - offset),
                    to - from,
                );
            }
        }
    }

    /// The data of chunk `chunk` (its expected size, checked), held until the next chunk.
    fn chunk(&mut self, chunk: usize) -> *const u8 {
        if let Some((held, data)) = self.current
            && held == chunk
        {
            return data;
        }
        self.current = None;
        self.unpin();
        let guess = self
            .guess(chunk)
            .filter(|&(block, _)| self.block_exists(block));
        let in_place =
            guess.and_then(|(block, offset)| unsafe { self.fetch_at(block, offset, chunk) });
        let (seq, data, size, (block, offset)) = match (in_place, guess) {
            (Some((data, size)), Some(at)) => (chunk as i64, data, size, at),
            _ => unsafe {
                self.unpin();
                let (seq, data, size) = self.look_up(chunk);
                (seq, data, size, tid_of(&(*self.slot).tts_tid))
            },
        };
        if seq != chunk as i64 {
            self.corrupted(format!("unexpected chunk number {seq} (expected {chunk})"));
        }
        let expected = if chunk + 1 < self.chunks {
            CHUNK_SIZE
        } else {
            self.len - (self.chunks - 1) * CHUNK_SIZE
        };
        if size != expected {
            self.corrupted(format!(
                "unexpected chunk size {size} (expected {expected}) in chunk {chunk} of {} chunks",
                self.chunks
            ));
        }
        let at = self.found.partition_point(|&(c, _, _)| c < chunk);
        if self.found.get(at).is_none_or(|&(c, _, _)| c != chunk) {
            self.found.insert(at, (chunk, block, offset));
        }
        self.current = Some((chunk, data));
        data
    }

    /// Releases the buffer of a chunk found in place.
    fn unpin(&mut self) {
        if self.pinned != pg_sys::InvalidBuffer as pg_sys::Buffer {
            unsafe { pg_sys::ReleaseBuffer(self.pinned) };
            self.pinned = pg_sys::InvalidBuffer as pg_sys::Buffer;
        }
    }

    /// Where chunk `chunk` would be if the value's chunks were written one after the other from
    /// the nearest chunk found before it (see the type's documentation).
    fn guess(&self, chunk: usize) -> Option<(u32, u16)> {
        let at = self.found.partition_point(|&(c, _, _)| c < chunk);
        let &(known, block, offset) = self.found.get(at.checked_sub(1)?)?;
        let offset = usize::from(offset);
        if offset > CHUNKS_PER_PAGE {
            return None;
        }
        let ahead = chunk - known;
        let left_on_page = CHUNKS_PER_PAGE - offset;
        if ahead <= left_on_page {
            return Some((block, (offset + ahead) as u16));
        }
        let beyond = ahead - left_on_page - 1;
        let block = u32::try_from(block as usize + 1 + beyond / CHUNKS_PER_PAGE).ok()?;
        Some((block, (beyond % CHUNKS_PER_PAGE + 1) as u16))
    }

    /// Whether `block` is within the relation (a guess past its end would make the buffer
    /// manager fail). Blocks up to one a chunk was found in exist. Past those, the block where
    /// the value's last chunk would be is looked up once in shared buffers: a block there exists
    /// (a truncation would have dropped it, and cannot run while the reader holds its lock), and
    /// so do all below it. Else the relation's length is read once (a system call).
    fn block_exists(&mut self, block: u32) -> bool {
        let known = self.found.iter().map(|&(_, b, _)| b).max();
        if known.is_some_and(|known| block <= known) || block <= self.exists_up_to {
            return true;
        }
        if !self.looked_ahead {
            self.looked_ahead = true;
            if let (Some(known), Some((last, _))) = (known, self.guess(self.chunks - 1))
                && last >= block
                // PrefetchBuffer of a block in a segment file that does not exist fails.
                && last / pg_sys::RELSEG_SIZE == known / pg_sys::RELSEG_SIZE
            {
                let in_buffers = unsafe {
                    pg_sys::PrefetchBuffer(self.toastrel, pg_sys::ForkNumber::MAIN_FORKNUM, last)
                };
                if in_buffers.recent_buffer != pg_sys::InvalidBuffer as pg_sys::Buffer {
                    self.exists_up_to = last;
                    return true;
                }
            }
        }
        let blocks = *self.blocks.get_or_insert_with(|| unsafe {
            pg_sys::RelationGetNumberOfBlocksInFork(self.toastrel, pg_sys::ForkNumber::MAIN_FORKNUM)
        });
        block < blocks
    }

    /// The data and data size of chunk `chunk` if the tuple at (block, offset) is that chunk of
    /// this value and visible to the TOAST snapshot; its buffer stays pinned (`pinned`). The
    /// tuple is read in place: a TOAST tuple is (chunk_id oid, chunk_seq int4, chunk_data), all
    /// three not null, so the fields sit at fixed offsets after the header; a tuple of any
    /// other shape is left to the index lookup.
    unsafe fn fetch_at(
        &mut self,
        block: u32,
        offset: u16,
        chunk: usize,
    ) -> Option<(*const u8, usize)> {
        unsafe {
            let mut tuple: pg_sys::HeapTupleData = std::mem::zeroed();
            tuple.t_self = pg_sys::ItemPointerData {
                ip_blkid: pg_sys::BlockIdData {
                    bi_hi: (block >> 16) as u16,
                    bi_lo: block as u16,
                },
                ip_posid: offset,
            };
            let mut buffer: pg_sys::Buffer = pg_sys::InvalidBuffer as pg_sys::Buffer;
            if !pg_sys::heap_fetch(self.toastrel, self.snapshot, &mut tuple, &mut buffer, false) {
                return None;
            }
            self.pinned = buffer;
            let header = tuple.t_data;
            let hoff = usize::from((*header).t_hoff);
            let natts = u32::from((*header).t_infomask2) & pg_sys::HEAP_NATTS_MASK;
            let len = tuple.t_len as usize;
            if natts != 3
                || u32::from((*header).t_infomask) & pg_sys::HEAP_HASNULL != 0
                || hoff + 9 > len
            {
                return None;
            }
            let fields = (header as *const u8).add(hoff);
            let id = u32::from_ne_bytes(*(fields as *const [u8; 4]));
            let seq = i32::from_ne_bytes(*(fields.add(4) as *const [u8; 4]));
            if id != self.value_id.to_u32() || i64::from(seq) != chunk as i64 {
                return None;
            }
            let bytes = super::varlena::inline_payload(fields.add(8))?;
            // The data must lie within the tuple.
            let end = bytes.as_ptr() as usize + bytes.len();
            if end > header as usize + len {
                return None;
            }
            Some((bytes.as_ptr(), bytes.len()))
        }
    }

    /// Chunk `chunk` looked up in the index, as PostgreSQL does, and left in the slot.
    unsafe fn look_up(&mut self, chunk: usize) -> (i64, *const u8, usize) {
        unsafe {
            let mut keys: [pg_sys::ScanKeyData; 3] = std::mem::zeroed();
            pg_sys::ScanKeyInit(
                &mut keys[0],
                1,
                pg_sys::BTEqualStrategyNumber as pg_sys::StrategyNumber,
                pg_sys::Oid::from(pg_sys::F_OIDEQ),
                pg_sys::Datum::from(self.value_id),
            );
            pg_sys::ScanKeyInit(
                &mut keys[1],
                2,
                pg_sys::BTGreaterEqualStrategyNumber as pg_sys::StrategyNumber,
                pg_sys::Oid::from(pg_sys::F_INT4GE),
                pg_sys::Datum::from(chunk as i32),
            );
            pg_sys::ScanKeyInit(
                &mut keys[2],
                2,
                pg_sys::BTLessEqualStrategyNumber as pg_sys::StrategyNumber,
                pg_sys::Oid::from(pg_sys::F_INT4LE),
                pg_sys::Datum::from(chunk as i32),
            );
            pg_sys::index_rescan(self.scan, keys.as_mut_ptr(), 3, std::ptr::null_mut(), 0);
            if !pg_sys::index_getnext_slot(
                self.scan,
                pg_sys::ScanDirection::ForwardScanDirection,
                self.slot,
            ) {
                self.corrupted(format!("missing chunk number {chunk}"));
            }
            self.chunk_in_slot()
        }
    }

    /// The chunk_seq, data and data size of the chunk tuple in the slot.
    unsafe fn chunk_in_slot(&self) -> (i64, *const u8, usize) {
        unsafe {
            let mut isnull = false;
            let seq = pg_sys::slot_getattr(self.slot, 2, &mut isnull);
            if isnull {
                self.corrupted("a chunk without a number".into());
            }
            let seq = i64::from(seq.value() as i32);
            let data = pg_sys::slot_getattr(self.slot, 3, &mut isnull);
            if isnull {
                self.corrupted(format!("chunk {seq} without data"));
            }
            // A chunk is stored plain, with a 4-byte or (as heap_form_tuple may make it) a
            // 1-byte header; anything else is a toasted chunk.
            let Some(bytes) = super::varlena::inline_payload(data.cast_mut_ptr::<u8>()) else {
                self.corrupted(format!("found toasted toast chunk {seq}"));
            };
            (seq, bytes.as_ptr(), bytes.len())
        }
    }

    fn corrupted(&self, what: String) -> ! {
        let relation = unsafe { pgrx::name_data_to_str(&(*(*self.toastrel).rd_rel).relname) };
        pgrx::ereport!(
            ERROR,
            pgrx::PgSqlErrorCode::ERRCODE_DATA_CORRUPTED,
            format!(
                "{what} for toast value {} in {relation}",
                self.value_id.to_u32()
            )
        );
    }

    /// Ends the scan and closes the relations.
    pub fn close(mut self) {
        self.close_now();
    }

    fn close_now(&mut self) {
        if self.closed {
            return;
        }
        self.closed = true;
        self.unpin();
        unsafe {
            pg_sys::ExecDropSingleTupleTableSlot(self.slot);
            pg_sys::index_endscan(self.scan);
            guarded(|| toast_close_indexes(self.indexes, self.num_indexes, LOCK));
            pg_sys::table_close(self.toastrel, LOCK);
            free_snapshot(self.snapshot);
        }
    }
}

/// Block and offset of a TID.
unsafe fn tid_of(tid: *const pg_sys::ItemPointerData) -> (u32, u16) {
    unsafe {
        let tid = &*tid;
        (
            (u32::from(tid.ip_blkid.bi_hi) << 16) | u32::from(tid.ip_blkid.bi_lo),
            tid.ip_posid,
        )
    }
}

impl Drop for ChunkReader {
    fn drop(&mut self) {
        // While an error unwinds, PostgreSQL must not be called; its abort releases all this.
        if !std::thread::panicking() {
            self.close_now();
        }
    }
}

#[cfg(not(feature = "pg18"))]
unsafe fn toast_snapshot() -> pg_sys::Snapshot {
    unsafe {
        let snapshot =
            pg_sys::palloc0(std::mem::size_of::<pg_sys::SnapshotData>()) as pg_sys::Snapshot;
        guarded(|| init_toast_snapshot(snapshot));
        snapshot
    }
}

#[cfg(not(feature = "pg18"))]
unsafe fn free_snapshot(snapshot: pg_sys::Snapshot) {
    unsafe { pg_sys::pfree(snapshot.cast()) }
}

#[cfg(feature = "pg18")]
unsafe fn toast_snapshot() -> pg_sys::Snapshot {
    unsafe { guarded(|| get_toast_snapshot()) }
}

#[cfg(feature = "pg18")]
unsafe fn free_snapshot(_snapshot: pg_sys::Snapshot) {}
