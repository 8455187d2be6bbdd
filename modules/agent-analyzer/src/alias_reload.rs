//! Reloading the alias cache from storage (docs/reference/analysis.md §5.3): every 10 s (first
//! after 1 s), the aliases stored since 10 minutes ago — or, while the cache is empty, within the
//! metrics TTL — are put into the cache, so aliases learned by other nodes or before a restart
//! resolve peers here too.

use std::sync::Arc;
use std::time::Duration;

use oap_model::{TimeBuckets, ids, now_ms};
use oap_storage::StorageRef;
use oap_storage::builtin::alias::NetworkAddressAlias;
use oap_telemetry::Counter;
use tokio::task::JoinHandle;
use tracing::warn;

use crate::NetworkAddressAliasCache;

/// Between reloads.
const PERIOD: Duration = Duration::from_secs(10);
/// Before the first.
const FIRST: Duration = Duration::from_secs(1);
/// How far back a reload of a cache that is not empty looks.
const RECENT_MS: i64 = 10 * 60_000;

/// The service and instance names an alias row points at; `None` when its ids do not decode.
pub fn target_names(alias: &NetworkAddressAlias) -> Option<(String, String)> {
    let (service, _) = ids::parse_service_id(&alias.represent_service_id)?;
    let instance = alias.represent_service_instance_id.strip_prefix(&alias.represent_service_id)?.strip_prefix('_')?;
    Some((service, ids::decode(instance)?))
}

/// Starts the reload timer; each reload that completes is counted in `reloads`.
pub fn start(
    storage: StorageRef,
    cache: Arc<NetworkAddressAliasCache>,
    buckets: TimeBuckets,
    ttl: Duration,
    reloads: Counter,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        tokio::time::sleep(FIRST).await;
        loop {
            let now = now_ms();
            let back = if cache.is_empty() { i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX) } else { RECENT_MS };
            if let Some(since) = buckets.minute(now.saturating_sub(back)) {
                match storage.aliases_since(since).await {
                    Ok(aliases) => {
                        for alias in &aliases {
                            if let Some((service, instance)) = target_names(alias) {
                                cache.insert(&alias.address, &service, &instance);
                            }
                        }
                        reloads.inc();
                    }
                    Err(error) => warn!(%error, "reloading network address aliases failed"),
                }
            }
            tokio::time::sleep(PERIOD).await;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_ids_decode_to_the_names_the_cache_keeps() {
        // base64("py-backend") = cHktYmFja2VuZA==; base64("b1") = YjE=.
        let alias = NetworkAddressAlias {
            address: "127.0.0.1:18082".to_owned(),
            represent_service_id: "cHktYmFja2VuZA==.1".to_owned(),
            represent_service_instance_id: "cHktYmFja2VuZA==.1_YjE=".to_owned(),
            last_update_time_bucket: 202_611_211_230,
            time_bucket: 202_611_211_230,
        };
        assert_eq!(target_names(&alias), Some(("py-backend".to_owned(), "b1".to_owned())));
        let broken = NetworkAddressAlias { represent_service_instance_id: "other.1_YjE=".to_owned(), ..alias };
        assert_eq!(target_names(&broken), None);
    }
}
