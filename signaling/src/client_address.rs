//! Which address a request comes from, for the per-address throttles. Behind a reverse proxy
//! every socket's TCP peer is the proxy, so all clients would share one allowance (and one
//! attacker would lock everyone out). A proxy the administrator trusts names the client in
//! `X-Forwarded-For`; anyone else's header is ignored, since a client can send any header.
use std::net::{IpAddr, SocketAddr};

/// The client's address: `peer` itself unless `peer` is one of `trusted_proxies`; then the
/// right-most address of the `X-Forwarded-For` values that is not a trusted proxy. Each proxy
/// appends the address it received from, so that is the first hop no trusted proxy vouches
/// for beyond. An entry that is not an address ends the walk at the hop that wrote it.
pub fn client_address<'a>(
    peer: IpAddr,
    forwarded_for: impl IntoIterator<Item = &'a str>,
    trusted_proxies: &[IpAddr],
) -> IpAddr {
    let peer = peer.to_canonical();
    if !trusted_proxies.contains(&peer) {
        return peer;
    }
    let hops: Vec<&str> = forwarded_for
        .into_iter()
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        let Some(address) = parse_hop(hop) else {
            break;
        };
        client = address;
        if !trusted_proxies.contains(&address) {
            break;
        }
    }
    client
}

/// `192.0.2.1`, `2001:db8::1`, or either with a port (`192.0.2.1:443`, `[2001:db8::1]:443`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|a| a.ip()))
        // IPv4 clients of a dual-stack proxy arrive as ::ffff:a.b.c.d.
        .map(|ip| ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    const PROXY: &str = "127.0.0.1";

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_claims() {
        let peer = ip("198.51.100.7");
        assert_eq!(
            client_address(peer, ["203.0.113.9"], &[ip(PROXY)]),
            peer,
            "a client cannot pick its own address"
        );
        assert_eq!(client_address(peer, [], &[]), peer);
    }

    #[test]
    fn behind_a_trusted_proxy_the_client_is_the_address_the_proxy_saw() {
        let trusted = [ip(PROXY)];
        assert_eq!(
            client_address(ip(PROXY), ["203.0.113.9"], &trusted),
            ip("203.0.113.9")
        );
        // What the client wrote itself stays to the left of what the proxy appended.
        assert_eq!(
            client_address(ip(PROXY), ["10.9.9.9, 203.0.113.9"], &trusted),
            ip("203.0.113.9")
        );
        // Several header lines are one list, in order.
        assert_eq!(
            client_address(ip(PROXY), ["10.9.9.9", "203.0.113.9"], &trusted),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn a_chain_of_trusted_proxies_is_walked_back_to_the_first_untrusted_hop() {
        let trusted = [ip(PROXY), ip("192.0.2.10")];
        assert_eq!(
            client_address(ip(PROXY), ["10.9.9.9, 203.0.113.9, 192.0.2.10"], &trusted),
            ip("203.0.113.9")
        );
        // Every hop trusted: the left-most is as far as anyone vouches for.
        assert_eq!(
            client_address(ip(PROXY), ["192.0.2.10"], &trusted),
            ip("192.0.2.10")
        );
    }

    #[test]
    fn without_a_usable_header_the_proxy_itself_is_the_client() {
        let trusted = [ip(PROXY)];
        assert_eq!(client_address(ip(PROXY), [], &trusted), ip(PROXY));
        assert_eq!(client_address(ip(PROXY), ["unknown"], &trusted), ip(PROXY));
        // Garbage left of a good hop does not hide it.
        assert_eq!(
            client_address(ip(PROXY), ["garbage, 203.0.113.9"], &trusted),
            ip("203.0.113.9")
        );
        assert_eq!(client_address(ip(PROXY), [""], &trusted), ip(PROXY));
    }

    #[test]
    fn ports_and_mapped_addresses_are_read_as_their_address() {
        let trusted = [ip(PROXY)];
        assert_eq!(
            client_address(ip(PROXY), ["203.0.113.9:51000"], &trusted),
            ip("203.0.113.9")
        );
        assert_eq!(
            client_address(ip(PROXY), ["[2001:db8::1]:443"], &trusted),
            ip("2001:db8::1")
        );
        assert_eq!(
            client_address(ip(PROXY), ["::ffff:203.0.113.9"], &trusted),
            ip("203.0.113.9")
        );
    }
}
