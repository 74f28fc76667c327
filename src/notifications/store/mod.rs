//! The only code that reads and writes the notification tables: `contact_points`,
//! `notification_policies`, `notification_groups`, `notification_group_alerts`,
//! `notifications` and `notification_attempts`.

pub mod contact_points;
pub mod groups;
pub mod notifications;
pub mod policy;
