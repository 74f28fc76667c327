//! How many WebSockets each caller holds open.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use crate::ratelimit::Caller;

/// Open WebSockets per caller, so that no user (or node key, or address) holds more
/// than `MAILOPS_WEBSOCKETS_PER_CALLER`.
#[derive(Clone, Default)]
pub struct SocketCounts(Arc<Mutex<HashMap<Caller, u32>>>);

/// One open socket of a caller; dropping it frees the place.
pub struct SocketSlot {
    counts: SocketCounts,
    caller: Caller,
}

impl SocketCounts {
    /// Open WebSockets that have a session, of every caller.
    pub fn open(&self) -> usize {
        let counts = self.0.lock().unwrap_or_else(|e| e.into_inner());
        counts.values().map(|n| *n as usize).sum()
    }

    pub fn take(&self, caller: &Caller, limit: u32) -> Option<SocketSlot> {
        let mut counts = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let open = counts.entry(caller.clone()).or_default();
        if *open >= limit {
            return None;
        }
        *open += 1;
        Some(SocketSlot {
            counts: self.clone(),
            caller: caller.clone(),
        })
    }
}

impl Drop for SocketSlot {
    fn drop(&mut self) {
        let mut counts = self.counts.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(open) = counts.get_mut(&self.caller) {
            *open = open.saturating_sub(1);
            if *open == 0 {
                counts.remove(&self.caller);
            }
        }
    }
}
