//! Delivering one message to one contact point: an HTTP POST (webhook, Slack) or a mail
//! through SMTP, and what the receiver answered.

use std::time::Duration;

use hmac::{Hmac, Mac};
use lettre::{
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
    message::{Mailbox, MultiPart},
    transport::smtp::authentication::Credentials,
};
use sha2::Sha256;

use super::{
    contact_points::ContactPoint,
    model::{AttemptOutcome, ContactPointKind, SmtpSecurity},
    payload::WebhookMessage,
};

/// The most of a receiver's answer kept in an attempt's detail.
const MAX_DETAIL_CHARS: usize = 300;

/// How one attempt ended.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub outcome: AttemptOutcome,
    /// The HTTP status or SMTP reply code.
    pub status_code: Option<i32>,
    /// What the receiver said, or why nothing reached it; never a URL or a secret.
    pub detail: String,
    /// How long the receiver asked to wait (`Retry-After`).
    pub retry_after: Option<Duration>,
}

impl Delivery {
    fn failed(detail: String) -> Delivery {
        Delivery {
            outcome: AttemptOutcome::Failed,
            status_code: None,
            detail: clean(&detail),
            retry_after: None,
        }
    }
}

/// One line of printable text, bounded.
fn clean(text: &str) -> String {
    let line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_DETAIL_CHARS)
        .collect();
    line.trim().to_string()
}

/// The signature header's value: `sha256=` and the hex HMAC-SHA256 of the body.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// Sends messages; one per process, sharing its HTTP connections.
#[derive(Clone)]
pub struct Sender {
    http: reqwest::Client,
    timeout: Duration,
}

impl Sender {
    pub fn new(timeout: Duration) -> Sender {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            // A redirect would turn the POST into a GET elsewhere: report it instead.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("mailops/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        Sender { http, timeout }
    }

    pub async fn send(&self, point: &ContactPoint, message: &WebhookMessage) -> Delivery {
        match point.kind {
            ContactPointKind::Webhook => {
                let body = match serde_json::to_vec(message) {
                    Ok(body) => body,
                    Err(e) => return Delivery::failed(e.to_string()),
                };
                self.post(point, body, message.sequence).await
            }
            ContactPointKind::Slack => {
                let body = message.slack().to_string().into_bytes();
                self.post(point, body, message.sequence).await
            }
            ContactPointKind::Email => self.mail(point, message).await,
        }
    }

    async fn post(&self, point: &ContactPoint, body: Vec<u8>, sequence: i64) -> Delivery {
        let Some(url) = &point.secrets.url else {
            return Delivery::failed("the contact point has no URL".into());
        };
        let mut request = self
            .http
            .post(url)
            .header("content-type", "application/json")
            .header("x-mailops-sequence", sequence.to_string());
        if let Some(secret) = &point.secrets.secret {
            request = request.header("x-mailops-signature", signature(secret, &body));
        }
        for (name, value) in &point.secrets.headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let response = match request.body(body).send().await {
            Ok(response) => response,
            // Without the URL: it may carry a token.
            Err(e) => return Delivery::failed(error_chain(&e.without_url())),
        };
        let status = response.status();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let answer = response.text().await.unwrap_or_default();
        let outcome = if status.is_success() {
            AttemptOutcome::Sent
        } else if status.is_server_error()
            || status == reqwest::StatusCode::REQUEST_TIMEOUT
            || status == reqwest::StatusCode::TOO_MANY_REQUESTS
        {
            AttemptOutcome::Failed
        } else {
            AttemptOutcome::Rejected
        };
        let mut detail = format!("HTTP {status}");
        let answer = clean(&answer);
        if !answer.is_empty() {
            detail.push_str(": ");
            detail.push_str(&answer);
        }
        Delivery {
            outcome,
            status_code: Some(i32::from(status.as_u16())),
            detail: clean(&detail),
            retry_after,
        }
    }

    async fn mail(&self, point: &ContactPoint, message: &WebhookMessage) -> Delivery {
        let Some(smtp) = &point.settings.smtp else {
            return Delivery::failed("the contact point has no SMTP server".into());
        };
        let mail = match compose(&smtp.from, &point.settings.recipients, message) {
            Ok(mail) => mail,
            Err(e) => {
                return Delivery {
                    outcome: AttemptOutcome::Rejected,
                    status_code: None,
                    detail: clean(&e),
                    retry_after: None,
                };
            }
        };
        let builder = match smtp.security {
            SmtpSecurity::None => Ok(AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(
                &smtp.host,
            )),
            SmtpSecurity::Starttls => {
                AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&smtp.host)
            }
            SmtpSecurity::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&smtp.host),
        };
        let mut builder = match builder {
            Ok(builder) => builder.port(smtp.port).timeout(Some(self.timeout)),
            Err(e) => return Delivery::failed(error_chain(&e)),
        };
        if let (Some(user), Some(password)) = (&smtp.username, &point.secrets.smtp_password) {
            builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
        }
        let transport = builder.build();
        let sent = tokio::time::timeout(self.timeout * 3, transport.send(mail)).await;
        match sent {
            Err(_) => Delivery::failed("the SMTP server took too long".into()),
            Ok(Ok(response)) => Delivery {
                outcome: AttemptOutcome::Sent,
                status_code: Some(i32::from(u16::from(response.code()))),
                detail: clean(&format!(
                    "{} {}",
                    response.code(),
                    response.message().collect::<Vec<_>>().join(" ")
                )),
                retry_after: None,
            },
            Ok(Err(e)) => Delivery {
                outcome: if e.is_permanent() {
                    AttemptOutcome::Rejected
                } else {
                    AttemptOutcome::Failed
                },
                status_code: e.status().map(|c| i32::from(u16::from(c))),
                detail: clean(&error_chain(&e)),
                retry_after: None,
            },
        }
    }
}

/// The mail of a message: plain text and HTML alternatives.
fn compose(from: &str, to: &[String], message: &WebhookMessage) -> Result<Message, String> {
    let mailbox = |text: &str| {
        text.parse::<Mailbox>()
            .map_err(|e| format!("'{text}' is not a mail address: {e}"))
    };
    let mut builder = Message::builder()
        .from(mailbox(from)?)
        .subject(message.title());
    for recipient in to {
        builder = builder.to(mailbox(recipient)?);
    }
    builder
        .multipart(MultiPart::alternative_plain_html(
            message.text(),
            message.html(),
        ))
        .map_err(|e| e.to_string())
}

/// An error and its causes, one after the other.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_the_hex_hmac_sha256_of_the_body() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn details_are_one_bounded_line() {
        let long = format!("a\nb\u{0}c{}", "x".repeat(1000));
        let cleaned = clean(&long);
        assert!(cleaned.starts_with("a b c"));
        assert_eq!(cleaned.chars().count(), MAX_DETAIL_CHARS);
    }
}
