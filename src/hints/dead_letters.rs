//! A node's dead letters: hints set aside because they could not be
//! applied, each with its reason. Those an operator has dealt with (see
//! `replay::dead_letters`) are marked by the offsets committed for the
//! node's dead-letter group, `regiondb-dead-letters-<node>`, so the topic
//! itself keeps every letter for inspection until its retention ends.

use std::collections::BTreeMap;

use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use super::offsets::read_uncommitted;
use super::{HintError, HintLog, ParkedHint, base_config, dead_letter_group_name, of_node};
use crate::domain::NodeId;

impl HintLog {
    /// How many of `node`'s dead letters no operator has dealt with yet.
    pub async fn dead_letters(&self, node: &NodeId) -> Result<u64, HintError> {
        let consumer = of_node(&self.dead_offsets, node)?;
        self.past_commits(consumer, self.dead_letter_topic(node), "dead_letters")
            .await
    }

    /// Up to `max` of `node`'s dead letters not dealt with yet, in topic
    /// order per partition, each with its reason and time.
    pub async fn outstanding_dead_letters(
        &self,
        node: &NodeId,
        max: usize,
    ) -> Result<Vec<ParkedHint>, HintError> {
        let topic = self.dead_letter_topic(node);
        let group = dead_letter_group_name(&self.config, node);
        let config = base_config(&self.config);
        let timeout = self.config.timeout;
        self.blocking(move || {
            read_uncommitted(config, &group, &topic, &BTreeMap::new(), max, timeout)
        })
        .await
    }

    /// Marks `node`'s dead letters before `next` (partition -> the first
    /// offset not dealt with) as dealt with.
    pub async fn dead_letters_dealt_with(
        &self,
        node: &NodeId,
        next: &BTreeMap<i32, i64>,
    ) -> Result<(), HintError> {
        let consumer = of_node(&self.dead_offsets, node)?;
        let mut list = TopicPartitionList::new();
        let topic = self.dead_letter_topic(node);
        for (p, offset) in next {
            list.add_partition_offset(&topic, *p, Offset::Offset(*offset))?;
        }
        self.blocking(move || Ok(consumer.commit(&list, CommitMode::Sync)?))
            .await
    }
}
