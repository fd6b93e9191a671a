//! The tokens: held in memory so every request is checked without a store read, written
//! through to the store so they survive restarts. A revoked token is gone from memory
//! before its revocation is answered, and whatever waits on it hears so
//! ([`Tokens::invalidated`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::{watch, Mutex};
use utoipa::ToSchema;

use super::secret::{self, Hash};
use super::{Role, Scope};
use crate::store::{Blocking, StoreError, TokenStore};

/// One token. Its secret is not kept, only the secret's hash.
pub struct Token {
    pub id: String,
    pub name: String,
    pub role: Role,
    pub scope: Scope,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    /// The id of the token that created it; none for the bootstrap token.
    pub created_by: Option<String>,
    hash: Hash,
}

/// Everything but the hash, which is no business of a log line.
impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("role", &self.role)
            .field("scope", &self.scope)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl Token {
    pub fn expired_at(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }

    /// What the API shows of it: everything but the hash.
    pub fn view(&self) -> TokenView {
        TokenView {
            id: self.id.clone(),
            name: self.name.clone(),
            role: self.role,
            namespaces: self.scope.patterns().to_vec(),
            created_at: self.created_at,
            expires_at: self.expires_at,
            created_by: self.created_by.clone(),
            secret: None,
        }
    }
}

/// A token as the API shows it. `secret` is there once: in the answer that created it.
/// (No `Debug`: nothing may print it by accident.)
#[derive(Clone, Serialize, Deserialize, ToSchema)]
pub struct TokenView {
    /// The token's id (16 hex digits); not a secret, it names the token in lists and logs.
    pub id: String,
    pub name: String,
    pub role: Role,
    /// Namespace names or globs the token reaches.
    pub namespaces: Vec<String>,
    pub created_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    /// The id of the token that created this one (none for the bootstrap token).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    /// The secret to present, shown only when the token is created. Keep it: it cannot
    /// be shown again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

/// Body of `POST /api/v1/tokens`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// What the token is for (1-128 characters), shown in lists and the audit log.
    #[schema(example = "billing-deployer")]
    pub name: String,
    pub role: Role,
    /// Namespace names or globs (`*`, `?`); `["*"]` for every namespace. Within the
    /// creating token's own.
    #[schema(example = json!(["billing", "billing-*"]))]
    pub namespaces: Vec<String>,
    /// How long the token lives (`90d` is written `2160h`); forever when absent.
    #[serde(default)]
    #[schema(value_type = Option<String>, example = "720h")]
    pub expires_in: Option<String>,
}

/// Why a token could not be created.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("{field}: {message}")]
    Invalid {
        code: &'static str,
        field: String,
        message: String,
    },
    /// It would reach beyond the creating token.
    #[error("{0}")]
    Beyond(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a presented secret was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Denied {
    /// No credential, and anonymous access is off.
    Missing,
    /// Not a token this server issued, or one since revoked.
    Invalid,
    Expired,
}

impl Denied {
    pub fn reason(self) -> &'static str {
        match self {
            Denied::Missing => "missing",
            Denied::Invalid => "invalid",
            Denied::Expired => "expired",
        }
    }
}

/// The stored form of a token.
#[derive(Serialize, Deserialize)]
struct Record {
    id: String,
    name: String,
    role: Role,
    namespaces: Scope,
    created_at: DateTime<Utc>,
    #[serde(default)]
    expires_at: Option<DateTime<Utc>>,
    #[serde(default)]
    created_by: Option<String>,
    /// SHA-256 of the secret, hex.
    hash: String,
}

/// The longest name a token may have.
const MAX_NAME: usize = 128;

/// Every token.
pub struct Tokens {
    live: ArcSwap<HashMap<String, Arc<Token>>>,
    store: Arc<dyn TokenStore>,
    /// Bumped at each revocation; [`Tokens::invalidated`] waits on it.
    revocations: watch::Sender<u64>,
    /// One change at a time, so two changes never publish from the same old map.
    writes: Mutex<()>,
}

impl Tokens {
    /// Loads every stored token. A record that cannot be read is skipped and logged.
    pub fn load(store: Arc<dyn TokenStore>) -> Result<Tokens, StoreError> {
        let mut live = HashMap::new();
        for (id, value) in store.tokens()? {
            match serde_json::from_value::<Record>(value) {
                Ok(record) => match secret::unhex::<32>(&record.hash) {
                    Some(hash) => {
                        live.insert(id, Arc::new(from_record(record, hash)));
                    }
                    None => {
                        tracing::error!(token = %id, "Skipping a stored token with a malformed hash")
                    }
                },
                Err(err) => {
                    tracing::error!(token = %id, error = %err, "Skipping an unreadable stored token")
                }
            }
        }
        Ok(Tokens {
            live: ArcSwap::from_pointee(live),
            store,
            revocations: watch::channel(0).0,
            writes: Mutex::new(()),
        })
    }

    pub fn len(&self) -> usize {
        self.live.load().len()
    }

    pub fn is_empty(&self) -> bool {
        self.live.load().is_empty()
    }

    /// The token `secret` belongs to, if it is live.
    pub fn authenticate(&self, secret: &str) -> Result<Arc<Token>, Denied> {
        let id = secret::id_of(secret).ok_or(Denied::Invalid)?;
        let token = self.live.load().get(id).cloned().ok_or(Denied::Invalid)?;
        if !secret::verify(secret, &token.hash) {
            return Err(Denied::Invalid);
        }
        if token.expired_at(Utc::now()) {
            return Err(Denied::Expired);
        }
        Ok(token)
    }

    /// Every token, oldest first.
    pub fn list(&self) -> Vec<Arc<Token>> {
        let mut tokens: Vec<_> = self.live.load().values().cloned().collect();
        tokens.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        tokens
    }

    pub fn get(&self, id: &str) -> Option<Arc<Token>> {
        self.live.load().get(id).cloned()
    }

    /// Creates a token as `by` asks (none: the bootstrap token), durably, and returns it
    /// with its secret. It may not reach beyond `by`: no higher role, no namespace `by`
    /// does not reach, no later expiry.
    pub async fn create(
        &self,
        request: TokenRequest,
        by: Option<&Token>,
    ) -> Result<(Arc<Token>, String), TokenError> {
        let invalid = |code, field: &str, message: String| TokenError::Invalid {
            code,
            field: field.to_owned(),
            message,
        };
        let name = request.name.trim();
        if name.is_empty() || name.len() > MAX_NAME || name.chars().any(char::is_control) {
            return Err(invalid(
                "invalid_token_name",
                "name",
                format!("name must be 1-{MAX_NAME} characters, none of them control characters"),
            ));
        }
        let scope = Scope::new(request.namespaces)
            .map_err(|(field, message)| invalid("invalid_namespaces", &field, message))?;
        let lifetime = match &request.expires_in {
            None => None,
            Some(text) => Some(
                parse_lifetime(text)
                    .map_err(|message| invalid("invalid_expires_in", "expires_in", message))?,
            ),
        };
        if let Some(by) = by {
            if request.role > by.role {
                return Err(TokenError::Beyond(format!(
                    "a `{}` token cannot create a `{}` token",
                    by.role, request.role
                )));
            }
            if !by.scope.covers(&scope) {
                return Err(TokenError::Beyond(format!(
                    "namespaces ({}) reach beyond this token's ({})",
                    scope.patterns().join(", "),
                    by.scope.patterns().join(", ")
                )));
            }
        }
        let (id, secret) = secret::generate();
        let now = Utc::now();
        let token = Arc::new(Token {
            id,
            name: name.to_owned(),
            role: request.role,
            scope,
            created_at: now,
            expires_at: earliest(
                lifetime.map(|lifetime| now + lifetime),
                by.and_then(|by| by.expires_at),
            ),
            created_by: by.map(|by| by.id.clone()),
            hash: secret::hash(&secret),
        });
        let record = serde_json::to_value(to_record(&token)).map_err(StoreError::from)?;
        let _writing = self.writes.lock().await;
        let id = token.id.clone();
        self.store
            .blocking(move |store| store.put_token(&id, &record))
            .await?;
        let mut live = HashMap::clone(&self.live.load());
        live.insert(token.id.clone(), token.clone());
        self.live.store(Arc::new(live));
        Ok((token, secret))
    }

    /// Revokes token `id` durably; whatever waits on it ([`Tokens::invalidated`]) ends.
    /// The token it was, if there was one.
    pub async fn revoke(&self, id: &str) -> Result<Option<Arc<Token>>, StoreError> {
        let _writing = self.writes.lock().await;
        let Some(token) = self.get(id) else {
            return Ok(None);
        };
        let owned = id.to_owned();
        self.store
            .blocking(move |store| store.delete_token(&owned))
            .await?;
        let mut live = HashMap::clone(&self.live.load());
        live.remove(id);
        self.live.store(Arc::new(live));
        self.revocations.send_modify(|count| *count += 1);
        Ok(Some(token))
    }

    /// Completes when `token` stops working: revoked, or past its expiry.
    pub async fn invalidated(&self, token: &Token) {
        let mut revocations = self.revocations.subscribe();
        let revoked = async {
            loop {
                if !self.live.load().contains_key(&token.id) {
                    return;
                }
                if revocations.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        };
        let expired = async {
            let Some(at) = token.expires_at else {
                return std::future::pending().await;
            };
            // In steps of at most a day: a far expiry is no overflow, and the clock is
            // read again on each step.
            loop {
                let left = (at - Utc::now()).to_std().unwrap_or_default();
                if left.is_zero() {
                    return;
                }
                tokio::time::sleep(left.min(Duration::from_secs(86_400))).await;
            }
        };
        tokio::select! {
            () = revoked => {}
            () = expired => {}
        }
    }
}

/// The earlier of two expiries, where none is never.
fn earliest(a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// A token's lifetime: a duration such as `30m`, `24h` or `720h`, at least a second.
fn parse_lifetime(text: &str) -> Result<chrono::Duration, String> {
    let lifetime = crate::duration::parse(text)
        .map_err(|err| format!("`{text}` is not a duration such as 24h: {err}"))?;
    if lifetime < Duration::from_secs(1) {
        return Err("expires_in must be at least 1s".into());
    }
    chrono::Duration::from_std(lifetime).map_err(|_| format!("`{text}` is too long"))
}

fn from_record(record: Record, hash: Hash) -> Token {
    Token {
        id: record.id,
        name: record.name,
        role: record.role,
        scope: record.namespaces,
        created_at: record.created_at,
        expires_at: record.expires_at,
        created_by: record.created_by,
        hash,
    }
}

fn to_record(token: &Token) -> Record {
    Record {
        id: token.id.clone(),
        name: token.name.clone(),
        role: token.role,
        namespaces: token.scope.clone(),
        created_at: token.created_at,
        expires_at: token.expires_at,
        created_by: token.created_by.clone(),
        hash: secret::hex(&token.hash),
    }
}
