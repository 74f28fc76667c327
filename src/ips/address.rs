use std::net::{IpAddr, Ipv6Addr};

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

/// A CIDR block as a range of 16-byte keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cidr {
    pub first: u128,
    pub last: u128,
    pub v4: bool,
}

impl Cidr {
    pub fn size(&self) -> u128 {
        (self.last - self.first).saturating_add(1)
    }

    pub fn first_key(&self) -> Vec<u8> {
        self.first.to_be_bytes().to_vec()
    }

    pub fn last_key(&self) -> Vec<u8> {
        self.last.to_be_bytes().to_vec()
    }
}

/// Parses `192.0.2.0/24` or `2001:db8::/64` (a plain address is a block of one).
pub fn parse_cidr(field: &str, input: &str) -> AppResult<Cidr> {
    let input = input.trim();
    let shown: String = input.chars().take(64).collect();
    let (ip, prefix) = input.split_once('/').unwrap_or((input, ""));
    let ip: IpAddr = ip.parse().map_err(|_| {
        AppError::bad_input(
            field,
            format!("'{shown}' is not a CIDR block such as 192.0.2.0/24"),
        )
    })?;
    let (v4, width, key) = match ip {
        IpAddr::V4(v4) => (
            true,
            32u32,
            u128::from_be_bytes(v4.to_ipv6_mapped().octets()),
        ),
        IpAddr::V6(v6) => (false, 128u32, u128::from_be_bytes(v6.octets())),
    };
    let prefix: u32 = if prefix.is_empty() {
        width
    } else {
        prefix.parse().ok().filter(|p| *p <= width).ok_or_else(|| {
            AppError::bad_input(
                field,
                format!("'{shown}' has a prefix length outside 0..{width}"),
            )
        })?
    };
    let host_bits = width - prefix;
    let mask: u128 = match host_bits {
        0 => 0,
        128.. => u128::MAX,
        bits => (1u128 << bits) - 1,
    };
    let first = key & !mask;
    Ok(Cidr {
        first,
        last: first | mask,
        v4,
    })
}

/// The address a 16-byte key stands for.
pub fn key_to_text(key: u128) -> ParsedAddress {
    let v6 = Ipv6Addr::from(key);
    let ip = match v6.to_ipv4_mapped() {
        Some(v4) => IpAddr::V4(v4),
        None => IpAddr::V6(v6),
    };
    ParsedAddress {
        text: ip.to_string(),
        key: key.to_be_bytes(),
    }
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

    #[test]
    fn cidr_blocks_become_key_ranges() {
        let block = parse_cidr("cidr", "192.0.2.77/30").unwrap();
        assert_eq!(block.size(), 4);
        assert_eq!(key_to_text(block.first).text, "192.0.2.76");
        assert_eq!(key_to_text(block.last).text, "192.0.2.79");
        let v6 = parse_cidr("cidr", "2001:db8::/120").unwrap();
        assert_eq!(v6.size(), 256);
        assert_eq!(key_to_text(v6.last).text, "2001:db8::ff");
        assert_eq!(parse_cidr("cidr", "10.0.0.0/8").unwrap().size(), 1 << 24);
        assert!(parse_cidr("cidr", "192.0.2.0/33").is_err());
        assert!(parse_cidr("cidr", "192.0.2/24").is_err());
        assert_eq!(parse_cidr("cidr", "::/0").unwrap().size(), u128::MAX);
    }
}
