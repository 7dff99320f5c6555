//! The one rule for every URL the client sends credentials to, configured or discovered.

use std::net::IpAddr;

use crate::error::Error;

/// Refuses anything but `https://`, except `http://` to a loopback host (127.0.0.0/8, ::1,
/// localhost), so credentials and tokens never cross a network in clear text. Called on
/// configured and discovered URLs alike.
pub fn check_url(raw: &str, what: &str) -> Result<url::Url, Error> {
    let parsed = url::Url::parse(raw.trim())
        .map_err(|e| Error::config(format!("{what} {raw:?} is not a valid URL: {e}")))?;
    if !parsed.username().is_empty() || parsed.password().is_some() {
        // Do not echo the URL: its user-info may be a secret.
        return Err(Error::config(format!(
            "{what} must not contain a user name or password; pass credentials with their own settings"
        )));
    }
    match parsed.scheme() {
        "https" => Ok(parsed),
        "http" => {
            if is_loopback(&parsed) {
                Ok(parsed)
            } else {
                Err(Error::config(format!(
                    "{what} {raw} uses http:// to a non-loopback host: credentials would travel \
                     unencrypted; use https:// (http:// is allowed only for 127.0.0.0/8, ::1 and localhost)"
                )))
            }
        }
        other => Err(Error::config(format!(
            "{what} {raw:?} has unsupported scheme {other:?}: use https://"
        ))),
    }
}

/// True when the URL's host is 127.0.0.0/8, ::1 or localhost.
pub fn is_loopback(u: &url::Url) -> bool {
    match u.host() {
        Some(url::Host::Domain(d)) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            d == "localhost"
        }
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => {
            // An IPv4-mapped address (::ffff:127.0.0.1) is loopback too.
            ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn loopback_rule() {
        for ok in [
            "http://127.0.0.1:8080/x",
            "http://127.9.8.7",
            "http://[::1]:9/",
            "http://localhost/",
            "http://LOCALHOST.:80",
            "https://example.com",
            "https://10.0.0.1",
        ] {
            assert!(check_url(ok, "url").is_ok(), "{ok}");
        }
        for bad in [
            "http://example.com",
            "http://10.0.0.1",
            "http://128.0.0.1",
            "http://localhost.example.com",
            "http://[::2]/",
            "ftp://127.0.0.1",
            "not a url",
            "https://user:hunter2@example.com/",
        ] {
            let e = check_url(bad, "API base URL").unwrap_err();
            assert!(e.is_config(), "{bad}");
            assert!(e.to_string().contains("API base URL"), "{e}");
            assert!(!e.to_string().contains("hunter2"));
        }
    }
}
