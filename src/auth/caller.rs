//! Who is asking: what every front door hands its handlers once the credential checks.

use std::sync::Arc;

use super::{Role, Token};

/// The party behind a request.
#[derive(Clone, Debug)]
pub enum Caller {
    /// Access control is off: everyone may do everything.
    Unchecked,
    /// No credential, and `auth.anonymous` lets such callers in with this role, over
    /// every namespace.
    Anonymous(Role),
    Token(Arc<Token>),
}

impl Caller {
    pub fn role(&self) -> Role {
        match self {
            Caller::Unchecked => Role::Admin,
            Caller::Anonymous(role) => *role,
            Caller::Token(token) => token.role,
        }
    }

    /// Whether the caller has `role` (or one above it).
    pub fn has(&self, role: Role) -> bool {
        self.role() >= role
    }

    /// Whether the caller reaches `namespace`.
    pub fn reaches(&self, namespace: &str) -> bool {
        match self {
            Caller::Token(token) => token.scope.allows(namespace),
            _ => true,
        }
    }

    /// Whether the caller reaches every namespace, as server-wide resources need.
    pub fn reaches_everything(&self) -> bool {
        match self {
            Caller::Token(token) => token.scope.is_everything(),
            _ => true,
        }
    }

    pub fn token(&self) -> Option<&Arc<Token>> {
        match self {
            Caller::Token(token) => Some(token),
            _ => None,
        }
    }
}
