//! The columns of a `requests` row and their values, shared by both backends so the two cannot drift apart.

use super::rollup::{HourKey, RollupDelta, RollupKey};
use super::{Outcome, Record};
use sqlx::query_builder::Separated;
use sqlx::{Database, Encode, Type};

/// The columns of `requests` that a row fills, in the order [`push_request_values`] binds them.
pub const REQUEST_COLUMNS: &str = "ts_ms, day, request_id, tenant_id, upstream_id,
    upstream_request_id, protocol, endpoint, model, upstream_model, stream, status, outcome, error_class, input_tokens,
    cache_write_5m_tokens, cache_write_1h_tokens, cache_read_tokens, output_tokens, thinking_tokens,
    web_search_requests, cost_nanousd, upstream_cost_nanousd, priced, price_version, latency_ms, ttft_ms, session_id,
    billable, instance_id, client_request_id, imported, original_cost_nanousd";

/// Binds one row's values for a multi-row `INSERT INTO requests (REQUEST_COLUMNS) VALUES …`.
pub fn push_request_values<'args, DB>(
    b: &mut Separated<'_, 'args, DB, &'static str>,
    r: &'args Record,
) where
    DB: Database,
    i64: Encode<'args, DB> + Type<DB>,
    i32: Encode<'args, DB> + Type<DB>,
    bool: Encode<'args, DB> + Type<DB>,
    &'args str: Encode<'args, DB> + Type<DB>,
    Option<&'args str>: Encode<'args, DB> + Type<DB>,
    Option<i64>: Encode<'args, DB> + Type<DB>,
    Outcome: Encode<'args, DB> + Type<DB>,
{
    b.push_bind(r.ts_ms)
        .push_bind(r.day.as_str())
        .push_bind(r.request_id.as_str())
        .push_bind(r.tenant_id.as_str())
        .push_bind(r.upstream_id.as_deref())
        .push_bind(r.upstream_request_id.as_deref())
        .push_bind(r.protocol)
        .push_bind(r.endpoint)
        .push_bind(r.model.as_str())
        .push_bind(r.upstream_model.as_deref())
        .push_bind(r.stream)
        .push_bind(i32::from(r.status))
        .push_bind(r.outcome)
        .push_bind(r.error_class.as_deref())
        .push_bind(r.input_tokens)
        .push_bind(r.cache_write_5m_tokens)
        .push_bind(r.cache_write_1h_tokens)
        .push_bind(r.cache_read_tokens)
        .push_bind(r.output_tokens)
        .push_bind(r.thinking_tokens)
        .push_bind(r.web_search_requests)
        .push_bind(r.cost_nanousd)
        .push_bind(r.upstream_cost_nanousd)
        .push_bind(r.priced)
        .push_bind(r.price_version.as_str())
        .push_bind(r.latency_ms)
        .push_bind(r.ttft_ms)
        .push_bind(r.session_id.as_deref())
        .push_bind(r.billable)
        .push_bind(r.instance_id.as_deref())
        .push_bind(r.client_request_id.as_deref())
        .push_bind(r.imported)
        .push_bind(r.original_cost_nanousd);
}

/// Binds a rollup group to the backend's `UPSERT_ROLLUP` statement, whose 14 parameters are in this order.
pub fn bind_rollup<'q, DB>(
    q: sqlx::query::Query<'q, DB, <DB as Database>::Arguments<'q>>,
    k: &RollupKey<'q>,
    d: &RollupDelta,
) -> sqlx::query::Query<'q, DB, <DB as Database>::Arguments<'q>>
where
    DB: Database,
    i64: Encode<'q, DB> + Type<DB>,
    &'q str: Encode<'q, DB> + Type<DB>,
{
    bind_sums(q.bind(k.day).bind(k.tenant_id).bind(k.model), d).bind(d.max_cost_nanousd)
}

/// Binds an hourly group to the backend's `UPSERT_HOURLY` statement, whose 14 parameters are in this order.
pub fn bind_hourly<'q, DB>(
    q: sqlx::query::Query<'q, DB, <DB as Database>::Arguments<'q>>,
    k: &HourKey<'q>,
    d: &RollupDelta,
) -> sqlx::query::Query<'q, DB, <DB as Database>::Arguments<'q>>
where
    DB: Database,
    i64: Encode<'q, DB> + Type<DB>,
    &'q str: Encode<'q, DB> + Type<DB>,
{
    let keyed = q
        .bind(k.hour_ms)
        .bind(k.tenant_id)
        .bind(k.model)
        .bind(k.upstream_id);
    bind_sums(keyed, d)
}

/// The sums both rollups keep, in their statements' order after the key columns.
fn bind_sums<'q, DB>(
    q: sqlx::query::Query<'q, DB, <DB as Database>::Arguments<'q>>,
    d: &RollupDelta,
) -> sqlx::query::Query<'q, DB, <DB as Database>::Arguments<'q>>
where
    DB: Database,
    i64: Encode<'q, DB> + Type<DB>,
{
    q.bind(d.requests)
        .bind(d.input_tokens)
        .bind(d.cache_write_5m_tokens)
        .bind(d.cache_write_1h_tokens)
        .bind(d.cache_read_tokens)
        .bind(d.output_tokens)
        .bind(d.cost_nanousd)
        .bind(d.upstream_cost_nanousd)
        .bind(d.unpriced_requests)
        .bind(d.errors)
}
