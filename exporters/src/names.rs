//! mailops's name rules applied to names that come from elsewhere.
//!
//! A metric name becomes `^[a-z][a-z0-9_.]{0,127}$`: letters are lower-cased, every other
//! character outside `a-z 0-9 _ .` (a `:` of a recording rule, say) becomes `_`, a name that
//! does not start with a letter gets the prefix `m_`, and the result is cut to 128
//! characters. A label name becomes `^[a-z_][a-z0-9_]{0,63}$` the same way (prefix `_`).
//! Label values are kept as they are; mailops refuses values over 128 bytes.

/// The longest metric name mailops takes.
pub const MAX_NAME: usize = 128;
/// The longest label name mailops takes.
pub const MAX_LABEL_NAME: usize = 64;

/// `node_memory_MemFree_bytes` → `node_memory_memfree_bytes`; `job:rate5m` → `job_rate5m`.
pub fn metric_name(name: &str) -> String {
    normalise(name, true, "m_", MAX_NAME)
}

/// `Device` → `device`; `0cpu` → `_0cpu`.
pub fn label_name(name: &str) -> String {
    normalise(name, false, "_", MAX_LABEL_NAME)
}

fn normalise(name: &str, dots: bool, prefix: &str, max: usize) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || (dots && c == '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let starts_well = out
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || (!dots && c == '_'));
    if !starts_well {
        out.insert_str(0, prefix);
    }
    out.truncate(max);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_mailops_rules() {
        assert_eq!(
            metric_name("node_memory_MemFree_bytes"),
            "node_memory_memfree_bytes"
        );
        assert_eq!(
            metric_name("job:http_requests:rate5m"),
            "job_http_requests_rate5m"
        );
        assert_eq!(metric_name("_hidden"), "m__hidden");
        assert_eq!(metric_name("9lives"), "m_9lives");
        assert_eq!(metric_name(&"a".repeat(300)).len(), MAX_NAME);
        assert_eq!(label_name("Device"), "device");
        assert_eq!(label_name("0cpu"), "_0cpu");
        assert_eq!(label_name("a.b"), "a_b");
    }
}
