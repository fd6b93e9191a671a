//! The merge rules in force: the config file's `[[merge]]` first (read-only), then the
//! rules set through `PUT /api/v1/merge`, which are stored and come back after a restart.

use serde::Serialize;
use utoipa::ToSchema;

use super::{Origin, SourceStore};
use crate::catalog::{Catalog, MergeRule, MergeRules, Policy};
use crate::registry::StoreError;

/// A rule as `GET /api/v1/merge` shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct RuleView {
    #[serde(flatten)]
    pub rule: MergeRule,
    pub origin: Origin,
}

/// `GET /api/v1/merge`.
#[derive(Debug, Serialize, ToSchema)]
pub struct MergeRulesView {
    /// The policy of services no rule matches.
    pub default: Policy,
    /// In the order they are tried; the first match decides.
    pub rules: Vec<RuleView>,
}

/// The file's rules and the API's, and where the API's are kept.
pub struct MergeSettings {
    file: Vec<MergeRule>,
    api: tokio::sync::Mutex<Vec<MergeRule>>,
    store: SourceStore,
    catalog: Catalog,
}

impl MergeSettings {
    /// Loads the API's stored rules and hands every rule to the catalog.
    pub async fn start(
        file: Vec<MergeRule>,
        store: SourceStore,
        catalog: Catalog,
    ) -> anyhow::Result<MergeSettings> {
        let api = store.blocking(|store| store.merge_rules()).await?;
        let settings = MergeSettings {
            file,
            api: tokio::sync::Mutex::new(api),
            store,
            catalog,
        };
        let api = settings.api.lock().await.clone();
        settings.catalog.set_rules(settings.combined(&api)).await;
        Ok(settings)
    }

    fn combined(&self, api: &[MergeRule]) -> MergeRules {
        MergeRules(self.file.iter().chain(api).cloned().collect())
    }

    pub async fn view(&self) -> MergeRulesView {
        let api = self.api.lock().await;
        let shown = |rules: &[MergeRule], origin| {
            rules
                .iter()
                .map(move |rule| RuleView {
                    rule: rule.clone(),
                    origin,
                })
                .collect::<Vec<_>>()
        };
        let mut rules = shown(&self.file, Origin::File);
        rules.extend(shown(&api, Origin::Api));
        MergeRulesView {
            default: Policy::Union,
            rules,
        }
    }

    /// Replaces the API's rules (checked by the caller, [`MergeRule::validate`]): stored,
    /// then applied to every service.
    pub async fn replace(&self, rules: Vec<MergeRule>) -> Result<(), StoreError> {
        let mut api = self.api.lock().await;
        let stored = rules.clone();
        self.store
            .blocking(move |store| store.put_merge_rules(&stored))
            .await?;
        self.catalog.set_rules(self.combined(&rules)).await;
        *api = rules;
        Ok(())
    }
}
