//! sea-orm entities of mailops, one per table. GraphQL types live in the domain modules of
//! the `mailops` crate and convert from these models, so this crate stays free of GraphQL.

pub mod alert;
pub mod alert_notice;
pub mod alert_rule;
pub mod alert_silence;
pub mod audit_log;
pub mod contact_point;
pub mod dnsbl_check_job;
pub mod dnsbl_result;
pub mod dnsbl_transition;
pub mod enrollment_key;
pub mod ip_address;
pub mod mail_event;
pub mod mail_event_batch;
pub mod metric_batch;
pub mod metric_sample;
pub mod metric_series;
pub mod node;
pub mod node_key;
pub mod node_label;
pub mod node_status_change;
pub mod notification;
pub mod notification_attempt;
pub mod notification_group;
pub mod notification_group_alert;
pub mod notification_policy;
pub mod refresh_token;
pub mod user;
