//! Checking what callers send about nodes: hostnames, roles, labels and addresses.

use std::collections::BTreeMap;

use crate::{
    error::{AppError, AppResult},
    ips::{self, ParsedAddress},
};

use super::model::{Label, NodeRole};

pub const MAX_LABELS: usize = 64;
pub const MAX_LABEL_KEY_CHARS: usize = 63;
pub const MAX_LABEL_VALUE_BYTES: usize = 255;
pub const MAX_IPS_PER_NODE: usize = 64;
pub const MAX_AGENT_VERSION_CHARS: usize = 64;
pub const MAX_DESCRIPTION_CHARS: usize = 1024;
pub const MAX_REASON_CHARS: usize = 255;
pub const MAX_SEARCH_CHARS: usize = 253;

/// A DNS name per RFC 1123, folded to lower case.
pub fn validate_hostname(field: &str, input: &str) -> AppResult<String> {
    let name = input.trim_end_matches('.').to_ascii_lowercase();
    let bad = |reason: &str| Err(AppError::bad_input(field, reason.to_string()));
    if name.is_empty() || name.len() > 253 {
        return bad("must be 1 to 253 characters");
    }
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            return bad("each dot-separated part must be 1 to 63 characters");
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return bad("may hold only letters, digits, '-' and '.'");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return bad("a part may not start or end with '-'");
        }
    }
    Ok(name)
}

pub fn validate_roles(field: &str, roles: &[NodeRole]) -> AppResult<i32> {
    if roles.is_empty() {
        return Err(AppError::bad_input(field, "must name at least one role"));
    }
    Ok(NodeRole::mask(roles))
}

pub fn validate_labels(field: &str, labels: &[Label]) -> AppResult<BTreeMap<String, String>> {
    if labels.len() > MAX_LABELS {
        return Err(AppError::bad_input(
            field,
            format!("{} labels; at most {MAX_LABELS}", labels.len()),
        ));
    }
    let mut map = BTreeMap::new();
    for label in labels {
        let key_ok = !label.key.is_empty()
            && label.key.chars().count() <= MAX_LABEL_KEY_CHARS
            && label.key.starts_with(|c: char| c.is_ascii_alphanumeric())
            && label
                .key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '/' | '-'));
        if !key_ok {
            return Err(AppError::bad_input(
                field,
                format!(
                    "label key '{}' must be 1 to {MAX_LABEL_KEY_CHARS} letters, digits, '.', '_', '/' or '-', starting with a letter or digit",
                    label
                        .key
                        .chars()
                        .take(MAX_LABEL_KEY_CHARS + 1)
                        .collect::<String>()
                ),
            ));
        }
        crate::input::check_text(field, &label.value, crate::input::TextKind::Line)?;
        if label.value.len() > MAX_LABEL_VALUE_BYTES {
            return Err(AppError::bad_input(
                field,
                format!(
                    "value of label '{}' is {} bytes; at most {MAX_LABEL_VALUE_BYTES}",
                    label.key,
                    label.value.len()
                ),
            ));
        }
        if map.insert(label.key.clone(), label.value.clone()).is_some() {
            return Err(AppError::bad_input(
                field,
                format!("label '{}' is given twice", label.key),
            ));
        }
    }
    Ok(map)
}

pub fn parse_ips(field: &str, inputs: &[String]) -> AppResult<Vec<ParsedAddress>> {
    if inputs.len() > MAX_IPS_PER_NODE {
        return Err(AppError::bad_input(
            field,
            format!("{} addresses; at most {MAX_IPS_PER_NODE}", inputs.len()),
        ));
    }
    let mut parsed: Vec<ParsedAddress> = Vec::with_capacity(inputs.len());
    for input in inputs {
        let ip = ips::parse_address(field, input)?;
        if !parsed.iter().any(|p| p.key == ip.key) {
            parsed.push(ip);
        }
    }
    Ok(parsed)
}
