//! A service's instances in sorted runs ("chunks"), each with its JSON encoded once.
//!
//! A change to one instance of a 10 000-instance service re-encodes only the chunk that
//! holds it, and only the instances in it that changed: the others' JSON is copied from
//! the chunk it replaces. Publishing the new view copies a vector of chunk pointers, not
//! the instances. Chunks hold about [`CHUNK`] instances (between one and twice that).

use std::sync::Arc;

use bytes::Bytes;

use super::formats::{copy_formats, ChunkFormats, FormatSlot, Formatted, InstanceEncoder};
use super::view::InstanceView;

/// Instances per chunk when a service's chunks are laid out afresh.
pub const CHUNK: usize = 64;

/// A run of a service's instances, sorted by endpoint, with their JSON.
/// Everything but the bytes is shared, so a chunk can be re-pointed at a copy of its
/// bytes inside a whole response body (see [`Chunk::rebased`]) for the cost of a few
/// reference counts.
#[derive(Debug)]
pub struct Chunk {
    pub instances: Arc<[InstanceView]>,
    /// The instances' JSON objects separated by commas (no brackets).
    pub bytes: Bytes,
    /// Where each instance's JSON ends in `bytes`.
    ends: Arc<[u32]>,
    pub healthy: usize,
    /// The sources reporting its instances, each once.
    pub sources: Arc<[Arc<str>]>,
    /// The instances in front doors' formats, encoded on first use.
    formats: ChunkFormats,
}

/// Each source once, in the order first seen (a few sources over many instances).
pub fn distinct<'a>(sources: impl Iterator<Item = &'a Arc<str>>) -> Vec<Arc<str>> {
    let mut seen: Vec<Arc<str>> = Vec::new();
    for source in sources {
        if !seen.contains(source) {
            seen.push(source.clone());
        }
    }
    seen
}

/// An instance's endpoint: what a service's instances are sorted and merged by.
pub type Endpoint<'a> = (&'a str, u16);

pub fn endpoint_of(view: &InstanceView) -> Endpoint<'_> {
    (view.instance.host.as_str(), view.instance.port)
}

/// Whether two views would be encoded alike (the shared instance is compared by pointer
/// first: unchanged instances are the same allocation).
pub fn same(a: &InstanceView, b: &InstanceView) -> bool {
    (Arc::ptr_eq(&a.instance, &b.instance) || a.instance == b.instance)
        && a.sources == b.sources
        && a.stale == b.stale
        && a.stale_since == b.stale_since
}

impl Chunk {
    /// Encodes `instances`, copying the JSON of those `reuse` already holds unchanged.
    pub fn encode(instances: Vec<InstanceView>, reuse: &[&Chunk]) -> Chunk {
        let mut bytes = Vec::with_capacity(reuse_size_hint(&instances, reuse));
        let mut ends = Vec::with_capacity(instances.len());
        let mut earlier = Cursor::new(reuse);
        for view in &instances {
            if !bytes.is_empty() {
                bytes.push(b',');
            }
            match earlier.find(view) {
                Some(json) => bytes.extend_from_slice(json),
                None => serde_json::to_writer(&mut bytes, view).expect("instances serialize"),
            }
            ends.push(bytes.len() as u32);
        }
        let healthy = instances.iter().filter(|i| i.healthy).count();
        let sources = distinct(instances.iter().flat_map(|i| i.sources.iter()));
        Chunk {
            instances: instances.into(),
            bytes: Bytes::from(bytes),
            ends: ends.into(),
            healthy,
            sources: sources.into(),
            formats: ChunkFormats::default(),
        }
    }

    /// The same chunk, its JSON read from `bytes` (an identical copy, e.g. a slice of
    /// the service's whole body, so the chunk's own buffer can be freed).
    pub fn rebased(&self, bytes: Bytes) -> Chunk {
        debug_assert_eq!(bytes, self.bytes);
        Chunk {
            instances: self.instances.clone(),
            bytes,
            ends: self.ends.clone(),
            healthy: self.healthy,
            sources: self.sources.clone(),
            formats: copy_formats(&self.formats),
        }
    }

    /// The instances in the format of `slot`, encoded by `encoder` on first use.
    pub fn formatted(&self, slot: FormatSlot, encoder: &dyn InstanceEncoder) -> &Formatted {
        self.formats[slot.0].get_or_init(|| Formatted::encode(&self.instances, encoder))
    }

    /// The JSON of the `i`-th instance.
    fn json(&self, i: usize) -> &[u8] {
        let start = match i {
            0 => 0,
            _ => self.ends[i - 1] as usize + 1,
        };
        &self.bytes[start..self.ends[i] as usize]
    }

    pub fn last(&self) -> Endpoint<'_> {
        endpoint_of(&self.instances[self.instances.len() - 1])
    }
}

/// About the size the new chunk's JSON will have.
fn reuse_size_hint(instances: &[InstanceView], reuse: &[&Chunk]) -> usize {
    let reused: usize = reuse.iter().map(|c| c.bytes.len() + 1).sum();
    let count: usize = reuse
        .iter()
        .map(|c| c.instances.len())
        .sum::<usize>()
        .max(1);
    instances.len() * (reused / count).max(256)
}

/// Walks earlier chunks in endpoint order alongside a new, also sorted, list.
struct Cursor<'a> {
    chunks: &'a [&'a Chunk],
    chunk: usize,
    at: usize,
}

impl<'a> Cursor<'a> {
    fn new(chunks: &'a [&'a Chunk]) -> Cursor<'a> {
        Cursor {
            chunks,
            chunk: 0,
            at: 0,
        }
    }

    /// The earlier JSON of `view` if it is unchanged. Calls come in endpoint order.
    fn find(&mut self, view: &InstanceView) -> Option<&'a [u8]> {
        let wanted = endpoint_of(view);
        while let Some(chunk) = self.chunks.get(self.chunk) {
            let Some(earlier) = chunk.instances.get(self.at) else {
                self.chunk += 1;
                self.at = 0;
                continue;
            };
            match endpoint_of(earlier).cmp(&wanted) {
                std::cmp::Ordering::Less => self.at += 1,
                std::cmp::Ordering::Greater => return None,
                std::cmp::Ordering::Equal => {
                    return same(earlier, view).then(|| chunk.json(self.at));
                }
            }
        }
        None
    }
}

/// Lays `instances` (sorted) out in fresh chunks, reusing the JSON `earlier` holds.
pub fn layout(instances: Vec<InstanceView>, earlier: &[Arc<Chunk>]) -> Vec<Arc<Chunk>> {
    let reuse: Vec<&Chunk> = earlier.iter().map(|c| &**c).collect();
    let mut chunks = Vec::with_capacity(instances.len().div_ceil(CHUNK));
    let mut rest = instances.into_iter().peekable();
    while rest.peek().is_some() {
        let run: Vec<InstanceView> = rest.by_ref().take(CHUNK).collect();
        chunks.push(Arc::new(Chunk::encode(run, &reuse)));
    }
    chunks
}

/// `chunks` with `edits` applied: each edit sets the instance at an endpoint (`None`
/// removes it). Edits are sorted by endpoint, one per endpoint. Only the chunks the edits
/// fall in are rebuilt; the others are shared.
pub fn patch(
    chunks: &[Arc<Chunk>],
    edits: Vec<(Endpoint<'_>, Option<InstanceView>)>,
) -> Vec<Arc<Chunk>> {
    if chunks.is_empty() {
        let added = edits.into_iter().filter_map(|(_, view)| view).collect();
        return layout(added, &[]);
    }
    let mut out: Vec<Arc<Chunk>> = Vec::with_capacity(chunks.len() + 1);
    let mut edits = edits.into_iter().peekable();
    for (i, chunk) in chunks.iter().enumerate() {
        let is_last = i + 1 == chunks.len();
        // Edits up to this chunk's last endpoint go in it; past the last chunk's end, too.
        let mut mine = Vec::new();
        while let Some((endpoint, _)) = edits.peek() {
            if is_last || *endpoint <= chunk.last() {
                mine.extend(edits.next());
            } else {
                break;
            }
        }
        if mine.is_empty() {
            out.push(chunk.clone());
            continue;
        }
        let instances = apply(&chunk.instances, mine);
        if instances.is_empty() {
            continue;
        }
        if instances.len() > 2 * CHUNK {
            out.extend(layout(instances, std::slice::from_ref(chunk)));
        } else {
            out.push(Arc::new(Chunk::encode(instances, &[&**chunk])));
        }
    }
    out
}

/// One chunk's instances with its edits merged in (both sorted by endpoint).
fn apply(
    instances: &[InstanceView],
    edits: Vec<(Endpoint<'_>, Option<InstanceView>)>,
) -> Vec<InstanceView> {
    let mut out = Vec::with_capacity(instances.len() + edits.len());
    let mut old = instances.iter().peekable();
    for (endpoint, replacement) in edits {
        while let Some(view) = old.next_if(|view| endpoint_of(view) < endpoint) {
            out.push(view.clone());
        }
        old.next_if(|view| endpoint_of(view) == endpoint);
        out.extend(replacement);
    }
    out.extend(old.cloned());
    out
}

#[cfg(test)]
mod tests {
    use switchboard_connectors::{Instance, ServiceKey};

    use super::*;

    fn view(port: u16, weight: u32) -> InstanceView {
        let mut instance =
            Instance::new(format!("i{port}"), ServiceKey::named("s"), "10.0.0.1", port);
        instance.weight = weight;
        InstanceView::from_source(&instance, "native")
    }

    fn body(chunks: &[Arc<Chunk>]) -> serde_json::Value {
        let mut json = b"[".to_vec();
        for (i, chunk) in chunks.iter().enumerate() {
            if i > 0 {
                json.push(b',');
            }
            json.extend_from_slice(&chunk.bytes);
        }
        json.push(b']');
        serde_json::from_slice(&json).unwrap()
    }

    fn ports(chunks: &[Arc<Chunk>]) -> Vec<u64> {
        let body = body(chunks);
        body.as_array()
            .unwrap()
            .iter()
            .map(|i| i["port"].as_u64().unwrap())
            .collect()
    }

    #[test]
    fn a_patch_rebuilds_only_the_chunk_it_touches() {
        let all: Vec<InstanceView> = (0..200).map(|p| view(p, 100)).collect();
        let chunks = layout(all, &[]);
        assert_eq!(chunks.len(), 4);
        let changed = view(70, 7);
        let patched = patch(&chunks, vec![(("10.0.0.1", 70), Some(changed))]);
        assert_eq!(patched.len(), 4);
        for i in [0, 2, 3] {
            assert!(Arc::ptr_eq(&patched[i], &chunks[i]), "chunk {i} is shared");
        }
        assert!(!Arc::ptr_eq(&patched[1], &chunks[1]));
        let body = body(&patched);
        assert_eq!(body[70]["weight"], 7);
        assert_eq!(body[71]["weight"], 100);
        assert_eq!(body.as_array().unwrap().len(), 200);
    }

    #[test]
    fn patches_insert_remove_and_split_in_endpoint_order() {
        let chunks = layout((0..10).map(|p| p * 10).map(|p| view(p, 1)).collect(), &[]);
        let edits = vec![
            (("10.0.0.1", 5), Some(view(5, 1))),
            (("10.0.0.1", 20), None),
            (("10.0.0.1", 1000), Some(view(1000, 1))),
        ];
        let patched = patch(&chunks, edits);
        assert_eq!(
            ports(&patched),
            vec![0, 5, 10, 30, 40, 50, 60, 70, 80, 90, 1000]
        );
        let many: Vec<_> = (2000..2200)
            .map(|p| (("10.0.0.1", p), Some(view(p, 1))))
            .collect();
        let grown = patch(&patched, many);
        assert!(grown.iter().all(|c| c.instances.len() <= 2 * CHUNK));
        assert_eq!(ports(&grown).len(), 211);
        let emptied: Vec<_> = ports(&grown)
            .into_iter()
            .map(|p| (("10.0.0.1", p as u16), None))
            .collect();
        assert!(patch(&grown, emptied).is_empty());
    }

    #[test]
    fn unchanged_instances_keep_their_encoding() {
        let chunks = layout((0..3).map(|p| view(p, 1)).collect(), &[]);
        let again = layout(chunks[0].instances.to_vec(), &chunks);
        assert_eq!(again[0].bytes, chunks[0].bytes);
        assert_eq!(again[0].healthy, 3);
    }
}
