//! Who the client is, for the per-address rate limit: the TCP peer, unless the peer is a reverse
//! proxy the operator named (`trusted_proxies`), in which case the client is the nearest address
//! in `X-Forwarded-For` that is not itself a trusted proxy.
//!
//! Behind a load balancer every request comes from the balancer's address; without this, one
//! client spending the per-address allowance would lock every other client out. A header is
//! believed only from a trusted peer and only as far as the trusted hops go, so a client cannot
//! pick its own address: whatever it writes into the header lies to the left of the address the
//! first trusted proxy appended, and the walk from the right stops there.

use std::net::IpAddr;
use std::str::FromStr;

use axum::http::HeaderMap;
use ipnet::IpNet;

/// At most this many `X-Forwarded-For` entries are read, from the right: more hops than any
/// real chain of proxies, and a bound on the work a long header can ask for.
const HOPS_MAX: usize = 32;

/// The reverse proxies whose `X-Forwarded-For` is believed; empty: none (the default).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

/// A `trusted_proxies` entry that is neither an address nor a network.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("trusted proxy {0:?} is not an IP address or network (e.g. 10.0.0.0/8, 192.168.1.5, fd00::/8)")]
pub struct TrustedProxyError(pub String);

impl TrustedProxies {
    /// Parses addresses (`192.168.1.5`, a network of one) and networks (`10.0.0.0/8`).
    pub fn parse<'a>(entries: impl IntoIterator<Item = &'a str>) -> Result<Self, TrustedProxyError> {
        entries
            .into_iter()
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(|entry| {
                IpNet::from_str(entry)
                    .or_else(|_| IpAddr::from_str(entry).map(IpNet::from))
                    .map(|network| network.trunc())
                    .map_err(|_| TrustedProxyError(entry.to_owned()))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(TrustedProxies)
    }

    /// Whether no proxy is trusted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn trusts(&self, address: IpAddr) -> bool {
        self.0.iter().any(|network| network.contains(&address))
    }

    /// The client behind `peer`: `peer` itself unless it is trusted; otherwise the rightmost
    /// `X-Forwarded-For` address that is not trusted, or the leftmost one read when every one
    /// is (or the last trusted one before an entry that is not an address).
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let mut client = peer.to_canonical();
        if !self.trusts(client) {
            return client;
        }
        let hops = headers
            .get_all("x-forwarded-for")
            .iter()
            .rev()
            .flat_map(|value| value.to_str().unwrap_or_default().rsplit(','))
            .take(HOPS_MAX);
        for hop in hops {
            let Some(address) = forwarded_address(hop.trim()) else {
                return client;
            };
            client = address.to_canonical();
            if !self.trusts(client) {
                return client;
            }
        }
        client
    }
}

/// One `X-Forwarded-For` entry: an address, or (as some proxies write it) an address with a
/// port (`203.0.113.9:4711`, `[2001:db8::1]:4711`).
fn forwarded_address(hop: &str) -> Option<IpAddr> {
    IpAddr::from_str(hop)
        .ok()
        .or_else(|| std::net::SocketAddr::from_str(hop).ok().map(|socket| socket.ip()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append("x-forwarded-for", value.parse().unwrap());
        }
        headers
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_says() {
        let trusted = TrustedProxies::parse(["10.0.0.0/8"]).unwrap();
        assert_eq!(
            trusted.client(ip("203.0.113.9"), &headers(&["10.1.1.1"])),
            ip("203.0.113.9")
        );
        let none = TrustedProxies::default();
        assert_eq!(none.client(ip("10.0.0.1"), &headers(&["1.2.3.4"])), ip("10.0.0.1"));
    }

    #[test]
    fn a_trusted_peer_names_the_nearest_untrusted_hop_and_a_forged_prefix_is_ignored() {
        let trusted = TrustedProxies::parse(["10.0.0.0/8", " 192.168.1.5 ", ""]).unwrap();
        // The client forged "1.1.1.1"; the edge proxy appended its real address.
        let forged = headers(&["1.1.1.1, 198.51.100.7", "10.0.0.3"]);
        assert_eq!(trusted.client(ip("10.0.0.2"), &forged), ip("198.51.100.7"));
        assert_eq!(
            trusted.client(ip("192.168.1.5"), &headers(&["2001:db8::1"])),
            ip("2001:db8::1")
        );
        // Every hop trusted: the leftmost; no header: the peer.
        assert_eq!(
            trusted.client(ip("10.0.0.2"), &headers(&["10.9.9.9, 10.0.0.3"])),
            ip("10.9.9.9")
        );
        assert_eq!(trusted.client(ip("10.0.0.2"), &HeaderMap::new()), ip("10.0.0.2"));
    }

    #[test]
    fn ports_mapped_addresses_garbage_and_long_headers_are_handled() {
        let trusted = TrustedProxies::parse(["127.0.0.1"]).unwrap();
        assert_eq!(
            trusted.client(ip("::ffff:127.0.0.1"), &headers(&["203.0.113.9:4711"])),
            ip("203.0.113.9")
        );
        assert_eq!(
            trusted.client(ip("127.0.0.1"), &headers(&["[2001:db8::1]:80"])),
            ip("2001:db8::1")
        );
        // Garbage right of any real hop: the trusted peer stands for the client.
        assert_eq!(trusted.client(ip("127.0.0.1"), &headers(&["unknown"])), ip("127.0.0.1"));
        let long = vec!["127.0.0.1"; 10_000].join(",");
        assert_eq!(trusted.client(ip("127.0.0.1"), &headers(&[&long])), ip("127.0.0.1"));
    }

    #[test]
    fn an_entry_that_is_no_address_is_refused_by_name() {
        assert_eq!(
            TrustedProxies::parse(["10.0.0.0/8", "proxy.local"]).unwrap_err(),
            TrustedProxyError("proxy.local".to_owned())
        );
        assert_eq!(
            TrustedProxies::parse(["10.0.0.0/33"]).unwrap_err(),
            TrustedProxyError("10.0.0.0/33".to_owned())
        );
    }
}
