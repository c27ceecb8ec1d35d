//! Step 4 of the request path: which upstream serves this request.
//!
//! * [`health`]: the live state of each upstream (in-flight count, failures, cooldown, latency), kept across
//!   config reloads by upstream id.
//! * [`balancer`]: priority tiers, then the configured strategy within the best tier that has an eligible
//!   upstream; session affinity by weighted rendezvous hashing when a session key is known.
//! * [`affinity`]: where the session key of a request comes from.

pub mod affinity;
pub mod balancer;
pub mod health;
pub mod pins;
pub mod shared_pins;

pub use balancer::Balancer;
pub use health::UpstreamState;
pub use pins::SessionPins;
