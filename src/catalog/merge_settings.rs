//! The merge rules in force: the config file's `[[merge]]` first (read-only), then the
//! rules set through `PUT /api/v1/merge`, which are stored and come back after a restart.

use serde::Serialize;
use utoipa::ToSchema;

use std::sync::Arc;

use super::{Catalog, MergeRule, MergeRules, Policy};
use crate::store::{Blocking, SettingStore, StoreError};
use crate::vocab::Origin;

/// The setting the API's rules are stored under.
const MERGE_RULES: &str = "merge_rules";

/// A rule as `GET /api/v1/merge` shows it: the rule's fields and its origin. Spelled out
/// rather than flattening [`MergeRule`], whose schema allows no other field.
#[derive(Debug, Serialize, ToSchema)]
pub struct RuleView {
    /// Service-name globs, always a list here.
    pub services: Vec<String>,
    pub policy: Policy,
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
    store: Arc<dyn SettingStore>,
    catalog: Catalog,
}

impl MergeSettings {
    /// Loads the API's stored rules and hands every rule to the catalog.
    pub async fn start(
        file: Vec<MergeRule>,
        store: Arc<dyn SettingStore>,
        catalog: Catalog,
    ) -> anyhow::Result<MergeSettings> {
        let stored = store.blocking(|store| store.setting(MERGE_RULES)).await?;
        let api: Vec<MergeRule> = match stored {
            Some(rules) => serde_json::from_value(rules)?,
            None => Vec::new(),
        };
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
                    services: rule.services.clone(),
                    policy: rule.policy,
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
        let stored = serde_json::to_value(&rules)?;
        self.store
            .blocking(move |store| store.put_setting(MERGE_RULES, &stored))
            .await?;
        self.catalog.set_rules(self.combined(&rules)).await;
        *api = rules;
        Ok(())
    }
}
