//! Asks Envoy to choose the route again after the filter changed what routing reads (the
//! A/B header, the path). Envoy clears its route cache by itself after a header change
//! only for modules of proxy-wasm ABI 0.2.1; from Envoy 1.33 newer ABIs must call the
//! `clear_route_cache` foreign function, so an SDK upgrade cannot silently stop predictor
//! routing. Hosts without the function (older Envoys) carry on: for the ABI this module
//! is built for, they clear the cache themselves.

use std::cell::RefCell;

use proxy_wasm::hostcalls::{call_foreign_function, define_metric, increment_metric};
use proxy_wasm::types::{MetricType, Status};

/// The host function's name, as Envoy registers it.
const FUNCTION: &str = "clear_route_cache";

/// What a call came to: the `result` label of `modelgate_route_cache_clears_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClearResult {
    /// The host cleared the route cache.
    Cleared,
    /// The host has no such function.
    Unavailable,
    /// The host has it but refused the call.
    Failed,
}

impl ClearResult {
    /// What a foreign call's status means.
    pub fn from_result<T>(result: &Result<T, Status>) -> Self {
        match result {
            Ok(_) => ClearResult::Cleared,
            Err(Status::NotFound) => ClearResult::Unavailable,
            Err(_) => ClearResult::Failed,
        }
    }

    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            ClearResult::Cleared => "cleared",
            ClearResult::Unavailable => "unavailable",
            ClearResult::Failed => "failed",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

thread_local! {
    /// The counter of each result, defined on first use (a VM is single-threaded).
    static COUNTERS: RefCell<[Option<u32>; 3]> = const { RefCell::new([None; 3]) };
}

/// Clears the route cache of the current request, and counts what happened. Never fails
/// the request: routing still works on hosts that clear the cache themselves.
pub fn clear() -> ClearResult {
    let result = ClearResult::from_result(&call_foreign_function(FUNCTION, None));
    COUNTERS.with(|counters| {
        let mut counters = counters.borrow_mut();
        let slot = &mut counters[result.index()];
        if slot.is_none() {
            *slot = define_metric(
                MetricType::Counter,
                &format!(
                    "modelgate_route_cache_clears_total.result=.={};.;",
                    result.as_str()
                ),
            )
            .ok();
        }
        if let Some(id) = *slot {
            let _ = increment_metric(id, 1);
        }
    });
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_without_the_function_is_told_from_one_that_refuses() {
        assert_eq!(ClearResult::from_result::<()>(&Ok(())).as_str(), "cleared");
        assert_eq!(
            ClearResult::from_result::<()>(&Err(Status::NotFound)),
            ClearResult::Unavailable
        );
        for status in [Status::BadArgument, Status::InternalFailure] {
            assert_eq!(
                ClearResult::from_result::<()>(&Err(status)),
                ClearResult::Failed
            );
        }
    }
}
