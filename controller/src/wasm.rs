//! The filter module this controller was built with (embedded by `build.rs`), which it
//! serves to the gateways.

use sha2::{Digest, Sha256};

/// The filter's `.wasm`.
pub static FILTER_WASM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/modelgate_filter.wasm"));

/// SHA-256 of the embedded module, lowercase hex (the WasmPlugin's `sha256`).
pub fn filter_sha256() -> String {
    Sha256::digest(FILTER_WASM)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_module_is_a_wasm_binary() {
        assert_eq!(&FILTER_WASM[..4], b"\0asm");
        assert_eq!(filter_sha256().len(), 64);
    }
}
