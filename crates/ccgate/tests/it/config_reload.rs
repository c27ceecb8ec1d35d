//! Config errors, first start, hot reload.
