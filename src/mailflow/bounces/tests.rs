use super::*;

use BounceCategory::*;

/// Response lines as the providers' public pages quote them (addresses as they print
/// them), with the page, and what each must be classified as.
const CORPUS: &[(i32, &str, BounceCategory, &str)] = &[
    (
        550,
        "550-5.1.1 The email account that you tried to reach does not exist. Please try double-checking the recipient's email address for typos or unnecessary spaces. Learn more at https://support.google.com/mail/?p=NoSuchUser",
        InvalidRecipient,
        "support.google.com/a/answer/3726730",
    ),
    (
        452,
        "452-4.2.2 The email account that you tried to reach is over quota. Please direct the recipient to https://support.google.com/mail/?p=OverQuotaTemp",
        MailboxFull,
        "support.google.com/a/answer/3726730",
    ),
    (
        421,
        "421-4.7.28 [192.0.2.10] Our system has detected an unusual rate of unsolicited mail originating from your IP address. To protect our users from spam, mail sent from your IP address has been temporarily rate limited. Please visit https://support.google.com/mail/?p=UnsolicitedRateLimitError to review our Bulk Email Senders Guidelines. - gsmtp",
        Throttled,
        "support.google.com/a/answer/3726730",
    ),
    (
        550,
        "550-5.7.1 [192.0.2.10] Our system has detected an unusual rate of unsolicited mail originating from your IP address. To protect our users from spam, mail sent from your IP address has been blocked. Please visit https://support.google.com/mail/?p=UnsolicitedIPError to review our Bulk Email Senders Guidelines.",
        BlockedIp,
        "support.google.com/a/answer/3726730",
    ),
    (
        450,
        "450-4.2.1 The user you are trying to contact is receiving mail at a rate that prevents additional messages from being delivered. Please resend your message at a later time. - gsmtp",
        Throttled,
        "support.google.com/a/answer/3726730",
    ),
    (
        421,
        "421-4.7.0 [192.0.2.10] Our system has detected that this message is suspicious due to the very low reputation of the sending domain. To best protect our users from spam, the message has been blocked. - gsmtp",
        SpamContent,
        "support.google.com/a/answer/3726730",
    ),
    (
        550,
        "550-5.7.1 [192.0.2.10] Our system has detected that this message is likely unsolicited mail. To reduce the amount of spam sent to Gmail, this message has been blocked.",
        SpamContent,
        "support.google.com/a/answer/3726730",
    ),
    (
        421,
        "421-4.7.0 This message does not have authentication information or fails to pass authentication checks. To best protect our users from spam, the message has been blocked. Please visit https://support.google.com/mail/answer/81126#authentication for more information.",
        Authentication,
        "support.google.com/a/answer/3726730",
    ),
    (
        550,
        "550-5.7.26 This mail has been blocked because the sender is unauthenticated. Gmail requires all senders to authenticate with either SPF or DKIM.",
        Authentication,
        "support.google.com/a/answer/3726730",
    ),
    (
        550,
        "550-5.7.25 [192.0.2.10] The IP address sending this message does not have a PTR record setup, or the corresponding forward DNS entry does not point to the sending IP.",
        Authentication,
        "support.google.com/a/answer/3726730",
    ),
    (
        421,
        "421-4.7.0 TLS required for RCPT domain, closing connection.",
        Connection,
        "support.google.com/a/answer/3726730",
    ),
    (
        550,
        "550 5.7.1 Unfortunately, messages from [192.0.2.10] weren't sent. Please contact your Internet service provider since part of their network is on our block list (S3150). You can also refer your provider to http://mail.live.com/mail/troubleshooting.aspx#errors.",
        BlockedIp,
        "sendersupport.olc.protection.outlook.com/pm/troubleshooting.aspx",
    ),
    (
        550,
        "550 5.7.606 Access denied, banned sending IP [192.0.2.10]. To request removal from this list please visit https://sender.office.com/ and follow the directions.",
        BlockedIp,
        "learn.microsoft.com, NDR 5.7.606 through 5.7.649",
    ),
    (
        550,
        "550 5.7.608 Access denied, please contact your administrator.",
        BlockedIp,
        "learn.microsoft.com, NDR 5.7.606 through 5.7.649",
    ),
    (
        451,
        "451 4.7.650 The mail server [192.0.2.10] has been temporarily rate limited due to IP reputation. For e-mail delivery information, see https://aka.ms/postmaster (S775)",
        Throttled,
        "sendersupport.olc.protection.outlook.com/pm/troubleshooting.aspx",
    ),
    (
        550,
        "550 5.7.509 Access denied, sending domain example.com does not pass DMARC verification and has a DMARC policy of reject.",
        Authentication,
        "learn.microsoft.com, NDR 5.7.509",
    ),
    (
        550,
        "550 5.4.1 Recipient address rejected: Access denied. AS(201806281)",
        InvalidRecipient,
        "learn.microsoft.com, NDR 5.4.1",
    ),
    (
        421,
        "421 4.7.0 [TSS04] Messages from 192.0.2.10 temporarily deferred due to unexpected volume or user complaints - 4.16.55.1; see https://postmaster.yahooinc.com/error-codes",
        Throttled,
        "senders.yahooinc.com/smtp-error-codes",
    ),
    (
        421,
        "421 4.7.0 [TSS09] All messages from 192.0.2.10 will be permanently deferred; Retrying will NOT succeed. See https://postmaster.yahooinc.com/error-codes",
        BlockedIp,
        "senders.yahooinc.com/smtp-error-codes",
    ),
    (
        553,
        "553 5.7.1 [BL21] Connections will not be accepted from 192.0.2.10, because the ip is in Spamhaus's list; see https://postmaster.yahooinc.com/error-codes",
        BlockedIp,
        "senders.yahooinc.com/smtp-error-codes",
    ),
    (
        554,
        "554 5.7.9 Message not accepted for policy reasons. See https://postmaster.yahooinc.com/error-codes",
        Policy,
        "senders.yahooinc.com/smtp-error-codes",
    ),
    (
        554,
        "554 delivery error: dd This user doesn't have a yahoo.com account (someone@yahoo.com) [0] - mta1234.mail.bf1.yahoo.com",
        InvalidRecipient,
        "senders.yahooinc.com/smtp-error-codes",
    ),
    (
        554,
        "554 5.7.1 Service unavailable; Client host [192.0.2.10] blocked using zen.spamhaus.org; https://www.spamhaus.org/query/ip/192.0.2.10",
        BlockedIp,
        "spamhaus.org, blocked using",
    ),
    (
        554,
        "554 Service unavailable; Client host [192.0.2.10] blocked using Barracuda Reputation; http://www.barracudanetworks.com/reputation/?pr=1&ip=192.0.2.10",
        BlockedIp,
        "barracudacentral.org/rbl",
    ),
    (
        450,
        "450 4.2.0 <someone@example.org>: Recipient address rejected: Greylisted, see http://postgrey.schweikert.ch/help/example.org.html",
        Greylisted,
        "postgrey's documentation",
    ),
    (
        550,
        "550 5.7.23 The message was rejected because of Sender Policy Framework violation",
        Authentication,
        "RFC 7372 section 3.2",
    ),
    (
        550,
        "550 5.1.10 Recipient address has null MX",
        Dns,
        "RFC 7505 section 4.2",
    ),
    (
        550,
        "550 5.1.1 <nobody@example.org>: Recipient address rejected: User unknown in virtual mailbox table",
        InvalidRecipient,
        "Postfix",
    ),
    (
        552,
        "552 5.2.2 <someone@example.org>: user is over quota",
        MailboxFull,
        "Postfix, Dovecot",
    ),
    (
        554,
        "554 5.7.1 <someone@example.org>: Relay access denied",
        Policy,
        "Postfix",
    ),
    (
        552,
        "552 5.3.4 Message size exceeds fixed limit",
        Policy,
        "Postfix",
    ),
    (
        451,
        "Network error when connecting to MX server mx.example.org[203.0.113.5] for example.org: Connection timed out",
        Connection,
        "ZoneMTA",
    ),
    (
        550,
        "DNS Error: Domain name not found",
        Dns,
        "ZoneMTA / Haraka",
    ),
    (
        550,
        "Nowhere to deliver mail to for domain: example.invalid",
        Dns,
        "Haraka outbound",
    ),
    (
        550,
        "550 5.7.1 Message rejected as spam by Content Filtering.",
        SpamContent,
        "Exchange Online",
    ),
    (
        451,
        "451 4.4.1 No answer from host",
        Connection,
        "RFC 3463 X.4.1",
    ),
    (
        550,
        "550 Requested action not taken",
        Other,
        "RFC 5321, no detail",
    ),
];

#[test]
fn the_corpus_is_classified_as_documented() {
    let rules = BounceRules::default();
    let mut wrong = Vec::new();
    for (code, response, expected, page) in CORPUS {
        let got = rules.classify(Some(*code), Some(response)).category;
        if got != *expected {
            let rule = rules
                .deciding_rule(Some(*code), response)
                .map(|r| r.source.clone());
            wrong.push(format!(
                "{page}: {response:?} → {got:?} (rule {rule:?}), expected {expected:?}"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn every_category_has_a_corpus_line_and_every_rule_parses() {
    for category in BounceCategory::ALL {
        assert!(
            CORPUS.iter().any(|(_, _, c, _)| c == category),
            "{category:?} has no corpus line"
        );
    }
    assert_eq!(rules::built_in().len(), BUILT_IN.len());
    for rule in BUILT_IN {
        assert!(!rule.source.is_empty());
        assert!(
            rule.phrases.iter().all(|p| p.to_lowercase() == *p),
            "phrases are lower case"
        );
    }
}

#[test]
fn enhanced_codes_are_found_where_responses_carry_them() {
    let code = |text: &str| enhanced_code(text).map(|c| c.to_string());
    assert_eq!(code("550-5.1.1 The email account"), Some("5.1.1".into()));
    assert_eq!(code("550 5.7.1 Service unavailable"), Some("5.7.1".into()));
    assert_eq!(
        code("451 4.7.650 The mail server [192.0.2.10]"),
        Some("4.7.650".into())
    );
    assert_eq!(code("Access denied (5.7.606)."), Some("5.7.606".into()));
    assert_eq!(code("from 52.101.1.1 and 192.0.2.5 only"), None);
    assert_eq!(code("deferred - 4.16.55.1; see"), None);
    assert_eq!(code("550 Requested action not taken"), None);
    assert_eq!(code("5.1.1"), Some("5.1.1".into()));
    assert_eq!(code("x5.1.1 y"), None);
}

#[test]
fn rules_of_the_file_come_first_and_bad_files_are_refused() {
    let rules = BounceRules::with_json(
        r#"[{ "category": "THROTTLED", "codes": "550", "phrases": ["Too Much Mail From You"],
              "source": "our partner's postmaster page" }]"#,
    )
    .unwrap();
    let said = "550 5.7.1 too much mail from you, listed in our spam filter";
    assert_eq!(rules.classify(Some(550), Some(said)).category, Throttled);
    assert_eq!(
        BounceRules::default()
            .classify(Some(550), Some(said))
            .category,
        BlockedIp
    );
    assert_eq!(rules.classify(Some(451), Some(said)).category, BlockedIp);
    for (bad, why) in [
        (
            r#"[{ "category": "LOST", "source": "x", "codes": "550" }]"#,
            "unknown variant",
        ),
        (r#"[{ "category": "DNS", "source": "x" }]"#, "give codes"),
        (
            r#"[{ "category": "DNS", "source": "", "codes": "550" }]"#,
            "source",
        ),
        (
            r#"[{ "category": "DNS", "source": "x", "codes": "700" }]"#,
            "reply code",
        ),
        (
            r#"[{ "category": "DNS", "source": "x", "enhanced": "5.x.1" }]"#,
            "pattern",
        ),
        (
            r#"[{ "category": "DNS", "source": "x", "codes": "550", "colour": "red" }]"#,
            "unknown field",
        ),
    ] {
        let error = BounceRules::with_json(bad).unwrap_err();
        assert!(error.contains(why), "{bad}: {error}");
    }
}

#[test]
fn patterns_read_as_written() {
    let pattern = CodePattern::parse("5.7.606-609").unwrap();
    let at = |detail| EnhancedCode {
        class: 5,
        subject: 7,
        detail,
    };
    assert!(pattern.matches(at(606)) && pattern.matches(at(609)) && !pattern.matches(at(610)));
    let any_class = CodePattern::parse("*.1.1").unwrap();
    assert!(any_class.matches(EnhancedCode {
        class: 4,
        subject: 1,
        detail: 1
    }));
    assert!(CodePattern::parse("5.7").is_err());
    assert!(CodePattern::parse("3.1.1").is_err());
    assert!(CodePattern::parse("5.7.609-606").is_err());
}
