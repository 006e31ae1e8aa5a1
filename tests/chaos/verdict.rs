//! The verdict: every copy read straight from MongoDB and checked against
//! every attempt (lost, stale, duplicates, divergent, resurrected, ghosts),
//! and the table.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use crate::Counts;
use crate::helpers::{RegionSpec, TestApp};
use crate::writers::{Attempt, Op, Outcome};

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
    /// A record whose newest acknowledged operation is a delete, readable
    /// or stored live.
    pub resurrected: usize,
    /// A live copy outside the region of the record's newest version.
    pub ghosts: usize,
    /// Of `lost`: one copy of a record's region missing while the other
    /// holds it (an instance killed between a write's home and replica
    /// copies; the final repair heals it, by design).
    pub copies_missing: usize,
    half_applied_503: usize,
    /// Writes that lost to one answered less than [`SKEW_WINDOW`] before
    /// they were sent, through another instance (not a failure).
    reordered_in_window: usize,
    pub examples: Vec<String>,
    /// The whole story of the first records found wrong: every attempt
    /// and every copy (a failure far away must be readable from the output).
    pub stories: Vec<String>,
}

impl Verdict {
    /// Records no copy holds at their newest acknowledged version (`lost`
    /// but for a missing second copy).
    pub fn lost_records(&self) -> usize {
        self.lost - self.copies_missing
    }

    pub fn all_zero(&self) -> bool {
        self.all_count() == 0
    }

    fn all_count(&self) -> usize {
        self.lost + self.stale + self.duplicates + self.divergent + self.resurrected + self.ghosts
    }

    /// The run's last line.
    pub fn print_last_line(&self) {
        println!(
            "lost={} stale={} duplicates={} divergent={} resurrected={} ghosts={}",
            self.lost, self.stale, self.duplicates, self.divergent, self.resurrected, self.ghosts
        );
    }

    pub fn note(&mut self, what: String) {
        if self.examples.len() < 10 {
            self.examples.push(what);
        }
    }
}

/// One copy as stored: its version, city and whether it is a tombstone.
#[derive(Debug, Clone, PartialEq)]
pub struct Copy {
    pub version: i64,
    pub city: String,
    pub deleted: bool,
}
/// (region, role) -> id -> copy; role "home" or "replica".
type Copies = HashMap<(String, &'static str), HashMap<String, Copy>>;

/// Reads every copy straight from MongoDB and checks each record.
pub async fn check(app: &TestApp, attempts: &[Attempt]) -> Verdict {
    let copies = read_copies(app).await;
    let mut by_id: HashMap<&str, Vec<&Attempt>> = HashMap::new();
    for a in attempts {
        by_id.entry(a.id.as_str()).or_default().push(a);
    }
    let mut v = Verdict::default();
    check_unwritten(&copies, &by_id, &mut v);
    let first = attempts.iter().map(|a| a.sent).min();
    for (id, tries) in &by_id {
        v.records += 1;
        let wrong = v.all_count();
        check_order(id, tries, &mut v);
        let all: Vec<(&str, &str, &Copy)> = (copies.iter())
            .filter_map(|((region, role), docs)| Some((region.as_str(), *role, docs.get(*id)?)))
            .collect();
        check_record(id, tries, &app.regions, &all, &mut v);
        if v.all_count() > wrong
            && v.stories.len() < 3
            && let Some(first) = first
        {
            v.stories
                .push(crate::diagnose::story(id, tries, &app.regions, &all, first));
        }
    }
    v
}

/// Every home and replica collection of every region.
async fn read_copies(app: &TestApp) -> Copies {
    let mut copies = Copies::new();
    for region in &app.regions {
        let home = region.id.as_str();
        for (node, role, collection) in [
            (home, "home", "customers".to_owned()),
            (
                region.replica.as_str(),
                "replica",
                format!("replica_{home}"),
            ),
        ] {
            let docs = app.docs(node, &collection).await;
            let map = docs
                .iter()
                .map(|d| {
                    let id = d.get_str("_id").unwrap_or_default().to_owned();
                    let copy = Copy {
                        version: d.get_i64("version").unwrap_or(-1),
                        city: d.get_str("customer_city").unwrap_or_default().to_owned(),
                        deleted: d.get_bool("deleted") == Ok(true),
                    };
                    (id, copy)
                })
                .collect();
            copies.insert((home.to_owned(), role), map);
        }
    }
    copies
}

/// A stored record nobody wrote.
fn check_unwritten(copies: &Copies, by_id: &HashMap<&str, Vec<&Attempt>>, v: &mut Verdict) {
    for docs in copies.values() {
        for id in docs.keys().filter(|id| !by_id.contains_key(id.as_str())) {
            v.duplicates += 1;
            v.note(format!("{id}: stored but never written"));
        }
    }
}

/// One record's copies, everywhere, against its attempts. The record is its
/// newest stored version (any region, live or tombstone): it must be no
/// older than the newest acknowledged operation, and newer only through an
/// operation whose outcome was unknown; if live, both copies of its region
/// hold it and no other region holds a live copy; if a tombstone, no
/// region holds a live copy.
fn check_record(
    id: &str,
    tries: &[&Attempt],
    regions: &[RegionSpec],
    all: &[(&str, &str, &Copy)],
    v: &mut Verdict,
) {
    let newest_acked = tries
        .iter()
        .filter_map(|a| Some((a.acked()?, *a)))
        .max_by_key(|(v, _)| *v);
    let Some(&(_, _, top)) = all.iter().max_by_key(|(_, _, c)| (c.version, !c.deleted)) else {
        if let Some((version, a)) = newest_acked
            && a.op == Op::Write
        {
            v.lost += 1;
            v.note(format!("{id}: no copy anywhere (acked write {version})"));
        }
        return;
    };
    if let Some((version, a)) = newest_acked {
        if top.version < version {
            v.lost += 1;
            v.note(format!(
                "{id}: newest copy {} < acked {version}",
                top.version
            ));
        } else if top.version == version && a.op == Op::Write && (top.deleted || top.city != a.city)
        {
            v.stale += 1;
            v.note(format!(
                "{id}: at acked {version} holds {top:?}, not {}",
                a.city
            ));
        } else if top.version == version && a.op == Op::Delete && !top.deleted {
            v.resurrected += 1;
            v.note(format!("{id}: deleted at {version} but live"));
        } else if top.version > version && !unknown_made(tries, top) {
            v.divergent += 1;
            v.note(format!("{id}: newest copy {top:?} matches no write"));
        }
    }
    check_placement(id, tries, regions, all, top, v);
}

/// Whether an operation whose outcome is unknown could have made `copy`.
fn unknown_made(tries: &[&Attempt], copy: &Copy) -> bool {
    tries.iter().any(|a| {
        a.acked().is_none()
            && match a.op {
                Op::Write => !copy.deleted && a.city == copy.city,
                Op::Delete => copy.deleted,
            }
    })
}

/// Where the copies are, given the newest one `top`.
fn check_placement(
    id: &str,
    tries: &[&Attempt],
    regions: &[RegionSpec],
    all: &[(&str, &str, &Copy)],
    top: &Copy,
    v: &mut Verdict,
) {
    let region = if top.deleted {
        None
    } else {
        // The write that made it: its zip's region.
        tries
            .iter()
            .filter(|a| a.op == Op::Write && a.city == top.city)
            .find_map(|a| home_of(regions, a.zip))
            .map(|(home, _)| home)
    };
    for (r, role, copy) in all {
        let live = !copy.deleted;
        match region {
            None if live => {
                v.resurrected += 1;
                v.note(format!(
                    "{id}: deleted at {} but {r} {role} holds {copy:?}",
                    top.version
                ));
            }
            Some(home) if live && *r != home => {
                v.ghosts += 1;
                v.note(format!(
                    "{id}: lives in {home} but {r} {role} holds {copy:?}"
                ));
            }
            Some(home) if *r == home && *copy != top => {
                v.stale += 1;
                v.note(format!("{id}: {r} {role} holds {copy:?}, not {top:?}"));
            }
            _ => {}
        }
    }
    if let Some(home) = region {
        for role in ["home", "replica"] {
            if !all.iter().any(|(r, ro, _)| *r == home && *ro == role) {
                v.lost += 1;
                v.copies_missing += 1;
                v.note(format!("{id}: {home} {role} copy missing"));
            }
        }
    }
    check_503s(id, tries, all, v);
}

/// A 503 either left nothing, or (a timed-out direct write that landed
/// late) was completed by repair on both copies of its region.
fn check_503s(id: &str, tries: &[&Attempt], all: &[(&str, &str, &Copy)], v: &mut Verdict) {
    for a in tries
        .iter()
        .filter(|a| a.op == Op::Write && matches!(a.outcome, Outcome::Refused))
    {
        let holding: Vec<&str> = (all.iter())
            .filter(|(_, _, c)| !c.deleted && c.city == a.city)
            .map(|(_, role, _)| *role)
            .collect();
        if holding.len() == 1 {
            v.half_applied_503 += 1;
            v.divergent += 1;
            v.note(format!("{id}: 503 write {} half-applied", a.city));
        }
    }
}

/// The longest a write may still lose to one acknowledged before it was
/// sent, when the two went through instances whose clocks disagree
/// (docs/losing-nothing.md, "Clock skew"): one clock renewal (0.05 s), a
/// Redis round trip, and a loaded machine's scheduling delays.
pub const SKEW_WINDOW: Duration = Duration::from_millis(200);

/// A write sent after another's answer came must have the higher version
/// (versions follow acceptance, whichever instance took each): exactly for
/// a careful client's own writes (it sent its last receipt), and beyond
/// [`SKEW_WINDOW`] for any two; inside the window a reordering is only
/// counted (`reordered_in_window`).
fn check_order(id: &str, tries: &[&Attempt], v: &mut Verdict) {
    for earlier in tries.iter().filter(|a| a.acked().is_some()) {
        for later in tries.iter().filter(|a| a.sent > earlier.answered) {
            if let (Some(e), Some(l)) = (earlier.acked(), later.acked())
                && l <= e
            {
                let exact = later.careful.is_some() && later.careful == earlier.careful;
                if !exact && later.sent < earlier.answered + SKEW_WINDOW {
                    v.reordered_in_window += 1;
                    continue;
                }
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
    println!("{:<34} {:>8}", "  of which moves", counts.moves);
    println!("{:<34} {:>8}", "deletes (200/202 acked)", counts.deletes);
    println!(
        "{:<34} {:>8}",
        "  404 (nothing to delete)", counts.not_found
    );
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
    println!(
        "{:<34} {:>8}",
        "reordered within the skew window", verdict.reordered_in_window
    );
    match repaired {
        Ok(table) => println!("\nrepair:\n{table}"),
        Err(e) => println!("\nrepair FAILED:\n{e}"),
    }
    for e in &verdict.examples {
        println!("  ! {e}");
    }
    for s in &verdict.stories {
        println!("  !! {s}");
    }
}
