//! The client's address, for the per-address limits: the TCP peer, or behind a trusted
//! reverse proxy (`[listen] trusted_proxies`) the address the proxy forwarded in
//! `X-Forwarded-For`.

use std::future::{Ready, ready};
use std::net::{IpAddr, SocketAddr};

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};
use ipnet::IpNet;

use crate::error::ApiError;
use crate::state::AppState;

/// Where a request came from; `None` when the transport has no peer address.
pub struct ClientAddr(pub Option<IpAddr>);

impl FromRequest for ClientAddr {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let trusted = req
            .app_data::<web::Data<AppState>>()
            .map_or(&[][..], |state| &state.config.listen.trusted_proxies[..]);
        let forwarded: Vec<&str> = req
            .headers()
            .get_all("x-forwarded-for")
            .filter_map(|value| value.to_str().ok())
            .collect();
        ready(Ok(Self(client_ip(
            req.peer_addr().map(|a| a.ip()),
            &forwarded,
            trusted,
        ))))
    }
}

/// Walks `X-Forwarded-For` from the nearest hop outwards while the hops are trusted
/// proxies; the first one that is not is the client. Entries a trusted proxy could not
/// have written (unparseable) end the walk at the last trusted hop, so a client can
/// never name an address beyond what the proxies vouch for.
fn client_ip(peer: Option<IpAddr>, forwarded_for: &[&str], trusted: &[IpNet]) -> Option<IpAddr> {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(&canonical(*ip)));
    let mut client = peer?;
    let hops = forwarded_for.iter().flat_map(|value| value.split(',')).rev();
    for hop in hops {
        if !is_trusted(&client) {
            break;
        }
        match parse_hop(hop.trim()) {
            Some(ip) => client = ip,
            None => break,
        }
    }
    Some(canonical(client))
}

/// An address as proxies write it: `1.2.3.4`, `2001:db8::1`, or with a port.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|a| a.ip()))
}

/// IPv4 addresses that arrive mapped into IPv6 (a dual-stack listener) count as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    #[test]
    fn only_trusted_proxies_may_name_the_client() {
        let proxies = nets(&["10.0.0.0/8", "::1/128"]);
        let from = |peer: &str, xff: &[&str]| client_ip(Some(ip(peer)), xff, &proxies).unwrap();
        // An untrusted peer is the client, whatever it writes.
        assert_eq!(from("198.51.100.7", &["203.0.113.1"]), ip("198.51.100.7"));
        // A trusted proxy names the client; entries further left are the client's own words.
        assert_eq!(from("10.1.2.3", &["1.1.1.1, 203.0.113.1"]), ip("203.0.113.1"));
        // Several proxies in a row, over several header lines, with ports.
        assert_eq!(
            from("10.1.2.3", &["203.0.113.9:5555, 10.9.9.9", "[::1]:443"]),
            ip("203.0.113.9")
        );
        // No header, or garbage: the nearest trusted hop is all that is known.
        assert_eq!(from("10.1.2.3", &[]), ip("10.1.2.3"));
        assert_eq!(from("10.1.2.3", &["not-an-address"]), ip("10.1.2.3"));
        assert_eq!(from("10.1.2.3", &["203.0.113.1, junk"]), ip("10.1.2.3"));
        // Mapped IPv4 peers count as IPv4.
        assert_eq!(from("::ffff:10.0.0.1", &["203.0.113.1"]), ip("203.0.113.1"));
        // Without trusted proxies the header means nothing.
        assert_eq!(
            client_ip(Some(ip("10.1.2.3")), &["203.0.113.1"], &[]),
            Some(ip("10.1.2.3"))
        );
    }
}
