//! Re-applying a node's dead letters once their cause is fixed (`regiondb
//! dead-letters replay`): through the same last-writer-wins apply as the
//! replay, so a letter older than what the node holds changes nothing.
//!
//! It never brings a deleted record back. A delete leaves a tombstone that
//! outranks every older copy, but a purge removes tombstones older than
//! `PURGE_GRACE_MS` once no *queue* holds a hint for them, and dead letters
//! are in no queue. So a letter whose version is older than the purge
//! horizon (now minus the grace, plus a minute's margin for the clocks of
//! the hosts that purge) is never applied: its delete may be gone, and
//! nothing would be left to compare it against. Such a letter, and one that
//! cannot even be read, can never be applied, so it is marked dealt with
//! (it stays in the topic, readable with Kafka's own tools, until its
//! retention ends). A letter MongoDB refuses again, or from the future,
//! stays listed.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::domain::{CustomerCopy, NodeId, now_micros};
use crate::hints::{HintError, HintLog, ParkedHint};
use crate::store::NodeStore;

/// Margin for the clock of the host that purged running ahead of this one.
const CLOCK_MARGIN_MICROS: i64 = 60_000_000;

/// What became of one dead letter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Applied (last-writer-wins: a newer copy on the node stays).
    Applied,
    /// Can never be applied (too old to be safe, or unreadable): marked
    /// dealt with, not applied.
    Dropped(String),
    /// Not applied now; stays listed.
    Refused(String),
    /// Not asked for (`--id`); stays listed.
    Skipped,
}

impl Verdict {
    /// Whether the letter leaves the list.
    fn dealt_with(&self) -> bool {
        matches!(self, Verdict::Applied | Verdict::Dropped(_))
    }
}

/// One dead letter and its verdict.
#[derive(Debug)]
pub struct Redelivered {
    pub hint: ParkedHint,
    pub verdict: Verdict,
}

/// Re-applies `node`'s outstanding dead letters (or only those of the
/// customer `only`, up to `max`) to `store`, and marks those dealt with.
pub async fn redeliver(
    log: &HintLog,
    store: &NodeStore,
    node: &NodeId,
    only: Option<&str>,
    purge_grace: Duration,
    max: usize,
) -> Result<Vec<Redelivered>, HintError> {
    let letters = log.outstanding_dead_letters(node, max).await?;
    let grace = i64::try_from(purge_grace.as_micros()).unwrap_or(i64::MAX);
    let now = now_micros();
    let horizon = now
        .saturating_sub(grace)
        .saturating_add(CLOCK_MARGIN_MICROS);
    let mut done = Vec::with_capacity(letters.len());
    for hint in letters {
        let wanted = only.is_none_or(|id| hint.key.as_deref() == Some(id.as_bytes()));
        let verdict = match (wanted, judge(&hint, now, horizon)) {
            (false, _) => Verdict::Skipped,
            (true, Err(verdict)) => verdict,
            (true, Ok(copy)) => apply_one(store, copy).await,
        };
        tracing::info!(%node, partition = hint.partition, offset = hint.offset, ?verdict,
            "dead letter");
        done.push(Redelivered { hint, verdict });
    }
    let next = dealt_with_up_to(&done);
    if !next.is_empty() {
        log.dead_letters_dealt_with(node, &next).await?;
    }
    Ok(done)
}

/// The copy to apply, or why not.
fn judge(hint: &ParkedHint, now: i64, horizon: i64) -> Result<&CustomerCopy, Verdict> {
    let copy = match &hint.copy {
        Err(why) => return Err(Verdict::Dropped(format!("unreadable: {why}"))),
        Ok(copy) => copy,
    };
    if copy.version.get() < horizon {
        return Err(Verdict::Dropped(
            "older than the purge horizon (PURGE_GRACE_MS): a delete of this record may \
             already be purged, so applying it could bring the record back"
                .into(),
        ));
    }
    if copy.version.is_from_the_future(now) {
        return Err(Verdict::Refused(
            "its version is more than a minute ahead of this host's clock".into(),
        ));
    }
    Ok(copy)
}

async fn apply_one(store: &NodeStore, copy: &CustomerCopy) -> Verdict {
    match store.apply(std::slice::from_ref(copy)).await {
        Ok(()) => Verdict::Applied,
        Err(e) if e.is_permanent() => Verdict::Refused(format!("refused by MongoDB again: {e}")),
        Err(e) => Verdict::Refused(format!("not applied: {e}")),
    }
}

/// Per partition, the offset after the letters dealt with in a row from
/// the first: a letter left listed stops its partition there.
fn dealt_with_up_to(done: &[Redelivered]) -> BTreeMap<i32, i64> {
    let mut next = BTreeMap::new();
    let mut stopped = std::collections::BTreeSet::new();
    for d in done {
        let p = d.hint.partition;
        if stopped.contains(&p) {
            continue;
        }
        if d.verdict.dealt_with() {
            next.insert(p, d.hint.offset + 1);
        } else {
            stopped.insert(p);
        }
    }
    next
}

#[cfg(test)]
mod tests {
    use super::*;

    fn letter(partition: i32, offset: i64, verdict: Verdict) -> Redelivered {
        Redelivered {
            hint: ParkedHint {
                partition,
                offset,
                epoch: 0,
                copy: Err("test".into()),
                key: None,
                payload: None,
                dead_lettered: false,
                at_ms: None,
                reason: None,
            },
            verdict,
        }
    }

    #[test]
    fn a_letter_left_listed_stops_its_partition_only() {
        let done = [
            letter(0, 4, Verdict::Applied),
            letter(0, 5, Verdict::Skipped),
            letter(0, 6, Verdict::Applied),
            letter(1, 0, Verdict::Dropped("old".into())),
            letter(1, 1, Verdict::Applied),
            letter(2, 9, Verdict::Refused("no".into())),
        ];
        let next = dealt_with_up_to(&done);
        assert_eq!(next, BTreeMap::from([(0, 5), (1, 2)]));
    }
}
