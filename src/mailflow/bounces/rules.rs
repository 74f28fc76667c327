//! The built-in rules, in the order they are tried: what a provider documents first, then
//! phrases any receiver uses, then the enhanced status code alone (RFC 3463, RFC 7372,
//! RFC 7505), then the reply code alone (RFC 5321). The first rule that holds decides.

use super::{BounceCategory, CodePattern, Rule};

use BounceCategory::{
    Authentication, BlockedIp, Connection, Dns, Greylisted, InvalidRecipient, MailboxFull, Policy,
    SpamContent, Throttled,
};

pub struct BuiltIn {
    pub category: BounceCategory,
    pub codes: Option<(u16, u16)>,
    pub enhanced: Option<&'static str>,
    pub phrases: &'static [&'static str],
    pub source: &'static str,
}

const GMAIL: &str = "Gmail SMTP errors and codes, https://support.google.com/a/answer/3726730";
const MICROSOFT_NDR: &str = "Microsoft, Fix NDR error codes 5.7.606 through 5.7.649 in Exchange Online, https://learn.microsoft.com/en-us/exchange/troubleshoot/email-delivery/ndr/fix-error-code-5-7-606-through-5-7-649";
const OUTLOOK_COM: &str = "Outlook.com postmaster, troubleshooting, https://sendersupport.olc.protection.outlook.com/pm/troubleshooting.aspx";
const YAHOO: &str =
    "Yahoo Sender Hub, SMTP error codes, https://senders.yahooinc.com/smtp-error-codes/";
const SPAMHAUS: &str = "Spamhaus, blocklist removal center, https://check.spamhaus.org/";
const BARRACUDA: &str = "Barracuda Reputation Block List, https://www.barracudacentral.org/rbl";
const RFC3463: &str = "RFC 3463, Enhanced Mail System Status Codes";
const RFC7372: &str = "RFC 7372, Email Authentication Status Codes";
const RFC7505: &str = "RFC 7505, A \"Null MX\" No Service Resource Record";
const RFC5321: &str = "RFC 5321, section 4.2.3, reply codes";
const RFC6647: &str = "RFC 6647, Email Greylisting";
const COMMON: &str = "wording common to Postfix, Exim, Haraka and ZoneMTA replies";

const fn text(
    category: BounceCategory,
    phrases: &'static [&'static str],
    source: &'static str,
) -> BuiltIn {
    BuiltIn {
        category,
        codes: None,
        enhanced: None,
        phrases,
        source,
    }
}

const fn coded_text(
    category: BounceCategory,
    codes: (u16, u16),
    phrases: &'static [&'static str],
    source: &'static str,
) -> BuiltIn {
    BuiltIn {
        category,
        codes: Some(codes),
        enhanced: None,
        phrases,
        source,
    }
}

const fn enhanced(
    category: BounceCategory,
    pattern: &'static str,
    source: &'static str,
) -> BuiltIn {
    BuiltIn {
        category,
        codes: None,
        enhanced: Some(pattern),
        phrases: &[],
        source,
    }
}

const fn code(category: BounceCategory, codes: (u16, u16), source: &'static str) -> BuiltIn {
    BuiltIn {
        category,
        codes: Some(codes),
        enhanced: None,
        phrases: &[],
        source,
    }
}

pub static BUILT_IN: &[BuiltIn] = &[
    // Providers, in their own words.
    coded_text(
        BlockedIp,
        (500, 599),
        &["unusual rate of unsolicited mail originating from your ip"],
        GMAIL,
    ),
    coded_text(
        Throttled,
        (400, 499),
        &["unusual rate of unsolicited mail originating from your ip"],
        GMAIL,
    ),
    text(
        Throttled,
        &["receiving mail at a rate that prevents additional messages"],
        GMAIL,
    ),
    text(
        Throttled,
        &["has been temporarily rate limited due to ip reputation"],
        OUTLOOK_COM,
    ),
    text(
        BlockedIp,
        &[
            "part of their network is on our block list",
            "(s3150)",
            "(s3140)",
        ],
        OUTLOOK_COM,
    ),
    text(BlockedIp, &["banned sending ip"], MICROSOFT_NDR),
    BuiltIn {
        category: BlockedIp,
        codes: None,
        enhanced: Some("5.7.606-609"),
        phrases: &[],
        source: MICROSOFT_NDR,
    },
    text(
        Throttled,
        &["[tss04]", "[tss05]", "unexpected volume or user complaints"],
        YAHOO,
    ),
    text(
        BlockedIp,
        &[
            "[tss09]",
            "will be permanently deferred",
            "[bl21]",
            "[bl22]",
            "[bl23]",
        ],
        YAHOO,
    ),
    text(
        InvalidRecipient,
        &[
            "doesn't have a yahoo.com account",
            "this user doesn't have a",
        ],
        YAHOO,
    ),
    text(
        SpamContent,
        &[
            "very low reputation of the sending domain",
            "nature of the content",
            "likely unsolicited mail",
            "likely suspicious due to",
        ],
        GMAIL,
    ),
    text(
        Authentication,
        &[
            "does not have authentication information",
            "fails to pass authentication checks",
            "unauthenticated",
            "does not have a ptr record",
        ],
        GMAIL,
    ),
    // Blocklists, as the lists and receivers word their rejections.
    text(BlockedIp, &["spamhaus", "zen.spamhaus.org"], SPAMHAUS),
    text(BlockedIp, &["barracuda"], BARRACUDA),
    text(
        BlockedIp,
        &[
            "blocked using",
            "is listed",
            "listed at",
            "listed on",
            "listed in",
            "blacklist",
            "blocklist",
            "block list",
            "spamcop",
            "dnsbl",
            "rbl",
        ],
        COMMON,
    ),
    // Authentication (SPF, DKIM, DMARC).
    text(
        Authentication,
        &[
            "dmarc",
            "spf",
            "dkim",
            "sender policy framework",
            "domainkeys",
        ],
        RFC7372,
    ),
    // Rate and volume limits.
    text(
        Throttled,
        &[
            "rate limit",
            "rate-limit",
            "ratelimit",
            "throttl",
            "too many connections",
            "too many messages",
            "too many emails",
            "sending rate",
            "temporarily deferred",
            "slow down",
        ],
        COMMON,
    ),
    // Greylisting.
    text(
        Greylisted,
        &[
            "greylist",
            "graylist",
            "grey list",
            "gray list",
            "greylisting",
        ],
        RFC6647,
    ),
    // The mailbox.
    text(
        MailboxFull,
        &[
            "over quota",
            "quota exceeded",
            "exceeded storage",
            "mailbox is full",
            "mailbox full",
            "out of storage",
            "insufficient storage",
            "user is over",
            "mailbox size limit",
        ],
        COMMON,
    ),
    text(
        InvalidRecipient,
        &[
            "does not exist",
            "doesn't exist",
            "user unknown",
            "unknown user",
            "no such user",
            "no such recipient",
            "no such mailbox",
            "mailbox not found",
            "mailbox unavailable",
            "invalid recipient",
            "recipient not found",
            "address rejected: access denied",
            "unknown recipient",
            "account has been disabled",
            "account is disabled",
            "inactive account",
            "undeliverable address",
            "not a valid mailbox",
        ],
        COMMON,
    ),
    // Name resolution and connections, as MTAs report their own failures.
    text(
        Dns,
        &[
            "host or domain name not found",
            "domain not found",
            "name service error",
            "nxdomain",
            "no mx",
            "nowhere to deliver mail",
            "domain does not exist",
            "no such domain",
            "unrouteable address",
            "name or service not known",
            "dns error",
            "enotfound",
            "mx lookup",
        ],
        COMMON,
    ),
    text(
        Connection,
        &[
            "connection timed out",
            "timed out",
            "timeout",
            "connection refused",
            "econnrefused",
            "etimedout",
            "econnreset",
            "connection reset",
            "ehostunreach",
            "network is unreachable",
            "no route to host",
            "connection closed",
            "lost connection",
            "starttls",
            "tls required",
            "tls negotiation",
            "tls handshake",
            "ssl",
            "certificate",
        ],
        COMMON,
    ),
    // Content.
    text(
        SpamContent,
        &[
            "spam",
            "unsolicited",
            "phishing",
            "virus",
            "malware",
            "content rejected",
            "message content",
        ],
        COMMON,
    ),
    // Other policy.
    text(
        Policy,
        &[
            "relay access denied",
            "relaying denied",
            "relay not permitted",
            "not permitted to relay",
            "relaying",
            "message size exceeds",
            "message too large",
            "too big",
            "size limit",
            "sender address rejected",
            "sender rejected",
            "policy",
        ],
        COMMON,
    ),
    // The enhanced status code alone.
    enhanced(InvalidRecipient, "*.1.1", RFC3463),
    enhanced(Dns, "*.1.2", RFC3463),
    enhanced(InvalidRecipient, "*.1.3", RFC3463),
    enhanced(InvalidRecipient, "*.1.6", RFC3463),
    enhanced(Dns, "*.1.10", RFC7505),
    enhanced(InvalidRecipient, "*.2.1", RFC3463),
    enhanced(MailboxFull, "*.2.2", RFC3463),
    enhanced(Policy, "*.2.3", RFC3463),
    enhanced(Policy, "*.3.4", RFC3463),
    enhanced(Connection, "*.4.1", RFC3463),
    enhanced(Connection, "*.4.2", RFC3463),
    enhanced(Dns, "*.4.3", RFC3463),
    enhanced(Dns, "*.4.4", RFC3463),
    enhanced(Throttled, "*.4.5", RFC3463),
    enhanced(Policy, "*.5.3", RFC3463),
    enhanced(Policy, "*.7.1", RFC3463),
    enhanced(Connection, "*.7.10-11", RFC3463),
    enhanced(Authentication, "*.7.20-26", RFC7372),
    enhanced(Policy, "*.7.27", RFC7372),
    // The reply code alone.
    code(MailboxFull, (452, 452), RFC5321),
    code(MailboxFull, (552, 552), RFC5321),
    code(InvalidRecipient, (551, 551), RFC5321),
    code(InvalidRecipient, (553, 553), RFC5321),
];

/// The built-in table as rules.
pub fn built_in() -> Vec<Rule> {
    BUILT_IN
        .iter()
        .map(|rule| Rule {
            category: rule.category,
            codes: rule.codes,
            enhanced: rule
                .enhanced
                .map(|p| CodePattern::parse(p).expect("a built-in pattern parses (tested)")),
            phrases: rule.phrases.iter().map(|p| (*p).to_string()).collect(),
            source: rule.source.to_string(),
        })
        .collect()
}
