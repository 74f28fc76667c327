//! The two subprotocols a socket may speak, and the close codes of graphql-transport-ws.

/// The close codes of graphql-transport-ws, used for both subprotocols.
pub mod close {
    pub const BAD_MESSAGE: u16 = 4400;
    pub const UNAUTHORIZED: u16 = 4401;
    pub const FORBIDDEN: u16 = 4403;
    pub const INIT_TIMEOUT: u16 = 4408;
    pub const DUPLICATE_ID: u16 = 4409;
    pub const TOO_MANY_INITS: u16 = 4429;
    pub const INTERNAL: u16 = 4500;
    /// The peer stopped answering pings.
    pub const GOING_AWAY: u16 = 1001;
    pub const NORMAL: u16 = 1000;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// `graphql-transport-ws`.
    TransportWs,
    /// `graphql-ws`, the legacy subscriptions-transport-ws protocol.
    LegacyWs,
}

impl Protocol {
    pub const NAMES: [&'static str; 2] = ["graphql-transport-ws", "graphql-ws"];

    /// The protocol of a `Sec-WebSocket-Protocol` header; graphql-transport-ws when the
    /// client names none it knows.
    pub fn negotiate(header: Option<&str>) -> Protocol {
        let offered = header.unwrap_or_default();
        let names = offered.split(',').map(str::trim);
        for name in names {
            if name.eq_ignore_ascii_case("graphql-transport-ws") {
                return Protocol::TransportWs;
            }
            if name.eq_ignore_ascii_case("graphql-ws") {
                return Protocol::LegacyWs;
            }
        }
        Protocol::TransportWs
    }

    pub(super) fn data_type(self) -> &'static str {
        match self {
            Protocol::TransportWs => "next",
            Protocol::LegacyWs => "data",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_subprotocol_is_the_first_one_offered_that_is_known() {
        assert_eq!(Protocol::negotiate(Some("graphql-ws")), Protocol::LegacyWs);
        assert_eq!(
            Protocol::negotiate(Some("foo, graphql-transport-ws, graphql-ws")),
            Protocol::TransportWs
        );
        assert_eq!(Protocol::negotiate(None), Protocol::TransportWs);
    }
}
