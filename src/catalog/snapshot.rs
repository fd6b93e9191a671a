//! Immutable, published views of the catalog. Readers hold an `Arc<Snapshot>`; nothing in
//! here is ever mutated after publication, so no read takes a lock.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use serde::Serialize;
use switchboard_connectors::ServiceKey;
use utoipa::ToSchema;

use super::chunks::{self, Chunk, Endpoint};
use super::formats::{push_item, Bodies, BodySlot, FormatSlot, InstanceEncoder};
pub use super::view::InstanceView;

/// One service in a snapshot. Its instances are kept in chunks whose JSON was encoded
/// once, when they changed; the response body is those pieces joined once, on first use
/// (at publication for services of at most [`EAGER_BODY_BYTES`]).
#[derive(Debug)]
pub struct ServiceView {
    pub key: ServiceKey,
    /// Catalog index of the service's last change.
    pub index: u64,
    chunks: Vec<Arc<Chunk>>,
    /// The JSON array `GET .../instances` returns unfiltered.
    encoded: OnceLock<Bytes>,
    len: usize,
    pub healthy_count: usize,
    /// Sources contributing at least one instance.
    pub sources: Vec<String>,
    /// Front doors' response bodies, joined on first use.
    bodies: Bodies,
}

/// The length of the body [`join`] makes.
fn body_size(chunks: &[Arc<Chunk>]) -> usize {
    chunks.iter().map(|c| c.bytes.len() + 1).sum::<usize>() + 1
}

/// `[`, the chunks' JSON separated by commas, `]`.
fn join(chunks: &[Arc<Chunk>]) -> Bytes {
    let mut json = Vec::with_capacity(body_size(chunks));
    json.push(b'[');
    for (i, chunk) in chunks.iter().enumerate() {
        if i > 0 {
            json.push(b',');
        }
        json.extend_from_slice(&chunk.bytes);
    }
    json.push(b']');
    Bytes::from(json)
}

/// Bodies up to this size are joined when the view is published, so every read of a
/// typical service is a pointer copy; larger ones on the first read after a change.
const EAGER_BODY_BYTES: usize = 512 * 1024;

impl ServiceView {
    pub(super) fn from_chunks(key: ServiceKey, index: u64, chunks: Vec<Arc<Chunk>>) -> ServiceView {
        let len = chunks.iter().map(|c| c.instances.len()).sum();
        let healthy_count = chunks.iter().map(|c| c.healthy).sum();
        let mut sources: Vec<String> =
            (chunks::distinct(chunks.iter().flat_map(|c| c.sources.iter())))
                .iter()
                .map(|source| source.to_string())
                .collect();
        sources.sort();
        let encoded = OnceLock::new();
        let chunks = if body_size(&chunks) <= EAGER_BODY_BYTES {
            // The chunks read their JSON from the body from now on, so the JSON is held
            // once, and no chunk keeps an older body alive.
            let body = join(&chunks);
            let mut at = 1;
            let rebased = (chunks.iter())
                .map(|chunk| {
                    let bytes = body.slice(at..at + chunk.bytes.len());
                    at += chunk.bytes.len() + 1;
                    Arc::new(chunk.rebased(bytes))
                })
                .collect();
            let _ = encoded.set(body);
            rebased
        } else {
            chunks
        };
        ServiceView {
            key,
            index,
            chunks,
            encoded,
            len,
            healthy_count,
            sources,
            bodies: Bodies::default(),
        }
    }

    /// A front door's body: a JSON array of the instances `keep` selects, each in the
    /// chunk format `format`. Cached in `body` (one slot per format and selection), so
    /// repeated reads copy a pointer; each chunk is encoded once per change of it.
    pub fn body_as(
        &self,
        body: BodySlot,
        format: FormatSlot,
        encoder: &dyn InstanceEncoder,
        keep: &dyn Fn(&InstanceView) -> bool,
    ) -> Bytes {
        self.cached(body, |view| view.select_as(format, encoder, keep))
    }

    /// [`ServiceView::body_as`] for a selection made per request (not cached): only the
    /// selection runs, the instances' encodings come from the chunks' caches.
    pub fn select_as(
        &self,
        format: FormatSlot,
        encoder: &dyn InstanceEncoder,
        keep: &dyn Fn(&InstanceView) -> bool,
    ) -> Bytes {
        let mut out = Vec::with_capacity(2);
        out.push(b'[');
        for chunk in &self.chunks {
            let formatted = chunk.formatted(format, encoder);
            if chunk.instances.iter().all(keep) {
                if !formatted.all().is_empty() {
                    push_item(&mut out, formatted.all());
                }
                continue;
            }
            for (i, view) in chunk.instances.iter().enumerate() {
                if keep(view) {
                    push_item(&mut out, formatted.item(i));
                }
            }
        }
        out.push(b']');
        Bytes::from(out)
    }

    /// A front door's value derived from this service, built by `build` on first use.
    pub fn cached(&self, slot: BodySlot, build: impl FnOnce(&ServiceView) -> Bytes) -> Bytes {
        self.bodies[slot.0].get_or_init(|| build(self)).clone()
    }

    pub(super) fn chunks(&self) -> &[Arc<Chunk>] {
        &self.chunks
    }

    /// The unfiltered response body: a JSON array of the instances.
    pub fn encoded(&self) -> Bytes {
        self.encoded.get_or_init(|| join(&self.chunks)).clone()
    }

    /// The instances, sorted by endpoint.
    pub fn instances(&self) -> impl Iterator<Item = &InstanceView> + '_ {
        self.chunks.iter().flat_map(|chunk| chunk.instances.iter())
    }

    /// The instance at an endpoint.
    pub(super) fn at(&self, endpoint: Endpoint<'_>) -> Option<&InstanceView> {
        let i = self.chunks.partition_point(|c| c.last() < endpoint);
        let chunk = self.chunks.get(i)?;
        let j = chunk
            .instances
            .partition_point(|v| chunks::endpoint_of(v) < endpoint);
        chunk
            .instances
            .get(j)
            .filter(|v| chunks::endpoint_of(v) == endpoint)
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// Only while a merge is built: a published snapshot holds no empty view.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// A service in the `GET /api/v1/services` listing.
#[derive(Debug, Serialize, ToSchema)]
pub struct ServiceSummary {
    pub name: String,
    pub namespace: String,
    pub group: String,
    pub instance_count: usize,
    pub healthy_count: usize,
    /// Sources contributing at least one instance.
    pub sources: Vec<String>,
    /// Index of the service's last change.
    pub index: u64,
}

/// What one source contributes, as of a snapshot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SourceCounts {
    pub instances: usize,
    pub services: usize,
    /// Emptyings the wipe-out guard has held so far.
    pub guard_holds: u64,
}

/// Every service sharing one name (different namespaces or groups).
pub type ViewsOfName = Arc<[Arc<ServiceView>]>;

/// How many pieces the by-name index is kept in. Publishing copies one pointer per piece
/// and clones only the pieces a batch changed, so its cost does not grow with the number
/// of services.
const SHARDS: usize = 256;

/// Services by name, in shards shared between snapshots until a batch changes one.
#[derive(Clone, Debug)]
pub(crate) struct ByName {
    shards: Vec<Arc<HashMap<Arc<str>, ViewsOfName>>>,
}

impl Default for ByName {
    fn default() -> ByName {
        ByName {
            shards: (0..SHARDS).map(|_| Arc::default()).collect(),
        }
    }
}

impl ByName {
    /// FNV-1a: cheap, and the shard only spreads names; each shard is a `HashMap`.
    fn shard(name: &str) -> usize {
        let hash = crate::fnv::hash(&[name.as_bytes()]);
        (hash % SHARDS as u64) as usize
    }

    pub fn get(&self, name: &str) -> Option<&ViewsOfName> {
        self.shards[ByName::shard(name)].get(name)
    }

    /// Sets the views of `name`; the shard is copied first if a snapshot still shares it.
    pub fn insert(&mut self, name: Arc<str>, views: ViewsOfName) {
        Arc::make_mut(&mut self.shards[ByName::shard(&name)]).insert(name, views);
    }

    /// Forgets `name` (its last view was emptied).
    pub fn remove(&mut self, name: &str) {
        let shard = &mut self.shards[ByName::shard(name)];
        if shard.contains_key(name) {
            Arc::make_mut(shard).remove(name);
        }
    }

    pub fn values(&self) -> impl Iterator<Item = &ViewsOfName> {
        self.shards.iter().flat_map(|shard| shard.values())
    }
}

/// The whole catalog at one moment.
#[derive(Debug)]
pub struct Snapshot {
    /// Highest index of any change so far.
    pub index: u64,
    /// The index a service with no view reports: the last change that emptied a service
    /// (whose view was then dropped). A client that saw a service before it was emptied
    /// holds a lower index, so its blocking query answers at once instead of missing the
    /// removal; a name that never existed answers this too, harmlessly.
    pub absent_index: u64,
    /// Services by name; a name usually has one entry (one namespace and group). Shared
    /// pointers throughout, so publishing a snapshot copies no service data.
    by_name: ByName,
    /// The unfiltered service listing, encoded on first use.
    listing: OnceLock<Bytes>,
    /// Per-source counts, by source id.
    sources: HashMap<String, SourceCounts>,
    /// Front doors' catalog-wide bodies, built on first use.
    bodies: Bodies,
}

impl Snapshot {
    pub fn empty() -> Snapshot {
        Snapshot::empty_at(0)
    }

    /// An empty catalog whose index is `index`.
    pub fn empty_at(index: u64) -> Snapshot {
        Snapshot::new(index, index, ByName::default(), HashMap::new())
    }

    pub(crate) fn new(
        index: u64,
        absent_index: u64,
        by_name: ByName,
        sources: HashMap<String, SourceCounts>,
    ) -> Snapshot {
        Snapshot {
            index,
            absent_index,
            by_name,
            listing: OnceLock::new(),
            sources,
            bodies: Bodies::default(),
        }
    }

    /// A front door's catalog-wide body, built by `build` on first use per snapshot.
    pub fn body(&self, slot: BodySlot, build: impl FnOnce(&Snapshot) -> Bytes) -> Bytes {
        self.bodies[slot.0].get_or_init(|| build(self)).clone()
    }

    /// What each source contributes.
    pub fn sources(&self) -> &HashMap<String, SourceCounts> {
        &self.sources
    }

    /// One service with at least one instance.
    pub fn service(&self, namespace: &str, group: &str, name: &str) -> Option<&Arc<ServiceView>> {
        self.by_name
            .get(name)?
            .iter()
            .find(|view| view.key.namespace == namespace && view.key.group == group)
    }

    /// The index of a service's last change: its view's, or for a service with no
    /// instances, [`Snapshot::absent_index`].
    pub fn service_index(&self, namespace: &str, group: &str, name: &str) -> u64 {
        self.service(namespace, group, name)
            .map_or(self.absent_index, |view| view.index)
    }

    /// How many services have a view (every one of them has instances).
    pub fn view_count(&self) -> usize {
        self.by_name.values().map(|views| views.len()).sum()
    }

    /// Every service with at least one instance, sorted by (namespace, group, name).
    pub fn services(&self) -> Vec<&Arc<ServiceView>> {
        let mut all: Vec<_> = self
            .by_name
            .values()
            .flat_map(|views| views.iter())
            .collect();
        all.sort_by(|a, b| a.key.cmp(&b.key));
        all
    }

    /// The `GET /api/v1/services` body for the given filters; unfiltered it is cached.
    pub fn listing(&self, namespace: Option<&str>, group: Option<&str>) -> Bytes {
        if namespace.is_none() && group.is_none() {
            self.listing
                .get_or_init(|| self.listing_within(None, None, &|_| true))
                .clone()
        } else {
            self.listing_within(namespace, group, &|_| true)
        }
    }

    /// [`Snapshot::listing`] of the namespaces `visible` lets through, encoded for this
    /// request (a caller whose token reaches only some namespaces).
    pub fn listing_within(
        &self,
        namespace: Option<&str>,
        group: Option<&str>,
        visible: &dyn Fn(&str) -> bool,
    ) -> Bytes {
        let summaries: Vec<ServiceSummary> = self
            .services()
            .into_iter()
            .filter(|view| namespace.is_none_or(|ns| view.key.namespace == ns))
            .filter(|view| group.is_none_or(|g| view.key.group == g))
            .filter(|view| visible(&view.key.namespace))
            .map(|view| ServiceSummary {
                name: view.key.name.clone(),
                namespace: view.key.namespace.clone(),
                group: view.key.group.clone(),
                instance_count: view.len(),
                healthy_count: view.healthy_count,
                sources: view.sources.clone(),
                index: view.index,
            })
            .collect();
        Bytes::from(serde_json::to_vec(&summaries).expect("summaries serialize"))
    }
}
