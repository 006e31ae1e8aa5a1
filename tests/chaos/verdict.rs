//! The verdict: every copy read straight from MongoDB and checked against
//! every attempt (lost, stale, duplicates, divergent), and the table.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use crate::Counts;
use crate::helpers::{RegionSpec, TestApp};
use crate::writers::{Attempt, Outcome};

/// Runs `regiondb repair` with the app's settings; its table, or why not.
pub fn run_repair(app: &TestApp) -> Result<String, String> {
    let out = app.run_command(&["repair"]);
    let table = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        Ok(table)
    } else {
        Err(format!("{table}{}", String::from_utf8_lossy(&out.stderr)))
    }
}

#[derive(Default)]
pub struct Verdict {
    pub records: usize,
    pub lost: usize,
    pub stale: usize,
    pub duplicates: usize,
    pub divergent: usize,
    half_applied_503: usize,
    pub examples: Vec<String>,
}

impl Verdict {
    pub fn all_zero(&self) -> bool {
        self.lost + self.stale + self.duplicates + self.divergent == 0
    }

    pub fn note(&mut self, what: String) {
        if self.examples.len() < 10 {
            self.examples.push(what);
        }
    }
}

/// One copy as stored: its version and city.
type Copy = (i64, String);
/// (node, collection) -> id -> copy.
type Copies = HashMap<(String, String), HashMap<String, Copy>>;

/// Reads every copy straight from MongoDB and checks each record.
pub async fn check(app: &TestApp, attempts: &[Attempt]) -> Verdict {
    let copies = read_copies(app).await;
    let mut by_id: HashMap<&str, Vec<&Attempt>> = HashMap::new();
    for a in attempts {
        by_id.entry(a.id.as_str()).or_default().push(a);
    }
    let mut v = Verdict::default();
    check_duplicates(&copies, &by_id, &mut v);
    for (id, tries) in &by_id {
        v.records += 1;
        let Some((home, replica)) = home_of(&app.regions, tries[0].zip) else {
            v.note(format!("{id}: zip {} routes nowhere", tries[0].zip));
            continue;
        };
        let home_copy = copies[&(home.to_owned(), "customers".to_owned())].get(*id);
        let replica_copy = copies[&(replica.to_owned(), format!("replica_{home}"))].get(*id);
        check_order(id, tries, &mut v);
        check_record(id, tries, (home_copy, replica_copy), &mut v);
    }
    v
}

/// Every home and replica collection of every region.
pub async fn read_copies(app: &TestApp) -> Copies {
    let mut copies = Copies::new();
    for region in &app.regions {
        let home = region.id.as_str();
        for (node, collection) in [
            (home, "customers".to_owned()),
            (region.replica.as_str(), format!("replica_{home}")),
        ] {
            let docs = app.docs(node, &collection).await;
            let map = docs
                .iter()
                .map(|d| {
                    let id = d.get_str("_id").unwrap_or_default().to_owned();
                    let city = d.get_str("customer_city").unwrap_or_default().to_owned();
                    (id, (d.get_i64("version").unwrap_or(-1), city))
                })
                .collect();
            copies.insert((node.to_owned(), collection), map);
        }
    }
    copies
}

/// A record in two regions' home collections, or one nobody wrote.
pub fn check_duplicates(copies: &Copies, by_id: &HashMap<&str, Vec<&Attempt>>, v: &mut Verdict) {
    let mut seen_anywhere: HashMap<String, usize> = HashMap::new();
    for (_, docs) in copies.iter().filter(|((_, c), _)| c == "customers") {
        for id in docs.keys() {
            *seen_anywhere.entry(id.clone()).or_default() += 1;
        }
    }
    for (id, n) in &seen_anywhere {
        if *n > 1 || !by_id.contains_key(id.as_str()) {
            v.duplicates += 1;
            v.note(format!("{id}: stored {n} times or never written"));
        }
    }
}

/// One record's two copies against its attempts: each at the newest
/// acknowledged version, the two agreeing, and no 503 half-applied.
pub fn check_record(
    id: &str,
    tries: &[&Attempt],
    (home_copy, replica_copy): (Option<&Copy>, Option<&Copy>),
    v: &mut Verdict,
) {
    let newest_acked = tries
        .iter()
        .filter_map(|a| Some((a.acked()?, a.city.as_str())))
        .max();
    if let Some(acked) = newest_acked {
        for (which, copy) in [("home", home_copy), ("replica", replica_copy)] {
            check_copy(id, tries, which, copy, acked, v);
        }
    }
    match (home_copy, replica_copy) {
        (Some(h), Some(r)) if h != r => {
            v.divergent += 1;
            v.note(format!("{id}: home {h:?} != replica {r:?}"));
        }
        (Some(_), None) | (None, Some(_)) if newest_acked.is_none() => {
            v.divergent += 1;
            v.note(format!("{id}: only one copy of an unacknowledged write"));
        }
        _ => {}
    }
    // A 503 either left nothing, or (a timed-out direct write that
    // landed late) was completed by repair on both copies.
    for a in tries
        .iter()
        .filter(|a| matches!(a.outcome, Outcome::Refused))
    {
        let on_home = home_copy.is_some_and(|(_, c)| *c == a.city);
        let on_replica = replica_copy.is_some_and(|(_, c)| *c == a.city);
        if on_home != on_replica {
            v.half_applied_503 += 1;
            v.divergent += 1;
            v.note(format!("{id}: 503 write {} half-applied", a.city));
        }
    }
}

/// One copy against the newest acknowledged `(version, city)`.
pub fn check_copy(
    id: &str,
    tries: &[&Attempt],
    which: &str,
    copy: Option<&Copy>,
    (version, city): (i64, &str),
    v: &mut Verdict,
) {
    match copy {
        None => {
            v.lost += 1;
            v.note(format!("{id}: {which} copy missing (acked {version})"));
        }
        Some((stored, _)) if *stored < version => {
            v.stale += 1;
            v.note(format!("{id}: {which} at {stored} < acked {version}"));
        }
        Some((stored, c)) if *stored == version && c != city => {
            v.stale += 1;
            v.note(format!("{id}: {which} at {stored} holds {c}, not {city}"));
        }
        // Newer than every acknowledged write: must be one whose
        // outcome was unknown (no answer, or a timed-out 503).
        Some((stored, c)) if *stored > version => {
            let unknown = tries.iter().any(|a| a.acked().is_none() && &a.city == c);
            if !unknown {
                v.divergent += 1;
                v.note(format!("{id}: {which} at {stored} ({c}) matches no write"));
            }
        }
        Some(_) => {}
    }
}

/// A write sent after another's answer came must have the higher version
/// (versions follow acceptance, whichever instance took each).
pub fn check_order(id: &str, tries: &[&Attempt], v: &mut Verdict) {
    for earlier in tries.iter().filter(|a| a.acked().is_some()) {
        for later in tries.iter().filter(|a| a.sent > earlier.answered) {
            if let (Some(e), Some(l)) = (earlier.acked(), later.acked())
                && l <= e
            {
                v.stale += 1;
                v.note(format!(
                    "{id}: {} (v{l}) lost to the earlier {} (v{e})",
                    later.city, earlier.city
                ));
            }
        }
    }
}

/// A zip's home and replica nodes.
pub fn home_of(regions: &[RegionSpec], zip: u32) -> Option<(&str, &str)> {
    regions
        .iter()
        .find(|r| (r.min..=r.max).contains(&zip))
        .map(|r| (r.id.as_str(), r.replica.as_str()))
}

pub fn print_table(
    counts: &Counts,
    faults: &BTreeMap<&'static str, usize>,
    (write_phase, replay): (Duration, Duration),
    repaired: &Result<String, String>,
    verdict: &Verdict,
) {
    println!("\n{:<34} {:>8}", "writes", counts.writes);
    println!("{:<34} {:>8}", "  201 stored", counts.created);
    println!("{:<34} {:>8}", "  202 queued", counts.accepted);
    println!("{:<34} {:>8}", "  503 refused", counts.refused);
    println!("{:<34} {:>8}", "  no answer (app down)", counts.no_answer);
    println!("{:<34} {:>8}", "records checked", verdict.records);
    for (kind, n) in faults {
        println!("{:<34} {:>8}", format!("fault: {kind}"), n);
    }
    println!("{:<34} {:>7.1}s", "write phase", write_phase.as_secs_f64());
    println!(
        "{:<34} {:>7.1}s",
        "replay (heal to drained)",
        replay.as_secs_f64()
    );
    println!(
        "{:<34} {:>8}",
        "503s half-applied", verdict.half_applied_503
    );
    match repaired {
        Ok(table) => println!("\nrepair:\n{table}"),
        Err(e) => println!("\nrepair FAILED:\n{e}"),
    }
    for e in &verdict.examples {
        println!("  ! {e}");
    }
}
