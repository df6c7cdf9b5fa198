//! Where a sketch's buffers live: the Rust heap, or a PostgreSQL memory context.
//!
//! Aggregate states and large temporaries must live in PostgreSQL memory (DESIGN notes,
//! "Aggregate states"): hash aggregation then counts them against work_mem and spills, a
//! failed allocation is `ERROR: out of memory` (53200) in that backend instead of an abort of
//! the whole server, and the memory goes away with its context. The sketches keep their
//! algorithms in plain Rust; their growable buffers are [`ArenaVec`]s (allocator-api2's `Vec`,
//! which takes an allocator on stable Rust) over an [`Arena`]:
//!
//! - [`Arena::HEAP`]: the global allocator, for tests and short-lived values;
//! - [`Arena::context`]: palloc in one memory context. PostgreSQL's allocator reports failure
//!   with an ERROR, which pgrx's guard turns into a Rust panic, so an allocation either succeeds
//!   or unwinds (dropping what was built) and ends the statement cleanly.
//!
//! A buffer in a context must not outlive it: states are dropped by the context's reset
//! callback (see `aggregate::new_state`), before PostgreSQL frees its blocks, and temporaries
//! in `CurrentMemoryContext` are dropped before the function returns.

use allocator_api2::alloc::{AllocError, Allocator, Global};
use std::alloc::Layout;
use std::ptr::NonNull;

/// A growable buffer in an [`Arena`].
pub type ArenaVec<T> = allocator_api2::vec::Vec<T, Arena>;

/// PostgreSQL's allocator. The unit-test executable is not loaded into a server and cannot
/// link these symbols; it never makes a context arena.
#[cfg(not(test))]
mod pg {
    use pgrx::pg_sys;
    use std::ffi::c_void;
    pub unsafe fn alloc(context: pg_sys::MemoryContext, size: usize) -> *mut c_void {
        unsafe { pg_sys::MemoryContextAlloc(context, size) }
    }
    pub unsafe fn realloc(ptr: *mut c_void, size: usize) -> *mut c_void {
        unsafe { pg_sys::repalloc(ptr, size) }
    }
    pub unsafe fn free(ptr: *mut c_void) {
        unsafe { pg_sys::pfree(ptr) }
    }
    pub fn current() -> pg_sys::MemoryContext {
        unsafe { pg_sys::CurrentMemoryContext }
    }
}

#[cfg(test)]
mod pg {
    use pgrx::pg_sys;
    use std::ffi::c_void;
    pub unsafe fn alloc(_: pg_sys::MemoryContext, _: usize) -> *mut c_void {
        unreachable!("no memory contexts outside a server")
    }
    pub unsafe fn realloc(_: *mut c_void, _: usize) -> *mut c_void {
        unreachable!("no memory contexts outside a server")
    }
    pub unsafe fn free(_: *mut c_void) {
        unreachable!("no memory contexts outside a server")
    }
    pub fn current() -> pg_sys::MemoryContext {
        unreachable!("no memory contexts outside a server")
    }
}

/// palloc's alignment guarantee (MAXALIGN on every platform PostgreSQL supports).
const PALLOC_ALIGN: usize = 8;

/// An allocator: the Rust heap, or one PostgreSQL memory context. Copy, one pointer wide.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arena {
    /// A `MemoryContext`, or null for the Rust heap.
    context: *mut pgrx::pg_sys::MemoryContextData,
}

impl Default for Arena {
    fn default() -> Self {
        Arena::HEAP
    }
}

impl Arena {
    /// The Rust heap.
    pub const HEAP: Arena = Arena {
        context: std::ptr::null_mut(),
    };

    /// palloc in `context`, which must outlive every buffer made in this arena.
    pub fn context(context: pgrx::pg_sys::MemoryContext) -> Arena {
        assert!(!context.is_null(), "memory context is null");
        Arena { context }
    }

    /// The backend's current memory context (for temporaries of one call).
    pub fn current() -> Arena {
        Arena::context(pg::current())
    }

    pub fn is_heap(&self) -> bool {
        self.context.is_null()
    }

    /// An empty buffer in this arena.
    pub fn vec<T>(self) -> ArenaVec<T> {
        ArenaVec::new_in(self)
    }

    /// A copy of `items` in this arena.
    pub fn vec_from<T: Clone>(self, items: &[T]) -> ArenaVec<T> {
        let mut out = ArenaVec::with_capacity_in(items.len(), self);
        out.extend_from_slice(items);
        out
    }

    /// `len` copies of `value` in this arena.
    pub fn vec_filled<T: Clone>(self, value: T, len: usize) -> ArenaVec<T> {
        let mut out = ArenaVec::with_capacity_in(len, self);
        out.resize(len, value);
        out
    }

    /// palloc of `layout` in this (context) arena. palloc aligns to 8 bytes; a larger alignment
    /// (hashbrown's tables ask for 16) takes `align` bytes more and keeps the chunk's own address
    /// just before the aligned one, for [`Arena::free`]. Never fails: PostgreSQL raises an
    /// ERROR instead (out of memory, or a request above 1 GB), which unwinds from here.
    unsafe fn palloc(&self, layout: Layout) -> NonNull<u8> {
        let ptr = if layout.align() <= PALLOC_ALIGN {
            unsafe { pg::alloc(self.context, layout.size()) as *mut u8 }
        } else {
            let raw = unsafe { pg::alloc(self.context, layout.size() + layout.align()) } as usize;
            // raw is 8-aligned and align >= 16: at least 8 bytes lie between raw and aligned.
            let aligned = (raw + layout.align()) & !(layout.align() - 1);
            unsafe { *((aligned - 8) as *mut usize) = raw };
            aligned as *mut u8
        };
        NonNull::new(ptr).unwrap_or_else(|| panic!("palloc returned NULL"))
    }

    unsafe fn free(&self, ptr: NonNull<u8>, layout: Layout) {
        let chunk = if layout.align() <= PALLOC_ALIGN {
            ptr.as_ptr()
        } else {
            unsafe { *((ptr.as_ptr() as usize - 8) as *const usize) as *mut u8 }
        };
        unsafe { pg::free(chunk as *mut std::ffi::c_void) };
    }
}

/// The block of a zero-size request: no memory, a non-null pointer aligned as asked.
fn empty_block(layout: Layout) -> NonNull<[u8]> {
    let dangling = NonNull::<u8>::dangling().with_addr(
        std::num::NonZeroUsize::new(layout.align()).unwrap_or(std::num::NonZeroUsize::MIN),
    );
    NonNull::slice_from_raw_parts(dangling, 0)
}

unsafe impl Allocator for Arena {
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        if self.is_heap() {
            return Global.allocate(layout);
        }
        if layout.size() == 0 {
            return Ok(empty_block(layout));
        }
        // Returning AllocError would make the collections abort the process: PostgreSQL's
        // ERROR (unwinding from palloc) is the only failure this arena reports.
        let ptr = unsafe { self.palloc(layout) };
        Ok(NonNull::slice_from_raw_parts(ptr, layout.size()))
    }

    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        if self.is_heap() {
            return unsafe { Global.deallocate(ptr, layout) };
        }
        if layout.size() != 0 {
            unsafe { self.free(ptr, layout) };
        }
    }

    unsafe fn grow(
        &self,
        ptr: NonNull<u8>,
        old: Layout,
        new: Layout,
    ) -> Result<NonNull<[u8]>, AllocError> {
        if self.is_heap() {
            return unsafe { Global.grow(ptr, old, new) };
        }
        if old.size() == 0 || new.align() > PALLOC_ALIGN || old.align() > PALLOC_ALIGN {
            // Over-aligned chunks move by copy (repalloc would lose their alignment).
            let moved = self.allocate(new)?;
            if old.size() != 0 {
                unsafe {
                    std::ptr::copy_nonoverlapping(
                        ptr.as_ptr(),
                        moved.as_ptr() as *mut u8,
                        old.size(),
                    );
                    self.free(ptr, old);
                }
            }
            return Ok(moved);
        }
        // repalloc keeps the chunk in its own context.
        let ptr = unsafe { pg::realloc(ptr.as_ptr() as *mut std::ffi::c_void, new.size()) };
        let ptr = NonNull::new(ptr as *mut u8).unwrap_or_else(|| panic!("repalloc returned NULL"));
        Ok(NonNull::slice_from_raw_parts(ptr, new.size()))
    }

    unsafe fn shrink(
        &self,
        ptr: NonNull<u8>,
        old: Layout,
        new: Layout,
    ) -> Result<NonNull<[u8]>, AllocError> {
        if self.is_heap() {
            return unsafe { Global.shrink(ptr, old, new) };
        }
        if new.size() == 0 {
            unsafe { self.deallocate(ptr, old) };
            return Ok(empty_block(new));
        }
        // Keeping the larger chunk is allowed and saves a copy.
        Ok(NonNull::slice_from_raw_parts(ptr, old.size()))
    }
}

// A backend runs one thread; buffers in a context never leave it. The heap arena is the global
// allocator, which any thread may use (the pure tests run on several).
unsafe impl Send for Arena {}
unsafe impl Sync for Arena {}

/// A value that can be copied into another arena (an aggregate's combine function copies a
/// state made in a shorter-lived context into its own).
pub trait CloneIn {
    fn clone_in(&self, arena: Arena) -> Self;
}

impl<T: CloneIn> CloneIn for Option<T> {
    fn clone_in(&self, arena: Arena) -> Self {
        self.as_ref().map(|value| value.clone_in(arena))
    }
}

/// In-server tests of the context arena (run by `cargo pgrx test`).
#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use super::*;
    use pgrx::prelude::*;

    #[pg_test]
    fn context_buffers_are_aligned_grow_and_count_in_their_context() {
        let context = unsafe {
            pg_sys::AllocSetContextCreateExtended(
                pg_sys::CurrentMemoryContext,
                c"arena test".as_ptr(),
                pg_sys::ALLOCSET_DEFAULT_MINSIZE as usize,
                pg_sys::ALLOCSET_DEFAULT_INITSIZE as usize,
                pg_sys::ALLOCSET_DEFAULT_MAXSIZE as usize,
            )
        };
        let arena = Arena::context(context);
        let before = unsafe { pg_sys::MemoryContextMemAllocated(context, false) };
        // Growth by repalloc keeps the contents.
        let mut words: ArenaVec<u64> = arena.vec();
        for i in 0..100_000u64 {
            words.push(i * 3);
        }
        assert!(words.iter().enumerate().all(|(i, &w)| w == i as u64 * 3));
        // hashbrown asks for 16-byte alignment, more than palloc gives.
        let mut map: hashbrown::HashMap<u64, u64, std::hash::RandomState, Arena> =
            hashbrown::HashMap::with_hasher_in(Default::default(), arena);
        for i in 0..10_000u64 {
            map.insert(i, i + 1);
        }
        assert!((0..10_000u64).all(|i| map.get(&i) == Some(&(i + 1))));
        #[repr(align(64))]
        struct Wide(u8);
        let wide: ArenaVec<Wide> = {
            let mut v = arena.vec();
            v.extend((0..1000).map(|i| Wide(i as u8)));
            v
        };
        assert_eq!(wide.as_ptr() as usize % 64, 0);
        assert!(wide.iter().enumerate().all(|(i, w)| w.0 == i as u8));
        // PostgreSQL sees the memory: 800 KB of words at least.
        let during = unsafe { pg_sys::MemoryContextMemAllocated(context, false) };
        assert!(during >= before + 800_000, "{before} -> {during}");
        drop((words, map, wide));
        unsafe { pg_sys::MemoryContextDelete(context) };
    }
}
