//! `POST /api/v1/sources:validate`: check a document and try to connect, without adding
//! the source. It reports what the source would contribute (after its name mapping) or
//! why it could not connect. The address is the client's to choose, so the attempt is
//! short (the caller's `timeout`; the API also caps how many run at once) and the error
//! shown is a short, cleaned excerpt, never a remote page relayed whole.

use std::collections::HashSet;
use std::time::Duration;

use chrono::Utc;
use futures::StreamExt;
use serde::Serialize;
use serde_json::Value;
use switchboard_connectors::{excerpt, ConnectorError, Update, EXCERPT_CHARS};
use utoipa::ToSchema;

use super::manage::parse;
use super::status::LastError;
use super::{names_of, Federation, FederationError};
use crate::catalog::Mapped;

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
    /// Checks `document` and tries to connect for at most `timeout`; nothing is added or
    /// stored.
    pub async fn probe(
        &self,
        document: Value,
        timeout: Duration,
    ) -> Result<ProbeReport, FederationError> {
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
        let outcome = tokio::time::timeout(timeout, first_view)
            .await
            .unwrap_or_else(|_| {
                Err(ConnectorError::Connection(format!(
                    "no full view within {timeout:?}"
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
                    // The adapters cut what they relay already; this bounds what any
                    // adapter (a gRPC status message too) can pass on.
                    message: excerpt(&err.to_string(), 2 * EXCERPT_CHARS),
                    time: Utc::now(),
                }),
            },
        })
    }
}
