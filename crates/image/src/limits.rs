//! Bounds that keep hostile or broken layers from exhausting disk, memory or time.

/// Limits applied while reading layers.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Largest uncompressed layer accepted (decompression bombs stop here).
    pub max_layer_bytes: u64,
    /// Most entries accepted in one layer.
    pub max_entries: u64,
    /// Longest member path accepted, in bytes (Linux's PATH_MAX).
    pub max_path_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_layer_bytes: 64 << 30,
            max_entries: 10_000_000,
            max_path_bytes: 4096,
        }
    }
}
