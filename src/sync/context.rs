//! What every sync job shares: the catalog, the federation, the registry, the store and
//! the echo filter; and the planner's view of the world (which writes are echoes, which
//! sources' silence can be trusted, which targets are reachable).

use std::collections::BTreeSet;
use std::sync::Arc;

use switchboard_connectors::{ServiceKey, SourceConfig};

use super::echoes::Echoes;
use super::ledger::Ledger;
use super::plan::World;
use super::spec::SyncSpec;
use super::target::{Target, WriteError};
use crate::catalog::{Catalog, KeyFilter, ServiceReports};
use crate::federation::Federation;
use crate::registry::Registry;
use crate::store::SyncStore;
use crate::telemetry::Metrics;
use crate::vocab::{SourceState, NATIVE_SOURCE};

/// What every job shares.
pub struct Context {
    pub catalog: Catalog,
    pub federation: Arc<Federation>,
    pub registry: Arc<Registry>,
    pub store: Arc<dyn SyncStore>,
    pub echoes: Echoes,
    pub metrics: Arc<Metrics>,
}

impl World for Context {
    fn is_echo(&self, source: &str, name: &str, host: &str, port: u16) -> bool {
        self.echoes.contains(source, name, host, port)
    }

    fn trusts_absence(&self, source: &str) -> Result<(), String> {
        if source == NATIVE_SOURCE {
            return Ok(());
        }
        // A deleted or disconnected source is an operator's decision, not an outage.
        match self.federation.source_state(source) {
            None | Some(SourceState::Ready | SourceState::Degraded | SourceState::Disconnected) => {
                Ok(())
            }
            Some(other) => Err(format!("source `{source}` is {}", other.as_str())),
        }
    }

    fn sees(&self, target: &str) -> bool {
        target == NATIVE_SOURCE
            || matches!(
                self.federation.source_state(target),
                Some(SourceState::Ready | SourceState::Degraded)
            )
    }
}

impl Context {
    /// The target `spec` writes into, built from `config`, the target source's
    /// configuration ([`Context::target_config`]).
    pub fn target(
        &self,
        spec: &SyncSpec,
        config: Option<&SourceConfig>,
    ) -> Result<Target, WriteError> {
        if spec.to_native() {
            return Ok(Target::Native(self.registry.clone()));
        }
        let config = config.ok_or_else(|| {
            WriteError::NotWritable(format!("target source `{}` does not exist", spec.to))
        })?;
        Target::external(config)
    }

    /// The configuration of `spec`'s target source (`None` for the native registry or a
    /// missing source).
    pub fn target_config(&self, spec: &SyncSpec) -> Option<SourceConfig> {
        (!spec.to_native())
            .then(|| self.federation.source_config(&spec.to))
            .flatten()
    }

    /// Every source's report of the services `spec` covers or `ledger` holds (or only
    /// of `keys`, when given).
    pub fn reports(
        &self,
        spec: &SyncSpec,
        ledger: &Ledger,
        keys: Option<Vec<ServiceKey>>,
    ) -> Vec<ServiceReports> {
        let target = Some(spec.to.as_str());
        match keys {
            Some(keys) => self.catalog.reports(&KeyFilter::Keys(keys), target),
            None => {
                let covering = spec.clone();
                let matching = KeyFilter::Matching(Arc::new(move |key: &ServiceKey| {
                    covering.covers(&key.name)
                }));
                let mut reports = self.catalog.reports(&matching, target);
                let seen: BTreeSet<&ServiceKey> = reports.iter().map(|r| &r.key).collect();
                let unseen: BTreeSet<ServiceKey> = (ledger.keys())
                    .map(|spot| &spot.service)
                    .filter(|key| !seen.contains(key))
                    .cloned()
                    .collect();
                if !unseen.is_empty() {
                    let keys = KeyFilter::Keys(unseen.into_iter().collect());
                    reports.extend(self.catalog.reports(&keys, target));
                }
                reports
            }
        }
    }
}
