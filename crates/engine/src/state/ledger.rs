//! The ledger: an append-only record of every resource lifeboat has written or
//! found declared and present after an apply, and whether it was protected. It
//! decides what lifeboat may delete: a resource is lifeboat's to delete only if
//! the ledger has it (a `lifeboat-managed` tag alone never makes it so), and a
//! resource once recorded as protected stays protected even if its tag is
//! removed or its manifest deleted. Unlike the journal it is never compacted.
//!
//! One JSON line per resource (`{"id","protected","at"}`); a later line for the
//! same id can only add protection, never take it away. Both backends store the
//! same lines (`.lifeboat/state/ledger.jsonl`, or the `ledger.jsonl` append blob).

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use lifeboat_core::id::ResourceId;

/// One recorded resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEntry {
    pub id: ResourceId,
    #[serde(default)]
    pub protected: bool,
    pub at: String,
}

/// What the ledger says, as sets of lower-cased ids.
pub use lifeboat_core::observed::Ledger;

/// Read the ledger's lines; a torn last line (a crash mid-write) is skipped.
pub fn parse(text: &str) -> Ledger {
    let mut ledger = Ledger::default();
    for e in text
        .lines()
        .filter_map(|l| serde_json::from_str::<LedgerEntry>(l).ok())
    {
        let key = e.id.key().to_string();
        if e.protected {
            ledger.protected.insert(key.clone());
        }
        ledger.recorded.insert(key);
    }
    ledger
}

/// The lines for `entries` that add something to `ledger` (a new resource, or
/// protection it did not have).
pub fn new_lines(ledger: &Ledger, entries: &[(ResourceId, bool)]) -> String {
    let at = jiff::Timestamp::now().to_string();
    let mut seen = HashSet::new();
    let mut out = String::new();
    for (id, protected) in entries {
        let key = id.key();
        let known = ledger.recorded.contains(key) && (!protected || ledger.protected.contains(key));
        if known || !seen.insert(key.to_string()) {
            continue;
        }
        let line = LedgerEntry {
            id: id.clone(),
            protected: *protected,
            at: at.clone(),
        };
        out.push_str(&serde_json::to_string(&line).expect("ledger entry serializes"));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protection_is_only_ever_added_and_torn_lines_skipped() {
        let id =
            |n: &str| ResourceId::parse(&format!("/subscriptions/s/resourceGroups/{n}")).unwrap();
        let empty = Ledger::default();
        let lines = new_lines(
            &empty,
            &[(id("a"), true), (id("b"), false), (id("a"), true)],
        );
        assert_eq!(lines.lines().count(), 2);
        let l = parse(&format!("{lines}{{\"id\":\"/subscriptions/s/resou"));
        assert!(l.recorded.contains("/subscriptions/s/resourcegroups/a"));
        assert!(l.protected.contains("/subscriptions/s/resourcegroups/a"));
        assert!(!l.protected.contains("/subscriptions/s/resourcegroups/b"));
        // Recording b as unprotected again adds nothing; as protected it does.
        assert_eq!(new_lines(&l, &[(id("b"), false)]), "");
        let more = new_lines(&l, &[(id("b"), true), (id("a"), false)]);
        assert_eq!(more.lines().count(), 1);
        let l2 = parse(&format!("{lines}{more}"));
        assert!(l2.protected.contains("/subscriptions/s/resourcegroups/b"));
    }
}
