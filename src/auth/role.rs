//! Roles, each including the ones before it: `read` < `register` < `operate` < `admin`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What a token may do, within its namespaces.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Discovery: services, instances, watches, explain, stats.
    Read,
    /// Also the native registry's writes: register, heartbeat, status, deregister.
    Register,
    /// Also sources, merge rules and sync jobs (with their validate and plan).
    Operate,
    /// Also tokens and the admin routes: everything.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Register => "register",
            Role::Operate => "operate",
            Role::Admin => "admin",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::Role;

    #[test]
    fn each_role_includes_the_ones_before_it() {
        assert!(Role::Read < Role::Register);
        assert!(Role::Register < Role::Operate);
        assert!(Role::Operate < Role::Admin);
        assert_eq!(
            serde_json::to_string(&Role::Operate).unwrap(),
            "\"operate\""
        );
    }
}
