//! CCGate: a gateway that shares Claude Code API keys with tenants, each with its own key, model permissions,
//! budgets and usage figures, over the Anthropic Messages API (`/anthropic`) and the OpenAI Chat Completions API
//! (`/openai`).
//!
//! The request path, in order (see `server` for the picture, `api::proxy` for the code):
//! listener → [`auth`] → [`policy`] → [`routing`] → [`forward`] → [`tee`] → [`ledger`].

pub mod alerts;
pub mod api;
pub mod auth;
pub mod cli;
pub mod config;
pub mod dashboard;
pub mod error;
pub mod forward;
pub mod ledger;
pub mod policy;
pub mod routing;
pub mod server;
pub mod state;
pub mod tee;
pub mod telemetry;
pub mod tenants;
pub mod trust;
