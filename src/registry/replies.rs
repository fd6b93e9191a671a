//! What the registry answers beyond an instance view: heartbeat replies, health, removals.

use chrono::{DateTime, Utc};
use serde::Serialize;
use switchboard_connectors::{Check, Status};
use utoipa::ToSchema;

/// Reply to a heartbeat.
#[derive(Debug, Serialize, ToSchema)]
pub struct HeartbeatReply {
    pub id: String,
    pub status: Status,
    pub last_heartbeat: DateTime<Utc>,
    /// True when this heartbeat brought an expired instance back.
    pub revived: bool,
}

/// `GET /api/v1/instances/{id}/health`.
#[derive(Debug, Serialize, ToSchema)]
pub struct InstanceHealth {
    pub id: String,
    pub service: String,
    pub status: Status,
    pub healthy: bool,
    /// Time since `start_time`, Go style (`3h25m10s`).
    pub uptime: String,
    pub uptime_seconds: u64,
    /// Time since `register_time`, Go style.
    pub register_duration: String,
    pub register_duration_seconds: u64,
    /// The last heartbeat.
    pub last_check: Option<DateTime<Utc>>,
    pub ttl_seconds: u64,
    /// Seconds until TTL expiry marks the instance offline (0 when already offline).
    pub expires_in_seconds: u64,
    /// The instance's health checks with their latest output (discovery shows the
    /// output seen when the status last changed). Absent when it has none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<Check>,
}

/// `DELETE /api/v1/admin/services/{name}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct RemovalReport {
    pub service_name: String,
    pub namespace: String,
    pub group: String,
    pub total_instances: usize,
    pub removed_count: usize,
    pub errors: Vec<String>,
}
