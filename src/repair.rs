//! Anti-entropy: make every region's home copy and replica copy agree.
//!
//! For each region, its home `customers` collection and its `replica_<region>`
//! collection are walked side by side in `_id` order, a page at a time (never
//! a whole collection in memory), comparing versions. Wherever they differ,
//! the newer copy is written over the older one (or the missing one) with
//! the same last-writer-wins apply as every other write, so a repair that
//! races live traffic, or runs twice, changes nothing wrong.
//!
//! This heals what hinted handoff cannot: a process that crashed between a
//! write's home copy and its replica, a replica answered `missing`, a
//! document deleted by hand, a node restarted empty.
//!
//! The service also repairs by itself ([`AutoRepair`]): whenever a node's
//! replay has drained its queue, the regions that node is home or replica
//! for are repaired, at most once per configured interval across every
//! instance (a lock in Redis whose expiry is the interval).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::domain::{
    CopyTarget, Customer, CustomerCopy, NodeId, Region, RegionMap, Version, now_millis,
};
use crate::nodes::NodeStatuses;
use crate::store::{NodeStore, StoreError, StoredCustomer, Stores};

/// Ids compared per page.
const PAGE: usize = 500;

/// What a repair found and did for one region.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct RegionRepair {
    pub region: String,
    /// Distinct ids seen in either copy.
    pub compared: u64,
    /// Ids whose copies differed (missing on one side, or other versions).
    pub differing: u64,
    /// Copies written to make them agree (0 in a dry run).
    pub fixed: u64,
    /// Copies that could not be rebuilt (a document written by another tool
    /// that is not a valid customer) or that the other node refused for
    /// good (e.g. a unique index another record holds).
    pub skipped: u64,
    /// Why the region could not be fully compared, if it could not.
    pub unreachable: Option<String>,
}

/// One side's view of an id: `None` when it lacks the id, `Some(None)` when
/// its document has no version.
type Seen = Option<Option<i64>>;

/// Which side of a region holds a copy.
#[derive(Clone, Copy)]
enum Side {
    Home,
    Replica,
}

/// Repairs every region (or only `only`). With `dry_run` nothing is
/// written; `fixed` stays 0.
pub async fn repair(
    regions: &RegionMap,
    stores: &Stores,
    only: Option<&NodeId>,
    dry_run: bool,
) -> Vec<RegionRepair> {
    let mut reports = Vec::new();
    for region in regions.regions() {
        if only.is_some_and(|o| o != &region.id) {
            continue;
        }
        let mut report = RegionRepair {
            region: region.id.to_string(),
            ..RegionRepair::default()
        };
        let (Some(home), Some(replica)) = (stores.get(&region.id), stores.get(&region.replica))
        else {
            report.unreachable = Some("no store configured".into());
            reports.push(report);
            continue;
        };
        if let Err(e) = repair_region(region, home, replica, dry_run, &mut report).await {
            tracing::warn!(region = %region.id, error = %e, "repair incomplete");
            report.unreachable = Some(e.short_reason());
        }
        tracing::info!(region = %region.id, compared = report.compared,
            differing = report.differing, fixed = report.fixed, dry_run, "repair done");
        reports.push(report);
    }
    reports
}

async fn repair_region(
    region: &Region,
    home: &NodeStore,
    replica: &NodeStore,
    dry_run: bool,
    report: &mut RegionRepair,
) -> Result<(), StoreError> {
    let home_coll = CustomerCopy::PRIMARY_COLLECTION.to_owned();
    let replica_coll = CustomerCopy::replica_collection(&region.id);
    let mut after: Option<String> = None;
    loop {
        let (h, r) = tokio::try_join!(
            home.versions_page(&home_coll, after.as_deref(), PAGE),
            replica.versions_page(&replica_coll, after.as_deref(), PAGE),
        )?;
        // Both pages are complete up to the smaller of their last ids (a
        // page that is not full runs to the end of its collection).
        let upper = [(&h, h.len() == PAGE), (&r, r.len() == PAGE)]
            .into_iter()
            .filter(|(page, full)| *full && !page.is_empty())
            .filter_map(|(page, _)| page.last().map(|(id, _)| id.clone()))
            .min();
        let within = |id: &String| upper.as_ref().is_none_or(|u| id <= u);
        let mut both: BTreeMap<String, (Seen, Seen)> = BTreeMap::new();
        for (id, v) in h.into_iter().filter(|(id, _)| within(id)) {
            both.entry(id).or_default().0 = Some(v);
        }
        for (id, v) in r.into_iter().filter(|(id, _)| within(id)) {
            both.entry(id).or_default().1 = Some(v);
        }
        report.compared += both.len() as u64;

        let mut to_replica = Vec::new();
        let mut to_home = Vec::new();
        for (id, (h, r)) in &both {
            match newer_side(*h, *r) {
                None => {}
                Some(Side::Home) => to_replica.push(id.as_str()),
                Some(Side::Replica) => to_home.push(id.as_str()),
            }
        }
        report.differing += (to_replica.len() + to_home.len()) as u64;
        if !dry_run {
            copy_over(
                region,
                home,
                &home_coll,
                replica,
                &to_replica,
                CopyTarget::Replica,
                report,
            )
            .await?;
            copy_over(
                region,
                replica,
                &replica_coll,
                home,
                &to_home,
                CopyTarget::Primary,
                report,
            )
            .await?;
        }
        match upper {
            Some(u) => after = Some(u),
            None => return Ok(()),
        }
    }
}

/// Which side holds the copy the other must take, if they differ. A side
/// is `None` when it lacks the id, `Some(None)` when its document has no
/// version (written by another tool: older than any versioned copy).
fn newer_side(home: Seen, replica: Seen) -> Option<Side> {
    match (home, replica) {
        (Some(h), Some(r)) if h == r => None,
        (Some(h), Some(r)) => Some(if h > r { Side::Home } else { Side::Replica }),
        (Some(_), None) => Some(Side::Home),
        (None, Some(_)) => Some(Side::Replica),
        (None, None) => None,
    }
}

/// Reads `ids` from `from` and applies them to `to` as `target` copies.
async fn copy_over(
    region: &Region,
    from: &NodeStore,
    from_collection: &str,
    to: &NodeStore,
    ids: &[&str],
    target: CopyTarget,
    report: &mut RegionRepair,
) -> Result<(), StoreError> {
    if ids.is_empty() {
        return Ok(());
    }
    let records = from.find_ids(from_collection, ids).await?;
    let mut copies = Vec::new();
    for record in &records {
        match rebuild(region, record, target) {
            Some(copy) => copies.push(copy),
            None => {
                tracing::warn!(region = %region.id, customer_id = %record.customer_id,
                    "cannot repair a document that is not a valid customer");
                report.skipped += 1;
            }
        }
    }
    match to.apply(&copies).await {
        Ok(()) => report.fixed += copies.len() as u64,
        // Refused for good (e.g. a unique index another record holds): one
        // by one, so the others are fixed and the refused ones are counted.
        Err(e) if e.is_permanent() => {
            for copy in &copies {
                match to.apply(std::slice::from_ref(copy)).await {
                    Ok(()) => report.fixed += 1,
                    Err(e) if e.is_permanent() => {
                        tracing::warn!(region = %region.id, node = %to.node(),
                            customer_id = %copy.customer.customer_id, error = %e,
                            "repair copy refused; skipped");
                        report.skipped += 1;
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        Err(e) => return Err(e),
    }
    Ok(())
}

/// The copy a stored record stands for, as a hint would carry it.
fn rebuild(region: &Region, record: &StoredCustomer, target: CopyTarget) -> Option<CustomerCopy> {
    let body: Map<String, Value> = match json!({
        "customer_id": record.customer_id,
        "customer_unique_id": record.customer_unique_id,
        "customer_zip_code_prefix": record.customer_zip_code_prefix,
        "customer_city": record.customer_city,
        "customer_state": record.customer_state,
    }) {
        Value::Object(map) => map,
        _ => return None,
    };
    let customer = Customer::parse(&body).ok()?;
    Some(CustomerCopy {
        target,
        region: region.id.clone(),
        version: Version::new(record.version.unwrap_or(0)),
        customer,
    })
}

/// What started a repair.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RepairTrigger {
    /// A node's queue drained.
    Auto,
    /// `POST /admin/repair`.
    Api,
    /// A node came back without its data (see `recovery`).
    #[serde(rename = "data_loss")]
    DataLoss,
}

impl RepairTrigger {
    pub fn as_str(self) -> &'static str {
        match self {
            RepairTrigger::Auto => "auto",
            RepairTrigger::Api => "api",
            RepairTrigger::DataLoss => "data_loss",
        }
    }
}

/// A finished repair (not a dry run), kept in Redis for the home page.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RepairRecord {
    /// When it finished (Unix ms).
    pub at_ms: i64,
    pub trigger: RepairTrigger,
    /// For `auto`: the nodes whose drained queues started it; for
    /// `data_loss`: the node that lost its data.
    pub after: Vec<String>,
    pub regions: Vec<RegionRepair>,
}

impl RepairRecord {
    pub fn new(
        trigger: RepairTrigger,
        after: Vec<String>,
        regions: Vec<RegionRepair>,
    ) -> RepairRecord {
        RepairRecord {
            at_ms: now_millis(),
            trigger,
            after,
            regions,
        }
    }

    pub fn complete(&self) -> bool {
        self.regions.iter().all(|r| r.unreachable.is_none())
    }

    /// Saves it as the last repair; a failure only costs the home page's
    /// line, so it is logged, not returned.
    pub async fn save(&self, statuses: &NodeStatuses) {
        crate::metrics::repair(self.trigger.as_str(), self.complete());
        let raw = serde_json::to_string(self).unwrap_or_default();
        if let Err(e) = statuses.save_last_repair(&raw).await {
            tracing::warn!(error = %e, "cannot save the repair report");
        }
    }

    /// The last repair saved by any instance, if any.
    pub async fn last(statuses: &NodeStatuses) -> Option<RepairRecord> {
        match statuses.last_repair().await {
            Ok(raw) => serde_json::from_str(&raw?).ok(),
            Err(e) => {
                tracing::debug!(error = %e, "cannot read the last repair");
                None
            }
        }
    }
}

/// Where replays say that a node's queue drained.
#[derive(Clone)]
pub struct DrainedQueues(mpsc::UnboundedSender<NodeId>);

impl DrainedQueues {
    pub fn node_drained(&self, node: &NodeId) {
        // Closed only at shutdown, when no repair should start anyway.
        let _ = self.0.send(node.clone());
    }
}

/// Runs a repair after queues drain, throttled across every instance.
pub struct AutoRepair {
    pub regions: RegionMap,
    pub stores: Arc<Stores>,
    pub statuses: Arc<NodeStatuses>,
    /// This instance's name in the lock.
    pub instance: String,
    /// Shortest time between two automatic repairs.
    pub every: Duration,
    drained: mpsc::UnboundedReceiver<NodeId>,
}

impl AutoRepair {
    pub fn new(
        regions: RegionMap,
        stores: Arc<Stores>,
        statuses: Arc<NodeStatuses>,
        instance: String,
        every: Duration,
    ) -> (AutoRepair, DrainedQueues) {
        let (tx, rx) = mpsc::unbounded_channel();
        let auto = AutoRepair {
            regions,
            stores,
            statuses,
            instance,
            every,
            drained: rx,
        };
        (auto, DrainedQueues(tx))
    }

    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut after: BTreeSet<NodeId> = BTreeSet::new();
        loop {
            let Some(Some(node)) = shutdown.run_until_cancelled(self.drained.recv()).await else {
                return;
            };
            after.insert(node);
            // Wait for our turn: at most one automatic repair per interval,
            // across instances. Drains meanwhile join this repair.
            loop {
                match self
                    .statuses
                    .claim_auto_repair(&self.instance, self.every)
                    .await
                {
                    Ok(None) => break,
                    Ok(Some(wait)) => {
                        if shutdown
                            .run_until_cancelled(tokio::time::sleep(wait))
                            .await
                            .is_none()
                        {
                            return;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot take the repair lock; retrying");
                        if shutdown
                            .run_until_cancelled(tokio::time::sleep(Duration::from_secs(1)))
                            .await
                            .is_none()
                        {
                            return;
                        }
                    }
                }
            }
            while let Ok(node) = self.drained.try_recv() {
                after.insert(node);
            }
            let after: Vec<NodeId> = std::mem::take(&mut after).into_iter().collect();
            let mut reports = Vec::new();
            for region in self.repairable(&after) {
                reports.extend(repair(&self.regions, &self.stores, Some(&region), false).await);
            }
            if reports.is_empty() {
                continue;
            }
            tracing::info!(after = ?after, regions = reports.len(), "automatic repair done");
            let after = after.iter().map(ToString::to_string).collect();
            RepairRecord::new(RepairTrigger::Auto, after, reports)
                .save(&self.statuses)
                .await;
        }
    }

    /// The regions `nodes` are home or replica for, whose two nodes are
    /// both available now: a node an operator switched off is not written
    /// behind their back (its repair waits for the next drain, or the API).
    fn repairable(&self, nodes: &[NodeId]) -> Vec<NodeId> {
        self.regions
            .regions()
            .iter()
            .filter(|r| nodes.contains(&r.id) || nodes.contains(&r.replica))
            .filter(|r| {
                self.statuses.status(&r.id).is_available()
                    && self.statuses.status(&r.replica).is_available()
            })
            .map(|r| r.id.clone())
            .collect()
    }
}

/// `regiondb repair`: connects to every node's MongoDB (nothing else),
/// repairs, prints one line per region; exit code 1 if a region could not
/// be fully compared, 2 for a bad `--region`.
pub async fn run_command(
    config: &crate::config::Config,
    region: Option<&str>,
    dry_run: bool,
) -> std::process::ExitCode {
    let only = match region {
        None => None,
        Some(r) => match config.regions.get(r) {
            Some(region) => Some(region.id.clone()),
            None => {
                eprintln!(
                    "regiondb repair: --region: unknown region {r:?} (known: {})",
                    config
                        .regions
                        .nodes()
                        .map(NodeId::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                return std::process::ExitCode::from(2);
            }
        },
    };
    let stores =
        match Stores::connect(&config.regions, &config.mongo.uris, config.mongo.timeout).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("regiondb repair: {e}");
                return std::process::ExitCode::from(1);
            }
        };
    let reports = repair(&config.regions, &stores, only.as_ref(), dry_run).await;
    println!("{}", render_table(&reports, dry_run));
    if reports.iter().any(|r| r.unreachable.is_some()) {
        std::process::ExitCode::from(1)
    } else {
        std::process::ExitCode::SUCCESS
    }
}

/// The report as a plain-text table, one region a line.
pub fn render_table(reports: &[RegionRepair], dry_run: bool) -> String {
    let mut out = format!(
        "{:<12} {:>9} {:>9} {:>9} {:>8}  {}\n",
        "region", "compared", "differing", "fixed", "skipped", "unreachable"
    );
    for r in reports {
        out.push_str(&format!(
            "{:<12} {:>9} {:>9} {:>9} {:>8}  {}\n",
            r.region,
            r.compared,
            r.differing,
            r.fixed,
            r.skipped,
            r.unreachable.as_deref().unwrap_or("-")
        ));
    }
    if dry_run {
        out.push_str("(dry run: nothing was written)\n");
    }
    out.trim_end().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newer_or_only_copy_wins() {
        assert!(newer_side(Some(Some(5)), Some(Some(5))).is_none());
        assert!(matches!(
            newer_side(Some(Some(6)), Some(Some(5))),
            Some(Side::Home)
        ));
        assert!(matches!(
            newer_side(Some(Some(5)), Some(Some(6))),
            Some(Side::Replica)
        ));
        assert!(matches!(
            newer_side(Some(None), Some(Some(1))),
            Some(Side::Replica)
        ));
        assert!(matches!(newer_side(Some(Some(1)), None), Some(Side::Home)));
        assert!(matches!(newer_side(None, Some(None)), Some(Side::Replica)));
    }
}
