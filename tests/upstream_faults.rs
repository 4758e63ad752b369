//! Upstream faults: resets, garbage, bad framing, retries.
