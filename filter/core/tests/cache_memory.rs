//! The token cache's byte count is an honest bound of the heap it holds: measured with a
//! counting allocator (this test binary's own), over claims read the way the filter reads
//! them. Its own binary, one test: nothing else allocates while it measures.

use std::alloc::{GlobalAlloc, Layout, System};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};

use modelgate_core::TokenCache;
use modelgate_core::auth::strict_json::UniqueKeys;

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::SeqCst);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::SeqCst);
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_sub(layout.size(), Ordering::SeqCst);
        LIVE.fetch_add(new_size, Ordering::SeqCst);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

/// A payload of a given shape: `width` top-level claims, some nested, some lists.
fn payload(i: usize, width: usize) -> String {
    let mut members = vec![
        format!("\"iss\":\"https://idp{i}.example\""),
        "\"exp\":1900000000".to_string(),
        format!("\"sub\":\"user-{i}\""),
        "\"realm_access\":{\"roles\":[\"a\",\"b\",\"c\"],\"deep\":{\"k\":[{\"x\":1}]}}".into(),
    ];
    for c in 0..width {
        members.push(match c % 3 {
            0 => format!("\"c{c}\":\"value {c} of {i}\""),
            1 => format!("\"c{c}\":[\"g{c}\",\"h\",{c}]"),
            _ => format!("\"c{c}\":{c}.5"),
        });
    }
    format!("{{{}}}", members.join(","))
}

#[test]
fn counted_bytes_bound_the_heap_held_and_are_not_far_above_it() {
    for (entries, width, token_len) in [(300, 0, 300), (200, 40, 2000), (50, 250, 12_000)] {
        let before = LIVE.load(Ordering::SeqCst);
        let mut cache = TokenCache::with_budget(100_000, usize::MAX);
        for i in 0..entries {
            let token = format!("{i:0>token_len$}");
            let text = payload(i, width);
            let UniqueKeys(claims) = serde_json::from_str(&text).unwrap();
            let key = TokenCache::key(0, &token);
            cache.insert(key, &token, 1_900_000_000, Rc::new(claims), 0);
        }
        let held = LIVE.load(Ordering::SeqCst) - before;
        let counted = cache.bytes();
        assert_eq!(cache.len(), entries);
        assert!(
            counted >= held,
            "{entries} entries of {width} claims: {counted} bytes counted, {held} held"
        );
        assert!(
            counted <= 2 * held,
            "{entries} entries of {width} claims: {counted} bytes counted, {held} held"
        );
        drop(cache);
    }
}
