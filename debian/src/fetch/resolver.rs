//! Name resolution for the fetcher's HTTP agent: each repository host is looked up once per
//! [`super::Fetcher`], not once per request (ureq asks its resolver before every request, even
//! one that then goes over a pooled connection).
//!
//! This uses ureq's `unversioned` resolver API, which may change in a minor ureq release; the
//! lock file pins the ureq this was written against.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use ureq::config::Config;
use ureq::http::Uri;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::NextTimeout;

/// The addresses found so far, by `scheme://authority`. A failed lookup is not kept, so a
/// retry looks the host up again.
#[derive(Debug, Default)]
pub(crate) struct HostCache {
    /// One slot per host; a slot's own lock is held during its lookup, so requests to a host
    /// that is being looked up wait for that lookup instead of starting another.
    hosts: Mutex<HashMap<String, Arc<Mutex<Option<ResolvedSocketAddrs>>>>>,
}

impl HostCache {
    /// Forgets every address (after a host could not be reached: it may have moved).
    pub(crate) fn forget(&self) {
        self.hosts.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    fn slot(&self, key: &str) -> Arc<Mutex<Option<ResolvedSocketAddrs>>> {
        let mut hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
        hosts.entry(key.to_string()).or_default().clone()
    }
}

/// A resolver that asks `inner` once per host and then answers from a [`HostCache`].
#[derive(Debug)]
pub(crate) struct CachingResolver<R = DefaultResolver> {
    inner: R,
    cache: Arc<HostCache>,
}

impl<R> CachingResolver<R> {
    /// Resolves through `inner`, remembering the answers in `cache`.
    pub(crate) fn new(inner: R, cache: Arc<HostCache>) -> CachingResolver<R> {
        CachingResolver { inner, cache }
    }
}

impl<R: Resolver> Resolver for CachingResolver<R> {
    fn resolve(
        &self,
        uri: &Uri,
        config: &Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
            // Not a URL ureq can use: let the inner resolver say why.
            return self.inner.resolve(uri, config, timeout);
        };
        let slot = self.cache.slot(&format!("{scheme}://{authority}"));
        let mut slot = slot.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(addrs) = &*slot {
            return Ok(addrs.clone());
        }
        let addrs = self.inner.resolve(uri, config, timeout)?;
        *slot = Some(addrs.clone());
        Ok(addrs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Answers 127.0.0.1:port for every host, counting the lookups, each taking a while so
    /// concurrent requests overlap.
    #[derive(Debug, Default)]
    struct Counting {
        lookups: AtomicUsize,
    }

    impl Resolver for Counting {
        fn resolve(
            &self,
            uri: &Uri,
            _: &Config,
            _: NextTimeout,
        ) -> Result<ResolvedSocketAddrs, ureq::Error> {
            self.lookups.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(std::time::Duration::from_millis(20));
            let port = uri.port_u16().unwrap_or(80);
            let mut addrs = self.empty();
            addrs.push(SocketAddr::from(([127, 0, 0, 1], port)));
            Ok(addrs)
        }
    }

    #[test]
    fn each_host_is_looked_up_once_however_many_requests_race() {
        let cache = Arc::new(HostCache::default());
        let resolver = CachingResolver::new(Counting::default(), cache.clone());
        let config = Config::default();
        let a: Uri = "http://mirror.invalid/debian/pool/a.deb".parse().unwrap();
        let b: Uri = "http://mirror.invalid/debian/pool/b.deb".parse().unwrap();
        let other: Uri = "http://other.invalid:8080/x.deb".parse().unwrap();
        std::thread::scope(|scope| {
            for i in 0..8 {
                let (resolver, config) = (&resolver, &config);
                let uri = if i % 2 == 0 { &a } else { &b };
                scope.spawn(move || {
                    let addrs = resolver
                        .resolve(uri, config, NextTimeout::default())
                        .unwrap();
                    assert_eq!(addrs[0], SocketAddr::from(([127, 0, 0, 1], 80)));
                });
            }
        });
        assert_eq!(resolver.inner.lookups.load(Ordering::SeqCst), 1);
        let addrs = resolver
            .resolve(&other, &config, NextTimeout::default())
            .unwrap();
        assert_eq!(addrs[0].port(), 8080);
        assert_eq!(resolver.inner.lookups.load(Ordering::SeqCst), 2);
        // After `forget`, the next request looks the host up again.
        cache.forget();
        resolver
            .resolve(&a, &config, NextTimeout::default())
            .unwrap();
        assert_eq!(resolver.inner.lookups.load(Ordering::SeqCst), 3);
    }
}
