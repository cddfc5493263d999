//! The checks every request passes before it is routed, against the web
//! pages in the operator's own browser (the server's loopback address does
//! not stop a page on another site from sending requests to it):
//!
//! - **Host** must name this server: a loopback name or address, the
//!   concrete address it is bound to, or a `--http-allow-host` name. A page
//!   that rebinds its own DNS name to 127.0.0.1 (DNS rebinding) still sends
//!   its own name, and is refused with 421.
//! - **Origin**, when present on a WebSocket upgrade or a state-changing
//!   request, must be `http(s)://` an allowed host on this server's port (or
//!   the port the Host header names), else 403: a page elsewhere cannot
//!   open the WebSocket (cross-site WebSocket hijacking) or send changes.
//! - **Content-Type** of a state change must be `application/json`, else
//!   415: an HTML form cannot send it without a CORS preflight, which this
//!   server never grants.
//!
//! Pure functions of the request head, so they are tested without sockets.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

/// A host as the checks compare it: an address, or a lowercase name
/// without a trailing dot.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Host {
    Ip(IpAddr),
    Name(String),
}

/// The hosts this server answers to.
#[derive(Debug, Clone)]
pub(crate) struct AllowedHosts {
    names: Vec<String>,
    ips: Vec<IpAddr>,
    /// Bound to a wildcard address: any address literal is one of ours as
    /// far as rebinding goes (only names can be rebound).
    any_ip: bool,
}

impl AllowedHosts {
    /// Loopback names and addresses, `bound`'s address unless it is a
    /// wildcard, and `extra` (names or addresses, as
    /// [`check_allow_host`] returns them).
    pub(crate) fn new(bound: SocketAddr, extra: &[String]) -> Self {
        let mut names = vec!["localhost".to_string()];
        let mut ips = Vec::new();
        let any_ip = bound.ip().is_unspecified();
        if !any_ip {
            ips.push(bound.ip());
        }
        for text in extra {
            match parse_host(text) {
                Some(Host::Ip(ip)) => ips.push(ip),
                Some(Host::Name(name)) => names.push(name),
                None => {}
            }
        }
        Self { names, ips, any_ip }
    }

    fn allows(&self, host: &Host) -> bool {
        match host {
            Host::Ip(ip) => ip.is_loopback() || self.any_ip || self.ips.contains(ip),
            Host::Name(name) => self.names.iter().any(|n| n == name),
        }
    }
}

/// Checks a `--http-allow-host` value: a host name or address without a
/// port. Returns it normalised (lowercase, no trailing dot).
pub(crate) fn check_allow_host(text: &str) -> Result<String, String> {
    let text = text.trim();
    let flag = format!("--http-allow-host {text:?}");
    if text.is_empty() {
        return Err("--http-allow-host needs a host name".into());
    }
    match parse_authority(text) {
        Some((_, Some(_))) => Err(format!("{flag}: give the name without a port")),
        Some((Host::Name(name), None)) if is_dns_name(&name) => Ok(name),
        Some((Host::Ip(ip), None)) => Ok(ip.to_string()),
        // A bare IPv6 address has colons, so it is not an authority.
        _ => match text.parse::<Ipv6Addr>() {
            Ok(ip) => Ok(ip.to_string()),
            Err(_) => Err(format!("{flag} is not a host name or address")),
        },
    }
}

fn is_dns_name(name: &str) -> bool {
    name.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

/// Why a request was refused before routing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The Host header (or the request target's authority) is missing or
    /// names another server.
    Host(String),
    /// A browser page from another origin sent a state change or opened the
    /// WebSocket.
    Origin(String),
    /// A state change without a JSON body type.
    ContentType,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let (status, text) = match self {
            Refusal::Host(text) => (StatusCode::MISDIRECTED_REQUEST, text),
            Refusal::Origin(text) => (StatusCode::FORBIDDEN, text),
            Refusal::ContentType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "changes need Content-Type: application/json".to_string(),
            ),
        };
        (
            status,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("{text}\n"),
        )
            .into_response()
    }
}

/// The request checks of one server.
#[derive(Debug, Clone)]
pub(crate) struct Guard {
    hosts: AllowedHosts,
    /// The port the server listens on.
    port: u16,
}

impl Guard {
    /// Checks for a server listening on `bound` (its real port, once bound).
    pub(crate) fn new(bound: SocketAddr, extra_hosts: &[String]) -> Self {
        Self {
            hosts: AllowedHosts::new(bound, extra_hosts),
            port: bound.port(),
        }
    }

    /// Whether a request with this head may be routed.
    pub(crate) fn check(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
    ) -> Result<(), Refusal> {
        let host_port = self.check_host(uri, headers)?;
        let upgrade = headers.contains_key(header::UPGRADE);
        let changes_state = !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
        if upgrade || changes_state {
            self.check_origin(headers, host_port)?;
        }
        if changes_state && !is_json(headers) {
            return Err(Refusal::ContentType);
        }
        Ok(())
    }

    /// Checks every authority the request names; returns the Host's port.
    fn check_host(&self, uri: &Uri, headers: &HeaderMap) -> Result<Option<u16>, Refusal> {
        let mut named = Vec::new();
        for value in headers.get_all(header::HOST) {
            named.push(value.to_str().unwrap_or("\u{fffd}").to_string());
        }
        // An absolute-form target (`GET http://name/ HTTP/1.1`) takes
        // precedence over Host, so it must pass too.
        if let Some(authority) = uri.authority() {
            named.push(authority.as_str().to_string());
        }
        if named.is_empty() {
            return Err(Refusal::Host("a Host header is required".into()));
        }
        let mut port = None;
        for text in &named {
            match parse_authority(text) {
                Some((host, p)) if self.hosts.allows(&host) => port = port.or(p),
                _ => {
                    return Err(Refusal::Host(format!(
                        "host {:?} is not served here (see --http-allow-host)",
                        shorten(text)
                    )))
                }
            }
        }
        Ok(port)
    }

    fn check_origin(&self, headers: &HeaderMap, host_port: Option<u16>) -> Result<(), Refusal> {
        let mut origins = headers.get_all(header::ORIGIN).iter().peekable();
        if origins.peek().is_none() {
            // Browsers always send Origin on these requests; other clients
            // (curl, scripts) need not.
            return Ok(());
        }
        for value in origins {
            let text = value.to_str().unwrap_or("\u{fffd}");
            let allowed = parse_origin(text).is_some_and(|(host, port, default_port)| {
                let host_port = host_port.unwrap_or(default_port);
                self.hosts.allows(&host) && (port == self.port || port == host_port)
            });
            if !allowed {
                return Err(Refusal::Origin(format!(
                    "requests from origin {:?} are refused",
                    shorten(text)
                )));
            }
        }
        Ok(())
    }
}

/// `application/json`, with or without parameters such as `charset`.
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
}

/// Echoed text, cut so that a refusal stays one short line.
fn shorten(text: &str) -> String {
    text.chars().take(80).collect()
}

/// `host[:port]` (IPv6 in brackets) as sent in Host or an Origin.
fn parse_authority(text: &str) -> Option<(Host, Option<u16>)> {
    if text.is_empty()
        || text.contains(['@', '/', '\\', '?', '#'])
        || text.contains(char::is_whitespace)
    {
        return None;
    }
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        let ip: Ipv6Addr = inside.parse().ok()?;
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':')?),
        };
        (Host::Ip(IpAddr::V6(ip)), port)
    } else {
        let (host, port) = match text.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        };
        if host.is_empty() || host.contains(':') {
            return None;
        }
        (parse_host(host)?, port)
    };
    let port = match port {
        None | Some("") => None,
        Some(p) => Some(p.parse::<u16>().ok()?),
    };
    Some((host, port))
}

/// A bare host: an IPv4 address, a bracketed IPv6 address, or a name.
fn parse_host(text: &str) -> Option<Host> {
    if let Some(inside) = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
        return inside.parse().ok().map(|ip| Host::Ip(IpAddr::V6(ip)));
    }
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(Host::Ip(ip));
    }
    let name = text.strip_suffix('.').unwrap_or(text).to_ascii_lowercase();
    if name.is_empty() {
        return None;
    }
    if let Ok(ip) = name.parse::<Ipv4Addr>() {
        return Some(Host::Ip(IpAddr::V4(ip)));
    }
    // A name that spells an address differently (`127.1`, `0x7f.0.0.1`) is
    // still a name, and only passes when listed.
    Some(Host::Name(name))
}

/// An Origin's host, port (explicit or the scheme's default) and the
/// scheme's default port. `null` and non-HTTP schemes are `None`.
fn parse_origin(text: &str) -> Option<(Host, u16, u16)> {
    let (scheme, authority) = text.split_once("://")?;
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    let (host, port) = parse_authority(authority)?;
    Some((host, port.unwrap_or(default_port), default_port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(bound: &str, extra: &[&str]) -> Guard {
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        Guard::new(bound.parse().unwrap(), &extra)
    }

    fn head(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (k, v) in pairs {
            headers.append(
                header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        headers
    }

    fn get(g: &Guard, pairs: &[(&str, &str)]) -> Result<(), Refusal> {
        g.check(&Method::GET, &Uri::from_static("/api/state"), &head(pairs))
    }

    fn put(g: &Guard, pairs: &[(&str, &str)]) -> Result<(), Refusal> {
        g.check(&Method::PUT, &Uri::from_static("/api/master"), &head(pairs))
    }

    #[test]
    fn loopback_hosts_pass_with_or_without_port() {
        let g = guard("127.0.0.1:8080", &[]);
        for host in [
            "localhost",
            "localhost:8080",
            "LOCALHOST.:8080",
            "127.0.0.1",
            "127.0.0.1:8080",
            "127.3.4.5:1",
            "[::1]",
            "[::1]:8080",
        ] {
            assert_eq!(get(&g, &[("host", host)]), Ok(()), "{host}");
        }
    }

    #[test]
    fn foreign_and_rebinding_hosts_are_refused() {
        let g = guard("127.0.0.1:8080", &[]);
        for host in [
            "evil.example",
            "evil.example:8080",
            "127.0.0.1.nip.io",
            "127.0.0.1.nip.io:8080",
            "localhost.evil.example",
            "127.1",
            "0x7f.0.0.1",
            "192.168.1.5:8080",
            "user@localhost",
            "localhost:99999",
            "[::1",
            "::1",
            "",
        ] {
            assert!(
                matches!(get(&g, &[("host", host)]), Err(Refusal::Host(_))),
                "{host:?}"
            );
        }
        assert!(matches!(get(&g, &[]), Err(Refusal::Host(_))), "no Host");
        // Two Host headers, one foreign.
        assert!(get(&g, &[("host", "localhost"), ("host", "evil.example")]).is_err());
        // An absolute-form target names its own authority.
        let absolute: Uri = "http://evil.example/api/state".parse().unwrap();
        assert!(g
            .check(&Method::GET, &absolute, &head(&[("host", "localhost")]))
            .is_err());
    }

    #[test]
    fn bound_address_and_listed_names_pass() {
        let g = guard("192.168.1.5:8080", &["desk.example", "10.0.0.1", "::2"]);
        for host in [
            "192.168.1.5:8080",
            "desk.example",
            "DESK.example:8080",
            "10.0.0.1",
            "[::2]:1",
        ] {
            assert_eq!(get(&g, &[("host", host)]), Ok(()), "{host}");
        }
        assert!(get(&g, &[("host", "192.168.1.6:8080")]).is_err());
        assert!(get(&g, &[("host", "other.example")]).is_err());
        // A wildcard bind accepts address literals (they cannot be rebound)
        // but still only the listed names.
        let g = guard("0.0.0.0:8080", &[]);
        assert_eq!(get(&g, &[("host", "192.168.1.6:8080")]), Ok(()));
        assert!(get(&g, &[("host", "evil.example")]).is_err());
    }

    #[test]
    fn origin_must_be_an_allowed_host_on_this_port() {
        let g = guard("127.0.0.1:8080", &[]);
        let json = ("content-type", "application/json");
        let with = |origin: &str| put(&g, &[("host", "127.0.0.1:8080"), json, ("origin", origin)]);
        for origin in [
            "http://127.0.0.1:8080",
            "http://localhost:8080",
            "https://[::1]:8080",
        ] {
            assert_eq!(with(origin), Ok(()), "{origin}");
        }
        for origin in [
            "http://evil.example",
            "http://evil.example:8080",
            "http://127.0.0.1:9999",
            "http://127.0.0.1",
            "null",
            "file://",
            "ws://127.0.0.1:8080",
            "http://127.0.0.1:8080/x",
        ] {
            assert!(matches!(with(origin), Err(Refusal::Origin(_))), "{origin}");
        }
        // No Origin: not a browser, nothing to check.
        assert_eq!(put(&g, &[("host", "localhost"), json]), Ok(()));
        // Behind a proxy the Host's port (or the scheme's default) counts.
        let g = guard("127.0.0.1:8080", &["desk.example"]);
        let proxied =
            |host: &str, origin: &str| put(&g, &[("host", host), json, ("origin", origin)]);
        assert_eq!(proxied("desk.example", "https://desk.example"), Ok(()));
        assert_eq!(
            proxied("desk.example:9000", "http://desk.example:9000"),
            Ok(())
        );
        assert!(proxied("desk.example", "https://desk.example:9000").is_err());
    }

    #[test]
    fn websocket_upgrades_check_origin_and_reads_do_not() {
        let g = guard("127.0.0.1:8080", &[]);
        let upgrade = [("host", "127.0.0.1:8080"), ("upgrade", "websocket")];
        assert_eq!(get(&g, &upgrade), Ok(()), "no Origin: not a browser");
        let foreign = [upgrade[0], upgrade[1], ("origin", "http://evil.example")];
        assert!(matches!(get(&g, &foreign), Err(Refusal::Origin(_))));
        let same = [upgrade[0], upgrade[1], ("origin", "http://localhost:8080")];
        assert_eq!(get(&g, &same), Ok(()));
        // A cross-origin read is the browser's to block (no CORS headers).
        assert_eq!(
            get(
                &g,
                &[("host", "localhost"), ("origin", "http://evil.example")]
            ),
            Ok(())
        );
    }

    #[test]
    fn changes_need_a_json_content_type() {
        let g = guard("127.0.0.1:8080", &[]);
        let host = ("host", "localhost");
        assert_eq!(put(&g, &[host]), Err(Refusal::ContentType));
        for ct in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data",
            "application/jsonx",
        ] {
            assert_eq!(
                put(&g, &[host, ("content-type", ct)]),
                Err(Refusal::ContentType),
                "{ct}"
            );
        }
        for ct in ["application/json", "Application/JSON; charset=utf-8"] {
            assert_eq!(put(&g, &[host, ("content-type", ct)]), Ok(()), "{ct}");
        }
        let post = g.check(&Method::POST, &Uri::from_static("/x"), &head(&[host]));
        assert_eq!(post, Err(Refusal::ContentType));
    }

    #[test]
    fn allow_host_flag_values() {
        assert_eq!(check_allow_host("Desk.Example."), Ok("desk.example".into()));
        assert_eq!(check_allow_host("10.0.0.1"), Ok("10.0.0.1".into()));
        assert_eq!(check_allow_host("::1"), Ok("::1".into()));
        assert_eq!(check_allow_host("[fe80::1]"), Ok("fe80::1".into()));
        assert!(check_allow_host("desk.example:8080")
            .unwrap_err()
            .contains("without a port"));
        for bad in ["", "http://desk.example", "a b", "desk..example", "x/y"] {
            assert!(check_allow_host(bad).is_err(), "{bad:?}");
        }
    }
}
