//! A proxy-wasm filter that does nothing: every request and response continues untouched.
//! The benchmark runs it as configuration (c), the cost of crossing into a Wasm VM and back
//! that any proxy-wasm filter pays before doing any work of its own.

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::ContextType;

proxy_wasm::main! {{
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root) });
}}

struct Root;

impl Context for Root {}

impl RootContext for Root {
    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Passthrough))
    }
}

/// One request: every callback keeps its default, `Action::Continue`.
struct Passthrough;

impl Context for Passthrough {}

impl HttpContext for Passthrough {}
