//! Hash maps for the names and ids of one request. Keys come from the client, so the hasher stays randomly
//! keyed (no crafted collisions), but a request hashes hundreds of them: aHash instead of SipHash.

pub(crate) type HashMap<K, V> = std::collections::HashMap<K, V, ahash::RandomState>;
pub(crate) type HashSet<T> = std::collections::HashSet<T, ahash::RandomState>;
