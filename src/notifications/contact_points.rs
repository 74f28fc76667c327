//! Contact points: made, changed and deleted by operators, with their secrets kept apart
//! from what may be shown.

use chrono::Utc;
use entity::contact_point::Model as ContactPointRow;
use sea_orm::{ConnectionTrait, DatabaseConnection};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{
    audit::{self, AuditContext, Change},
    error::{AppError, AppResult},
    input::{self, TextKind},
};

use super::{
    model::{
        ContactPointKind, CreateContactPointInput, Header, SmtpInput, SmtpSecurity,
        UpdateContactPointInput,
    },
    store,
};

pub const MAX_CONTACT_POINTS: u64 = 100;
pub const MAX_NAME_CHARS: usize = 64;
pub const MAX_URL_CHARS: usize = 2048;
pub const MAX_HEADERS: usize = 16;
pub const MAX_HEADER_VALUE_CHARS: usize = 1024;
pub const MAX_RECIPIENTS: usize = 50;
pub const SECRET_CHARS: std::ops::RangeInclusive<usize> = 16..=256;
/// Headers mailops sets itself, or that would break the request.
const RESERVED_HEADERS: [&str; 7] = [
    "host",
    "content-length",
    "content-type",
    "transfer-encoding",
    "connection",
    "x-mailops-signature",
    "x-mailops-sequence",
];

/// An EMAIL contact point's SMTP server, as it may be shown (never its password).
#[derive(async_graphql::SimpleObject, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SmtpSettings {
    /// The server's host name or address.
    pub host: String,
    /// Its port.
    pub port: u16,
    /// How the connection is secured.
    pub security: SmtpSecurity,
    /// The user mailops logs in as, if it logs in.
    pub username: Option<String>,
    /// The sender address.
    pub from: String,
    /// Whether a password is set (it is never shown).
    pub has_password: bool,
}

/// What a contact point's row may show.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Settings {
    /// The URL's origin, and `/…` when it has more: the rest may carry a token.
    pub url_shown: Option<String>,
    pub has_secret: bool,
    pub header_names: Vec<String>,
    pub smtp: Option<SmtpSettings>,
    pub recipients: Vec<String>,
}

/// What a contact point's row never shows.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Secrets {
    pub url: Option<String>,
    pub secret: Option<String>,
    pub headers: Vec<(String, String)>,
    pub smtp_password: Option<String>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secrets(<redacted>)")
    }
}

/// A contact point, read.
#[derive(Clone, Debug)]
pub struct ContactPoint {
    pub id: Uuid,
    pub name: String,
    pub kind: ContactPointKind,
    pub settings: Settings,
    pub secrets: Secrets,
    pub created_at: chrono::DateTime<Utc>,
    pub updated_at: chrono::DateTime<Utc>,
    pub updated_by: String,
}

impl TryFrom<ContactPointRow> for ContactPoint {
    type Error = AppError;

    fn try_from(row: ContactPointRow) -> AppResult<Self> {
        let unreadable =
            |e: serde_json::Error| AppError::internal(format!("contact point {}: {e}", row.id));
        Ok(ContactPoint {
            id: row.id,
            kind: ContactPointKind::parse(&row.kind)?,
            settings: serde_json::from_value(row.settings.clone()).map_err(unreadable)?,
            secrets: serde_json::from_value(row.secrets.clone()).map_err(unreadable)?,
            name: row.name,
            created_at: row.created_at,
            updated_at: row.updated_at,
            updated_by: row.updated_by,
        })
    }
}

pub async fn list(db: &impl ConnectionTrait) -> AppResult<Vec<ContactPoint>> {
    store::contact_points::list(db)
        .await?
        .into_iter()
        .map(TryInto::try_into)
        .collect()
}

pub async fn find(db: &impl ConnectionTrait, id: Uuid) -> AppResult<Option<ContactPoint>> {
    store::contact_points::find(db, id)
        .await?
        .map(TryInto::try_into)
        .transpose()
}

pub async fn find_many(db: &impl ConnectionTrait, ids: &[Uuid]) -> AppResult<Vec<ContactPoint>> {
    store::contact_points::find_many(db, ids)
        .await?
        .into_iter()
        .map(TryInto::try_into)
        .collect()
}

/// The origin of a URL, with `/…` when it goes on: what may be shown of it.
fn shown(url: &reqwest::Url) -> String {
    let origin = url.origin().ascii_serialization();
    let more = url.path() != "/" || url.query().is_some();
    if more {
        format!("{origin}/…")
    } else {
        origin
    }
}

fn http_url(field: &str, url: &str) -> AppResult<reqwest::Url> {
    let url = url.trim();
    if url.chars().count() > MAX_URL_CHARS {
        return Err(AppError::bad_input(
            field,
            format!("must be at most {MAX_URL_CHARS} characters"),
        ));
    }
    input::check_text(field, url, TextKind::Line)?;
    let parsed = reqwest::Url::parse(url)
        .map_err(|_| AppError::bad_input(field, "is not a URL such as https://example.com/hook"))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(AppError::bad_input(
            field,
            "must be an http:// or https:// URL",
        ));
    }
    Ok(parsed)
}

fn secret(field: &str, secret: &str) -> AppResult<String> {
    let count = secret.chars().count();
    if !SECRET_CHARS.contains(&count) {
        return Err(AppError::bad_input(
            field,
            format!(
                "must be {} to {} characters",
                SECRET_CHARS.start(),
                SECRET_CHARS.end()
            ),
        ));
    }
    input::check_text(field, secret, TextKind::Line)?;
    Ok(secret.to_string())
}

fn headers(field: &str, headers: &[Header]) -> AppResult<Vec<(String, String)>> {
    if headers.len() > MAX_HEADERS {
        return Err(AppError::bad_input(
            field,
            format!("{} headers; at most {MAX_HEADERS}", headers.len()),
        ));
    }
    let mut checked: Vec<(String, String)> = Vec::new();
    for header in headers {
        let name = header.name.trim();
        let token = !name.is_empty()
            && name.len() <= 64
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        if !token {
            return Err(AppError::bad_input(
                field,
                "a header name must be 1 to 64 letters, digits or '-'",
            ));
        }
        let lower = name.to_ascii_lowercase();
        if RESERVED_HEADERS.contains(&lower.as_str()) {
            return Err(AppError::bad_input(
                field,
                format!("mailops sets the header {name} itself"),
            ));
        }
        if checked.iter().any(|(n, _)| n.eq_ignore_ascii_case(name)) {
            return Err(AppError::bad_input(
                field,
                format!("the header {name} is given twice"),
            ));
        }
        if header.value.chars().count() > MAX_HEADER_VALUE_CHARS {
            return Err(AppError::bad_input(
                field,
                format!("a header value must be at most {MAX_HEADER_VALUE_CHARS} characters"),
            ));
        }
        input::check_text(field, &header.value, TextKind::Line)?;
        checked.push((name.to_string(), header.value.clone()));
    }
    Ok(checked)
}

fn address(field: &str, text: &str) -> AppResult<String> {
    let text = text.trim();
    if text.len() > 254 {
        return Err(AppError::bad_input(
            field,
            "an address is at most 254 characters",
        ));
    }
    text.parse::<lettre::Address>()
        .map_err(|_| AppError::bad_input(field, format!("'{text}' is not a mail address")))?;
    Ok(text.to_string())
}

fn recipients(field: &str, recipients: &[String]) -> AppResult<Vec<String>> {
    if recipients.is_empty() || recipients.len() > MAX_RECIPIENTS {
        return Err(AppError::bad_input(
            field,
            format!("must name 1 to {MAX_RECIPIENTS} addresses"),
        ));
    }
    recipients.iter().map(|r| address(field, r)).collect()
}

/// Checks SMTP settings; the password is the one given, or `kept` when left out.
fn smtp(smtp: &SmtpInput, kept: Option<String>) -> AppResult<(SmtpSettings, Option<String>)> {
    let host = input::required_line("input.smtp.host", &smtp.host, 253)?;
    if host.contains(char::is_whitespace) {
        return Err(AppError::bad_input("input.smtp.host", "is not a host name"));
    }
    let default_port = match smtp.security {
        SmtpSecurity::None => 25,
        SmtpSecurity::Starttls => 587,
        SmtpSecurity::Tls => 465,
    };
    let port = input::in_range(
        "input.smtp.port",
        smtp.port.unwrap_or(default_port),
        1..=65_535,
    )?;
    let username = input::bounded_text("input.smtp.username", smtp.username.as_deref(), 256)?;
    let password = match &smtp.password {
        async_graphql::MaybeUndefined::Undefined => kept,
        async_graphql::MaybeUndefined::Null => None,
        async_graphql::MaybeUndefined::Value(p) => {
            if p.chars().count() > 256 {
                return Err(AppError::bad_input(
                    "input.smtp.password",
                    "must be at most 256 characters",
                ));
            }
            input::check_text("input.smtp.password", p, TextKind::Line)?;
            Some(p.clone())
        }
    };
    if password.is_some() && username.is_none() {
        return Err(AppError::bad_input(
            "input.smtp.username",
            "is needed with a password",
        ));
    }
    let settings = SmtpSettings {
        host,
        port: u16::try_from(port).unwrap_or(25),
        security: smtp.security,
        username,
        from: address("input.smtp.from", &smtp.from)?,
        has_password: password.is_some(),
    };
    Ok((settings, password))
}

/// What a kind does not take, refused rather than silently dropped.
fn refuse_unused(kind: ContactPointKind, given: &[(&str, bool)]) -> AppResult<()> {
    match given.iter().find(|(_, present)| *present) {
        Some((field, _)) => Err(AppError::bad_input(
            format!("input.{field}"),
            format!("is not used by {} contact points", kind.as_str()),
        )),
        None => Ok(()),
    }
}

/// Checks a new contact point's settings and splits them into shown and secret parts.
fn checked_new(input: &CreateContactPointInput) -> AppResult<(String, Settings, Secrets)> {
    let name = input::required_line("input.name", &input.name, MAX_NAME_CHARS)?;
    let mut settings = Settings::default();
    let mut secrets = Secrets::default();
    match input.kind {
        ContactPointKind::Webhook | ContactPointKind::Slack => {
            let Some(url) = &input.url else {
                return Err(AppError::bad_input("input.url", "is required"));
            };
            let url = http_url("input.url", url)?;
            settings.url_shown = Some(shown(&url));
            secrets.url = Some(url.to_string());
            refuse_unused(
                input.kind,
                &[
                    ("smtp", input.smtp.is_some()),
                    ("recipients", !input.recipients.is_empty()),
                ],
            )?;
            if input.kind == ContactPointKind::Slack {
                refuse_unused(
                    input.kind,
                    &[
                        ("secret", input.secret.is_some()),
                        ("headers", !input.headers.is_empty()),
                    ],
                )?;
            }
            if let Some(s) = &input.secret {
                secrets.secret = Some(secret("input.secret", s)?);
                settings.has_secret = true;
            }
            secrets.headers = headers("input.headers", &input.headers)?;
            settings.header_names = secrets.headers.iter().map(|(n, _)| n.clone()).collect();
        }
        ContactPointKind::Email => {
            refuse_unused(
                input.kind,
                &[
                    ("url", input.url.is_some()),
                    ("secret", input.secret.is_some()),
                    ("headers", !input.headers.is_empty()),
                ],
            )?;
            let Some(given) = &input.smtp else {
                return Err(AppError::bad_input("input.smtp", "is required"));
            };
            let (smtp, password) = smtp(given, None)?;
            settings.smtp = Some(smtp);
            secrets.smtp_password = password;
            settings.recipients = recipients("input.recipients", &input.recipients)?;
        }
    }
    Ok((name, settings, secrets))
}

fn to_json<T: Serialize>(value: &T) -> AppResult<serde_json::Value> {
    serde_json::to_value(value).map_err(|e| AppError::internal(e.to_string()))
}

/// Creates a contact point.
pub async fn create(
    db: &DatabaseConnection,
    audit: &AuditContext,
    input: CreateContactPointInput,
) -> AppResult<ContactPoint> {
    let name: String = input.name.chars().take(MAX_NAME_CHARS).collect();
    let change = Change::new("contact_point.create")
        .detail(serde_json::json!({ "name": name, "kind": input.kind.as_str() }));
    audit::audited(db, audit, change.clone(), async {
        let (name, settings, secrets) = checked_new(&input)?;
        let txn = crate::db::begin_write(db).await?;
        if store::contact_points::count(&txn).await? >= MAX_CONTACT_POINTS {
            return Err(AppError::Conflict(format!(
                "there are already {MAX_CONTACT_POINTS} contact points"
            )));
        }
        let now = Utc::now();
        let row = store::contact_points::insert(
            &txn,
            ContactPointRow {
                id: Uuid::now_v7(),
                name,
                kind: input.kind.as_str().into(),
                settings: to_json(&settings)?,
                secrets: to_json(&secrets)?,
                created_at: now,
                updated_at: now,
                updated_by: audit.actor.name.chars().take(128).collect(),
            },
        )
        .await?;
        let change = change.clone().target("contact_point", row.id);
        audit::commit(txn, audit, change).await?;
        row.try_into()
    })
    .await
}

/// Changes a contact point: what the update leaves out stays.
pub async fn update(
    db: &DatabaseConnection,
    audit: &AuditContext,
    id: Uuid,
    input: UpdateContactPointInput,
) -> AppResult<ContactPoint> {
    let change = Change::new("contact_point.update").target("contact_point", id);
    audit::audited(db, audit, change.clone(), async {
        let txn = crate::db::begin_write(db).await?;
        let current: ContactPoint = store::contact_points::get(&txn, id).await?.try_into()?;
        let kind = current.kind;
        let mut settings = current.settings.clone();
        let mut secrets = current.secrets.clone();
        let name = match &input.name {
            Some(name) => input::required_line("input.name", name, MAX_NAME_CHARS)?,
            None => current.name.clone(),
        };
        let web = matches!(kind, ContactPointKind::Webhook | ContactPointKind::Slack);
        let email = kind == ContactPointKind::Email;
        refuse_unused(
            kind,
            &[
                ("url", !web && input.url.is_some()),
                (
                    "secret",
                    kind != ContactPointKind::Webhook && !input.secret.is_undefined(),
                ),
                (
                    "headers",
                    kind != ContactPointKind::Webhook && input.headers.is_some(),
                ),
                ("smtp", !email && input.smtp.is_some()),
                ("recipients", !email && input.recipients.is_some()),
            ],
        )?;
        if let Some(url) = &input.url {
            let url = http_url("input.url", url)?;
            settings.url_shown = Some(shown(&url));
            secrets.url = Some(url.to_string());
        }
        match &input.secret {
            async_graphql::MaybeUndefined::Undefined => {}
            async_graphql::MaybeUndefined::Null => secrets.secret = None,
            async_graphql::MaybeUndefined::Value(s) => {
                secrets.secret = Some(secret("input.secret", s)?)
            }
        }
        settings.has_secret = secrets.secret.is_some();
        if let Some(given) = &input.headers {
            secrets.headers = headers("input.headers", given)?;
            settings.header_names = secrets.headers.iter().map(|(n, _)| n.clone()).collect();
        }
        if let Some(given) = &input.smtp {
            let (smtp, password) = smtp(given, secrets.smtp_password.take())?;
            settings.smtp = Some(smtp);
            secrets.smtp_password = password;
        }
        if let Some(given) = &input.recipients {
            settings.recipients = recipients("input.recipients", given)?;
        }
        let row = store::contact_points::replace(
            &txn,
            ContactPointRow {
                id,
                name: name.clone(),
                kind: kind.as_str().into(),
                settings: to_json(&settings)?,
                secrets: to_json(&secrets)?,
                created_at: current.created_at,
                updated_at: Utc::now(),
                updated_by: audit.actor.name.chars().take(128).collect(),
            },
        )
        .await?;
        let mut change = change.clone();
        change.detail = Some(serde_json::json!({ "name": name }));
        audit::commit(txn, audit, change).await?;
        row.try_into()
    })
    .await
}

/// Deletes a contact point the policy does not send to; its unsent notifications are
/// given up.
pub async fn delete(
    db: &DatabaseConnection,
    audit: &AuditContext,
    id: Uuid,
) -> AppResult<ContactPoint> {
    let change = Change::new("contact_point.delete").target("contact_point", id);
    audit::audited(db, audit, change.clone(), async {
        let txn = crate::db::begin_write(db).await?;
        let current: ContactPoint = store::contact_points::get(&txn, id).await?.try_into()?;
        let policy = super::policy::current(&txn).await?.policy;
        if let Some(route) = policy.routes_sending_to(id) {
            return Err(AppError::Conflict(format!(
                "the notification policy sends to '{}' ({route}); take it out of the policy first",
                current.name
            )));
        }
        let given_up = store::notifications::fail_unfinished_of(&txn, id, Utc::now()).await?;
        store::contact_points::delete(&txn, id).await?;
        let mut change = change.clone();
        change.detail = Some(serde_json::json!({
            "name": current.name, "unsentNotifications": given_up,
        }));
        audit::commit(txn, audit, change).await?;
        Ok(current)
    })
    .await
}
