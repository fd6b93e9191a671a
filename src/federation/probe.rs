//! `POST /api/v1/sources:validate`: check a document and try to connect, without adding
//! the source. It reports what the source would contribute (after its name mapping) or
//! why it could not connect.

use std::collections::HashSet;
use std::time::Duration;

use chrono::Utc;
use futures::StreamExt;
use serde::Serialize;
use serde_json::Value;
use switchboard_connectors::{ConnectorError, Update};
use utoipa::ToSchema;

use super::manage::parse;
use super::status::LastError;
use super::{names_of, Federation, FederationError};
use crate::catalog::Mapped;

/// The longest a dry run waits for the source's first full view.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// What a dry run found.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProbeReport {
    /// The document is acceptable (an unacceptable one is a 400 instead).
    pub valid: bool,
    /// The source answered with a full view.
    pub reachable: bool,
    /// Services and instances the source would serve; null when unreachable.
    pub services: Option<usize>,
    pub instances: Option<usize>,
    /// Why it could not connect.
    pub error: Option<LastError>,
}

impl Federation {
    /// Checks `document` and tries to connect; nothing is added or stored.
    pub async fn probe(&self, document: Value) -> Result<ProbeReport, FederationError> {
        let (config, connector) = parse(document)?;
        let first_view = async {
            let mut stream = connector.watch().await?;
            match stream.next().await {
                Some(Ok(Update::Reset(instances))) => Ok(instances),
                Some(Ok(_)) => Err(ConnectorError::Protocol(
                    "the first update was not a full view".to_owned(),
                )),
                Some(Err(err)) => Err(err),
                None => Err(ConnectorError::Connection(
                    "the source closed its stream".to_owned(),
                )),
            }
        };
        let outcome = tokio::time::timeout(PROBE_TIMEOUT, first_view)
            .await
            .unwrap_or_else(|_| {
                Err(ConnectorError::Connection(format!(
                    "no full view within {PROBE_TIMEOUT:?}"
                )))
            });
        Ok(match outcome {
            Ok(instances) => {
                let names = names_of(&config);
                let mut services = HashSet::new();
                let mut served = 0;
                for instance in &instances {
                    if let Mapped::Served(key) = names.map(&instance.service) {
                        services.insert(key);
                        served += 1;
                    }
                }
                ProbeReport {
                    valid: true,
                    reachable: true,
                    services: Some(services.len()),
                    instances: Some(served),
                    error: None,
                }
            }
            Err(err) => ProbeReport {
                valid: true,
                reachable: false,
                services: None,
                instances: None,
                error: Some(LastError {
                    kind: err.kind(),
                    message: err.to_string(),
                    time: Utc::now(),
                }),
            },
        })
    }
}
