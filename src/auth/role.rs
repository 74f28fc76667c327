use async_graphql::Enum;

/// What a dashboard user may do. Each role may do everything the roles below it may.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Reads everything except users and the audit log.
    Viewer,
    /// Also changes nodes, IPs and alerts.
    Operator,
    /// Also manages users and reads the audit log.
    Admin,
}

impl Role {
    /// The role as people read it in messages: `viewer`, `operator`, `admin`.
    pub fn name(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

crate::stored_enum!(Role, "role" { Viewer => "VIEWER", Operator => "OPERATOR", Admin => "ADMIN" });
