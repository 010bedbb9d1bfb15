//! The SSRF guard for every URL visionlog fetches from or posts to on someone's behalf (a
//! task's callback URL, an image URL).
//!
//! A URL is resolved once; if any of its addresses is loopback, private (RFC 1918, unique
//! local), link-local (cloud metadata lives at 169.254.169.254), shared (CGNAT), unspecified,
//! multicast, broadcast or documentation space, it is refused unless an allow-list entry
//! covers that address. The caller then connects to the addresses the guard checked (see
//! [`Checked::addrs`]), never to a second lookup, so a name that re-resolves to an inner address
//! between the check and the connection (DNS rebinding) does not get through.

use ipnet::IpNet;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

/// The setting with the allow-list (`--url-allow`): comma-separated networks (`127.0.0.0/8`,
/// `::1/128`, `10.1.2.3`).
pub const ALLOW_ENV: &str = "VISIONLOG_URL_ALLOW";

/// Why a URL is refused. [`Refused::code`] is the stable code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// Not a URL, or one without a host.
    #[error("not a usable URL: {0}")]
    Invalid(String),
    /// A scheme other than http or https.
    #[error("scheme {0} is not allowed (http or https only)")]
    Scheme(String),
    /// The name does not resolve.
    #[error("{host} does not resolve: {error}")]
    Unresolvable {
        /// The host.
        host: String,
        /// The resolver's error.
        error: String,
    },
    /// A port below 1024 other than 80 and 443.
    #[error("port {0} is not allowed (80, 443 or 1024 and up)")]
    Port(u16),
    /// It resolves to an address in a range that is refused.
    #[error("{host} resolves to {addr} ({range}), which is not allowed (allow-list it in {ALLOW_ENV})")]
    Private {
        /// The host.
        host: String,
        /// The address.
        addr: IpAddr,
        /// Which range.
        range: &'static str,
    },
}

impl Refused {
    /// The stable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Invalid(_) => "invalid_url",
            Self::Scheme(_) => "disallowed_url_scheme",
            Self::Unresolvable { .. } => "unresolvable_url",
            Self::Port(_) => "disallowed_port",
            Self::Private { .. } => "private_address",
        }
    }
}

/// A URL the guard let through, with the addresses it checked.
#[derive(Clone, Debug)]
pub struct Checked {
    /// The URL.
    pub url: url::Url,
    /// Its host, as written.
    pub host: String,
    /// The addresses it resolved to, every one allowed.
    pub addrs: Vec<SocketAddr>,
}

/// The guard: which otherwise refused networks are allowed.
#[derive(Clone, Debug, Default)]
pub struct UrlGuard {
    allow: Vec<IpNet>,
}

/// Which refused range `ip` is in, if any.
pub fn refused_range(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            if v4.is_loopback() {
                Some("loopback")
            } else if v4.is_private() {
                Some("private")
            } else if v4.is_link_local() {
                Some("link-local")
            } else if o[0] == 100 && (64..128).contains(&o[1]) {
                Some("shared address space")
            } else if v4.is_unspecified() || o[0] == 0 {
                Some("unspecified")
            } else if v4.is_multicast() || v4.is_broadcast() || o[0] >= 240 {
                Some("multicast or reserved")
            } else if v4.is_documentation() || (o[0] == 198 && (o[1] == 18 || o[1] == 19)) {
                Some("documentation or benchmarking")
            } else if o[0] == 192 && o[1] == 0 && o[2] == 0 {
                Some("IETF protocol assignments")
            } else if o[0] == 192 && o[1] == 88 && o[2] == 99 {
                Some("6to4 relay anycast")
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return refused_range(IpAddr::V4(v4));
            }
            let s = v6.segments();
            if v6.is_loopback() {
                Some("loopback")
            } else if v6.is_unspecified() {
                Some("unspecified")
            } else if s[0] & 0xfe00 == 0xfc00 {
                Some("unique local")
            } else if s[0] & 0xffc0 == 0xfe80 {
                Some("link-local")
            } else if s[0] & 0xffc0 == 0xfec0 {
                Some("site-local")
            } else if v6.is_multicast() {
                Some("multicast or reserved")
            } else if s[0] == 0x2001 && s[1] == 0x0db8 {
                Some("documentation or benchmarking")
            } else if s[..6] == [0; 6] {
                // ::a.b.c.d, deprecated IPv4-compatible: stacks still route some of it to IPv4
                Some("IPv4-compatible")
            } else if s[0] == 0x0064 && s[1] == 0xff9b && s[2] == 0x0001 {
                // 64:ff9b:1::/48 (RFC 8215): a network's own translator, into its own space
                Some("NAT64 local-use")
            } else if s[0] == 0x0064 && s[1] == 0xff9b {
                // NAT64 of an IPv4 address: judge the address inside
                refused_range(IpAddr::V4(embedded_v4(s[6], s[7])))
            } else if s[0] == 0x2002 {
                // 6to4: the IPv4 address of the relay's far end is the next 32 bits
                refused_range(IpAddr::V4(embedded_v4(s[1], s[2])))
            } else if s[0] == 0x2001 && s[1] == 0x0000 {
                // Teredo tunnels to an (obfuscated) IPv4 address of its choosing
                Some("Teredo")
            } else {
                None
            }
        }
    }
}

fn embedded_v4(high: u16, low: u16) -> std::net::Ipv4Addr {
    std::net::Ipv4Addr::new((high >> 8) as u8, high as u8, (low >> 8) as u8, low as u8)
}

/// Whether a port may be reached: 80, 443, and the unprivileged ports (1024 and up). The
/// privileged ones below (SSH, SMTP, DNS, LDAP, ...) are services, never webhook receivers or
/// image servers.
pub fn allowed_port(port: u16) -> bool {
    matches!(port, 80 | 443) || port >= 1024
}

impl UrlGuard {
    /// A guard that refuses every inner range.
    pub fn strict() -> Self {
        Self::default()
    }

    /// A guard that allows the given networks (`127.0.0.0/8`, `::1`, `10.0.0.5`).
    pub fn allowing(networks: &[&str]) -> Result<Self, String> {
        let mut allow = Vec::new();
        for n in networks.iter().map(|n| n.trim()).filter(|n| !n.is_empty()) {
            let net = n
                .parse::<IpNet>()
                .or_else(|_| n.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| format!("{n} is not a network or an address"))?;
            allow.push(net);
        }
        Ok(Self { allow })
    }

    /// Whether `ip` may be reached.
    pub fn allows(&self, ip: IpAddr) -> Result<(), &'static str> {
        match refused_range(ip) {
            Some(range) if !self.allow.iter().any(|n| n.contains(&ip)) => Err(range),
            _ => Ok(()),
        }
    }

    /// Parses, resolves and checks an http(s) URL.
    pub fn check(&self, raw: &str) -> Result<Checked, Refused> {
        let url = url::Url::parse(raw).map_err(|e| Refused::Invalid(e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Refused::Scheme(url.scheme().to_owned()));
        }
        let host = url.host_str().ok_or_else(|| Refused::Invalid("no host".into()))?.to_owned();
        let port = url.port_or_known_default().unwrap_or(80);
        if !allowed_port(port) {
            return Err(Refused::Port(port));
        }
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let addrs: Vec<SocketAddr> = match bare.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => (bare, port)
                .to_socket_addrs()
                .map_err(|e| Refused::Unresolvable { host: host.clone(), error: e.to_string() })?
                .collect(),
        };
        if addrs.is_empty() {
            return Err(Refused::Unresolvable { host, error: "no addresses".into() });
        }
        for a in &addrs {
            self.allows(a.ip()).map_err(|range| Refused::Private { host: host.clone(), addr: a.ip(), range })?;
        }
        Ok(Checked { url, host: bare.to_owned(), addrs })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inner_ranges_are_refused() {
        let g = UrlGuard::strict();
        for (url, code) in [
            ("http://127.0.0.1:9000/cb", "private_address"),
            ("http://localhost/cb", "private_address"),
            ("http://10.1.2.3/cb", "private_address"),
            ("http://172.16.0.1/cb", "private_address"),
            ("http://192.168.1.1/cb", "private_address"),
            ("http://169.254.169.254/latest/meta-data", "private_address"),
            ("http://100.64.0.1/", "private_address"),
            ("http://0.0.0.0/", "private_address"),
            ("http://[::1]/", "private_address"),
            ("http://[fd00::1]/", "private_address"),
            ("http://[fe80::1]/", "private_address"),
            ("http://[::ffff:127.0.0.1]/", "private_address"),
            ("http://[64:ff9b::a9fe:a9fe]/", "private_address"),
            ("http://2130706433/", "private_address"), // 127.0.0.1 written as one number
            ("http://[64:ff9b:1::1]/", "private_address"), // NAT64 local-use
            ("http://[::a9fe:a9fe]/", "private_address"), // IPv4-compatible 169.254.169.254
            ("http://[::8.8.8.8]/", "private_address"), // IPv4-compatible, whatever inside
            ("http://[2002:a9fe:a9fe::1]/", "private_address"), // 6to4 of 169.254.169.254
            ("http://[2002:7f00:1::]/", "private_address"), // 6to4 of 127.0.0.1
            ("http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/", "private_address"), // Teredo
            ("http://[fec0::1]/", "private_address"),  // site-local
            ("http://192.0.0.170/", "private_address"), // IETF protocol assignments
            ("http://192.88.99.1/", "private_address"), // 6to4 relay anycast
            ("http://93.184.215.14:22/", "disallowed_port"),
            ("http://93.184.215.14:25/", "disallowed_port"),
            ("https://93.184.215.14:0/", "disallowed_port"),
            ("file:///etc/passwd", "disallowed_url_scheme"),
            ("gopher://example.com/", "disallowed_url_scheme"),
            ("not a url", "invalid_url"),
        ] {
            let err = g.check(url).expect_err(url);
            assert_eq!(err.code(), code, "{url}: {err}");
        }
    }

    #[test]
    fn public_addresses_pass_and_allow_lists_open_inner_ones() {
        let g = UrlGuard::strict();
        let ok = g.check("https://93.184.215.14/cb").unwrap();
        assert_eq!(ok.addrs, vec!["93.184.215.14:443".parse().unwrap()]);
        for url in ["http://93.184.215.14/", "http://93.184.215.14:8080/", "https://[2002:5db8:d70e::1]/"] {
            assert!(g.check(url).is_ok(), "{url}");
        }
        let g = UrlGuard::allowing(&["127.0.0.0/8", "::1"]).unwrap();
        assert!(g.check("http://127.0.0.1:8080/cb").is_ok());
        assert!(g.check("http://[::1]:8080/cb").is_ok());
        assert_eq!(g.check("http://10.0.0.1/").unwrap_err().code(), "private_address");
        assert!(UrlGuard::allowing(&["nonsense"]).is_err());
    }
}
