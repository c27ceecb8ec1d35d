//! Step 3 of the request path: may this tenant make this request now?
//! Model permissions ([`permissions`]), then rate and concurrency limits and budget reservations ([`budget`]).

pub mod budget;
pub mod history;
pub mod lease;
pub mod permissions;
pub mod rolling;
