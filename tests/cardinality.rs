//! Metrics cardinality under random paths and tenants.
