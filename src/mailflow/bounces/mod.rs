//! Why a delivery was refused: every DEFERRED and BOUNCED event gets a category from its
//! SMTP code, the enhanced status code its response carries (RFC 3463
//! `class.subject.detail`) and the texts large providers document. The rules are an
//! ordered table ([`rules::BUILT_IN`]), each naming its source; an install adds rules of
//! its own before them with `MAILOPS_BOUNCE_RULES` (a JSON file).

mod rules;

use std::{fmt, sync::Arc};

use async_graphql::Enum;
use serde::Deserialize;

pub use rules::BUILT_IN;

/// Why a delivery attempt was deferred or bounced.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum BounceCategory {
    /// The address does not exist or is disabled.
    InvalidRecipient,
    /// The mailbox is over its quota.
    MailboxFull,
    /// The receiver limits the rate or volume from this sender or IP.
    Throttled,
    /// The sending IP (or its network) is on a blocklist or banned.
    BlockedIp,
    /// The message was judged spam or unsolicited.
    SpamContent,
    /// SPF, DKIM or DMARC failed.
    Authentication,
    /// Another policy refusal (relaying, size, sender).
    Policy,
    /// Try again later, by design.
    Greylisted,
    /// The recipient domain or its MX does not resolve.
    Dns,
    /// Timeouts, refused connections, TLS failures.
    Connection,
    /// None of these.
    Other,
}

crate::stored_enum!(BounceCategory, "bounce category" {
    InvalidRecipient => "INVALID_RECIPIENT",
    MailboxFull => "MAILBOX_FULL",
    Throttled => "THROTTLED",
    BlockedIp => "BLOCKED_IP",
    SpamContent => "SPAM_CONTENT",
    Authentication => "AUTHENTICATION",
    Policy => "POLICY",
    Greylisted => "GREYLISTED",
    Dns => "DNS",
    Connection => "CONNECTION",
    Other => "OTHER",
});

/// An RFC 3463 enhanced status code, `class.subject.detail`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EnhancedCode {
    pub class: u8,
    pub subject: u16,
    pub detail: u16,
}

impl fmt::Display for EnhancedCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.class, self.subject, self.detail)
    }
}

/// The first enhanced status code in a response: `2`, `4` or `5`, then two numbers of one
/// to three digits, standing alone (`550-5.1.1`, `550 5.7.1`, `(5.7.606)`), so that
/// addresses (`192.0.2.10`) and longer dotted numbers (`4.16.55.1`) are not taken.
pub fn enhanced_code(response: &str) -> Option<EnhancedCode> {
    let bytes = response.as_bytes();
    let mut start = 0;
    while let Some(offset) = bytes[start..]
        .iter()
        .position(|b| matches!(b, b'2' | b'4' | b'5'))
    {
        let at = start + offset;
        start = at + 1;
        if at > 0 && (bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'.') {
            continue;
        }
        let mut numbers = [0u16; 2];
        let mut cursor = at + 1;
        let mut whole = true;
        for number in &mut numbers {
            if bytes.get(cursor) != Some(&b'.') {
                whole = false;
                break;
            }
            cursor += 1;
            let digits = bytes[cursor..]
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .count();
            if !(1..=3).contains(&digits) {
                whole = false;
                break;
            }
            *number = response[cursor..cursor + digits].parse().unwrap_or(0);
            cursor += digits;
        }
        let ends_alone = bytes.get(cursor).is_none_or(|b| {
            !(b.is_ascii_alphanumeric()
                || *b == b'.' && bytes.get(cursor + 1).is_some_and(u8::is_ascii_digit))
        });
        if whole && ends_alone {
            return Some(EnhancedCode {
                class: bytes[at] - b'0',
                subject: numbers[0],
                detail: numbers[1],
            });
        }
    }
    None
}

/// Which enhanced codes a rule takes: each part a number or any (`*.1.1`, `5.7.*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CodePattern {
    pub class: Option<u8>,
    pub subject: Option<u16>,
    pub detail: Option<(u16, u16)>,
}

impl CodePattern {
    /// `5.7.606`, `*.1.1`, `5.7.*` or a detail range `5.7.606-609`.
    pub fn parse(text: &str) -> Result<CodePattern, String> {
        let bad =
            || format!("'{text}' is not an enhanced code pattern like 5.1.1, *.1.1 or 5.7.606-609");
        let mut parts = text.trim().split('.');
        let (Some(class), Some(subject), Some(detail), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        let any = |part: &str| part == "*";
        let class = if any(class) {
            None
        } else {
            Some(
                class
                    .parse::<u8>()
                    .ok()
                    .filter(|c| matches!(c, 2 | 4 | 5))
                    .ok_or_else(bad)?,
            )
        };
        let subject = if any(subject) {
            None
        } else {
            Some(
                subject
                    .parse::<u16>()
                    .ok()
                    .filter(|s| *s < 1000)
                    .ok_or_else(bad)?,
            )
        };
        let detail = if any(detail) {
            None
        } else {
            let (low, high) = detail.split_once('-').unwrap_or((detail, detail));
            let low = low
                .parse::<u16>()
                .ok()
                .filter(|d| *d < 1000)
                .ok_or_else(bad)?;
            let high = high
                .parse::<u16>()
                .ok()
                .filter(|d| *d < 1000 && *d >= low)
                .ok_or_else(bad)?;
            Some((low, high))
        };
        Ok(CodePattern {
            class,
            subject,
            detail,
        })
    }

    fn matches(&self, code: EnhancedCode) -> bool {
        self.class.is_none_or(|c| c == code.class)
            && self.subject.is_none_or(|s| s == code.subject)
            && self
                .detail
                .is_none_or(|(low, high)| (low..=high).contains(&code.detail))
    }
}

/// One rule: every condition it gives must hold.
#[derive(Clone, Debug)]
pub struct Rule {
    pub category: BounceCategory,
    /// SMTP reply codes, inclusive.
    pub codes: Option<(u16, u16)>,
    pub enhanced: Option<CodePattern>,
    /// Lower-case phrases; the response (lower-cased) must hold one of them.
    pub phrases: Vec<String>,
    /// Where the rule comes from: an RFC, a provider's page, or the operator's file.
    pub source: String,
}

impl Rule {
    fn matches(&self, code: Option<u16>, enhanced: Option<EnhancedCode>, lower: &str) -> bool {
        self.codes
            .is_none_or(|(low, high)| code.is_some_and(|c| (low..=high).contains(&c)))
            && self
                .enhanced
                .is_none_or(|pattern| enhanced.is_some_and(|e| pattern.matches(e)))
            && (self.phrases.is_empty() || self.phrases.iter().any(|p| lower.contains(p.as_str())))
    }
}

/// What classification says about one response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Classified {
    pub category: BounceCategory,
    pub enhanced: Option<EnhancedCode>,
}

/// The rules in the order they are tried: the operator's, then the built-in table.
#[derive(Clone, Debug)]
pub struct BounceRules {
    rules: Arc<Vec<Rule>>,
}

/// Rules in a `MAILOPS_BOUNCE_RULES` file.
const MAX_FILE_RULES: usize = 500;
const MAX_FILE_BYTES: u64 = 1 << 20;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRule {
    category: BounceCategory,
    #[serde(default)]
    codes: Option<String>,
    #[serde(default)]
    enhanced: Option<String>,
    #[serde(default)]
    phrases: Vec<String>,
    source: String,
}

impl Default for BounceRules {
    fn default() -> Self {
        BounceRules {
            rules: Arc::new(rules::built_in()),
        }
    }
}

impl BounceRules {
    /// The built-in rules after those of the JSON file at `path`: an array of
    /// `{ "category", "codes"?: "421" | "400-499", "enhanced"?: "4.7.0", "phrases"?: [..],
    /// "source" }`, each with at least one condition.
    pub fn with_file(path: &std::path::Path) -> Result<BounceRules, String> {
        let size = std::fs::metadata(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?
            .len();
        if size > MAX_FILE_BYTES {
            return Err(format!("{} is over {MAX_FILE_BYTES} bytes", path.display()));
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Self::with_json(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn with_json(text: &str) -> Result<BounceRules, String> {
        let file: Vec<FileRule> = serde_json::from_str(text).map_err(|e| e.to_string())?;
        if file.len() > MAX_FILE_RULES {
            return Err(format!("{} rules; at most {MAX_FILE_RULES}", file.len()));
        }
        let mut all = Vec::with_capacity(file.len() + BUILT_IN.len());
        for (index, rule) in file.into_iter().enumerate() {
            let at = |e: String| format!("rule {index}: {e}");
            let codes = rule
                .codes
                .as_deref()
                .map(parse_codes)
                .transpose()
                .map_err(at)?;
            let enhanced = rule
                .enhanced
                .as_deref()
                .map(CodePattern::parse)
                .transpose()
                .map_err(at)?;
            if rule.phrases.len() > 64
                || rule
                    .phrases
                    .iter()
                    .any(|p| p.trim().is_empty() || p.len() > 256)
            {
                return Err(at("phrases: at most 64, each 1 to 256 bytes".into()));
            }
            if codes.is_none() && enhanced.is_none() && rule.phrases.is_empty() {
                return Err(at("give codes, enhanced or phrases".into()));
            }
            if rule.source.trim().is_empty() || rule.source.len() > 512 {
                return Err(at(
                    "source: 1 to 512 bytes saying where the rule comes from".into(),
                ));
            }
            all.push(Rule {
                category: rule.category,
                codes,
                enhanced,
                phrases: rule
                    .phrases
                    .iter()
                    .map(|p| p.trim().to_lowercase())
                    .collect(),
                source: rule.source,
            });
        }
        all.extend(rules::built_in());
        Ok(BounceRules {
            rules: Arc::new(all),
        })
    }

    /// The category of a refusal, and the enhanced code its response carries.
    pub fn classify(&self, smtp_code: Option<i32>, response: Option<&str>) -> Classified {
        let response = response.unwrap_or("");
        let enhanced = enhanced_code(response);
        let code = smtp_code.and_then(|c| u16::try_from(c).ok());
        let lower = response.to_lowercase();
        let category = self
            .rules
            .iter()
            .find(|rule| rule.matches(code, enhanced, &lower))
            .map_or(BounceCategory::Other, |rule| rule.category);
        Classified { category, enhanced }
    }

    /// The rule that decides, for explaining a classification.
    pub fn deciding_rule(&self, smtp_code: Option<i32>, response: &str) -> Option<&Rule> {
        let enhanced = enhanced_code(response);
        let code = smtp_code.and_then(|c| u16::try_from(c).ok());
        let lower = response.to_lowercase();
        self.rules
            .iter()
            .find(|rule| rule.matches(code, enhanced, &lower))
    }
}

fn parse_codes(text: &str) -> Result<(u16, u16), String> {
    let bad = || format!("codes: '{text}' is not a reply code or range like 421 or 400-499");
    let (low, high) = text
        .trim()
        .split_once('-')
        .unwrap_or((text.trim(), text.trim()));
    let low: u16 = low.trim().parse().map_err(|_| bad())?;
    let high: u16 = high.trim().parse().map_err(|_| bad())?;
    if !(200..=599).contains(&low) || !(low..=599).contains(&high) {
        return Err(bad());
    }
    Ok((low, high))
}

#[cfg(test)]
mod tests;
