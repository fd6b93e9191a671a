//! Other wire formats of the catalog, for the front doors that imitate other systems.
//!
//! A front door (Consul, Nacos, ...) encodes instances in its own shape. Those encodings
//! are cached beside the native JSON, in numbered slots: per chunk (64 instances), so a
//! change re-encodes only the chunk it touched; per service, the joined response body
//! for one selection of instances; per snapshot, one catalog-wide body. Slots are filled
//! on first use, so a format nobody reads costs nothing, and each published snapshot
//! starts with the slots of the chunks it shares with the last one already filled.
//!
//! The catalog does not know the formats: a front door owns its slot numbers (listed in
//! one place, `frontends::slots`) and always passes the same encoder for a slot.

use std::sync::{Arc, OnceLock};

use bytes::Bytes;

use super::view::InstanceView;

/// Format slots per chunk.
pub const FORMATS: usize = 4;
/// Body slots per service and per snapshot.
pub const BODIES: usize = 8;

/// A chunk-level encoding: which of the per-chunk caches an encoder fills.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FormatSlot(pub usize);

/// A body-level cache: one (format, selection) pair per service, or one catalog-wide
/// body per snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BodySlot(pub usize);

/// Writes one instance in a front door's shape (one JSON value, no separator).
pub trait InstanceEncoder: Sync {
    fn encode(&self, view: &InstanceView, out: &mut Vec<u8>);
}

/// A chunk's instances in one format: the values separated by commas, and where each
/// ends, so a selection of them can be joined without encoding again.
#[derive(Clone, Debug)]
pub struct Formatted {
    bytes: Bytes,
    ends: Arc<[u32]>,
}

impl Formatted {
    pub fn encode(instances: &[InstanceView], encoder: &dyn InstanceEncoder) -> Formatted {
        let mut bytes = Vec::with_capacity(instances.len() * 512);
        let mut ends = Vec::with_capacity(instances.len());
        for view in instances {
            if !bytes.is_empty() {
                bytes.push(b',');
            }
            encoder.encode(view, &mut bytes);
            ends.push(bytes.len() as u32);
        }
        Formatted {
            bytes: Bytes::from(bytes),
            ends: ends.into(),
        }
    }

    /// The `i`-th instance's encoding.
    pub fn item(&self, i: usize) -> &[u8] {
        let start = match i {
            0 => 0,
            _ => self.ends[i - 1] as usize + 1,
        };
        &self.bytes[start..self.ends[i] as usize]
    }

    /// Every instance's encoding, comma-separated.
    pub fn all(&self) -> &[u8] {
        &self.bytes
    }
}

/// Per-chunk caches.
pub type ChunkFormats = [OnceLock<Formatted>; FORMATS];

/// A copy of `formats` (the filled ones share their bytes), for a chunk rebuilt with the
/// same instances.
pub fn copy_formats(formats: &ChunkFormats) -> ChunkFormats {
    std::array::from_fn(|i| match formats[i].get() {
        Some(formatted) => OnceLock::from(formatted.clone()),
        None => OnceLock::new(),
    })
}
/// Empty per-service or per-snapshot body caches.
pub type Bodies = [OnceLock<Bytes>; BODIES];

/// Appends `item` to a JSON array being built in `out` (which starts with `[`).
pub fn push_item(out: &mut Vec<u8>, item: &[u8]) {
    if out.len() > 1 {
        out.push(b',');
    }
    out.extend_from_slice(item);
}
