use std::net::IpAddr;

use crate::error::{AppError, AppResult};

/// A parsed address: its canonical text and its 16-byte key (IPv4 mapped into IPv6),
/// which orders addresses so that a CIDR block is one key range.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedAddress {
    pub text: String,
    pub key: [u8; 16],
}

pub fn parse(field: &str, input: &str) -> AppResult<ParsedAddress> {
    let ip: IpAddr = input.trim().parse().map_err(|_| {
        AppError::bad_input(field, format!("'{}' is not an IP address", truncate(input)))
    })?;
    let key = match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    };
    Ok(ParsedAddress {
        text: ip.to_string(),
        key,
    })
}

fn truncate(text: &str) -> String {
    text.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_get_canonical_text_and_mapped_keys() {
        let v4 = parse("ip", "192.0.2.10").expect("v4");
        assert_eq!(v4.text, "192.0.2.10");
        assert_eq!(&v4.key[..12], &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]);
        let v6 = parse("ip", "2001:DB8:0:0:0:0:0:1").expect("v6");
        assert_eq!(v6.text, "2001:db8::1");
        assert!(parse("ip", "300.1.1.1").is_err());
    }
}
