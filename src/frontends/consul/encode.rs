//! Consul shapes of merged instances.
