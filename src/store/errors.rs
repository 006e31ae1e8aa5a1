//! What MongoDB's errors mean for a write: a race on `_id` to resolve, a
//! refusal no retry can fix, or a failure a retry may overcome.

use std::time::Duration;

use mongodb::bson::Document;

use crate::domain::NodeId;

/// MongoDB's duplicate-key error code.
const DUPLICATE_KEY: i32 = 11000;

/// Server error codes that no retry can fix: BadValue, FailedToParse,
/// TypeMismatch, PathNotViable, DollarPrefixedFieldName, EmptyFieldName,
/// DottedFieldName, ImmutableField, DocumentValidationFailure,
/// BSONObjectTooLarge, KeyTooLong. Every other code (an election's
/// NotWritablePrimary or InterruptedDueToReplStateChange, a shutdown, a
/// timeout, a write conflict, ...) may pass on a retry; a duplicate key is
/// told apart by its index.
const PERMANENT_CODES: [i32; 11] = [2, 9, 14, 28, 52, 56, 57, 66, 121, 10334, 17280];

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("node {node} did not answer within {timeout:?}")]
    Timeout { node: NodeId, timeout: Duration },
    #[error("node {node}: {source}")]
    Mongo {
        node: NodeId,
        #[source]
        source: mongodb::error::Error,
    },
    /// The server refused a copy for good (a unique index other than `_id`,
    /// a validator, ...): retrying the same copy cannot succeed.
    #[error("node {node} rejected the write: {message}")]
    Rejected { node: NodeId, message: String },
    /// The write may not be durable yet (write concern not satisfied), or
    /// concurrent writers kept winning the race: retryable.
    #[error("node {node}: {message}")]
    NotDurable { node: NodeId, message: String },
}

impl StoreError {
    /// The call outlived its bound: its outcome is unknown.
    pub fn is_timeout(&self) -> bool {
        matches!(self, StoreError::Timeout { .. })
    }

    /// A short reason for people, without the driver's details (host names,
    /// topology), which go to the log instead.
    pub fn short_reason(&self) -> String {
        match self {
            StoreError::Mongo { node, .. } => format!("node {node} could not be reached"),
            other => other.to_string(),
        }
    }

    /// The server may have applied the write although the call failed: it
    /// timed out, the connection broke after sending, or the write was not
    /// confirmed durable.
    pub fn may_have_applied(&self) -> bool {
        match self {
            StoreError::Timeout { .. } | StoreError::NotDurable { .. } => true,
            StoreError::Mongo { source, .. } => matches!(
                source.kind.as_ref(),
                mongodb::error::ErrorKind::Io(_) | mongodb::error::ErrorKind::Write(_)
            ),
            StoreError::Rejected { .. } => false,
        }
    }

    /// No retry of the same copies can succeed.
    pub fn is_permanent(&self) -> bool {
        matches!(self, StoreError::Rejected { .. })
    }
}

/// The server's code for a failed command, or for the one write of a
/// single-document write (`insert_one`, ...).
pub(super) fn command_code(e: &mongodb::error::Error) -> Option<i32> {
    use mongodb::error::{ErrorKind, WriteFailure};
    match e.kind.as_ref() {
        ErrorKind::Command(c) => Some(c.code),
        ErrorKind::Write(WriteFailure::WriteError(w)) => Some(w.code),
        _ => None,
    }
}

/// A command error that no retry can fix. (A duplicate key on `_id` is
/// tested first, as a conflict; one on another unique index is this.)
pub(super) fn is_permanent_failure(e: &mongodb::error::Error) -> bool {
    command_code(e).is_some_and(|c| c == DUPLICATE_KEY || PERMANENT_CODES.contains(&c))
}

/// What one per-document write error means.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum WriteErrorClass {
    /// A duplicate key on `_id`: another writer got there first.
    IdConflict,
    /// No retry can fix it.
    Permanent,
    /// May pass on a retry (an election, a shutdown, a timeout).
    Transient,
}

pub(super) fn classify_write_error(
    code: Option<i32>,
    message: &str,
    key_pattern: Option<&Document>,
) -> WriteErrorClass {
    match code {
        Some(DUPLICATE_KEY) if duplicate_on_id(message, key_pattern) => WriteErrorClass::IdConflict,
        Some(DUPLICATE_KEY) => WriteErrorClass::Permanent,
        Some(c) if PERMANENT_CODES.contains(&c) => WriteErrorClass::Permanent,
        // A write error without a code is malformed: never retried forever.
        None => WriteErrorClass::Permanent,
        Some(_) => WriteErrorClass::Transient,
    }
}

/// The server's own message for a command error, without the driver's
/// wrapping (labels, raw reply bytes).
pub(super) fn command_message(e: &mongodb::error::Error) -> String {
    match e.kind.as_ref() {
        mongodb::error::ErrorKind::Command(c) => c.message.clone(),
        _ => e.to_string(),
    }
}

/// A whole command (or a single-document write) failed on a duplicate key
/// of the `_id` index. (One on another unique index is a rejection: no
/// retry fixes it.)
pub(super) fn is_id_conflict(e: &mongodb::error::Error) -> bool {
    let text = e.to_string();
    (command_code(e) == Some(DUPLICATE_KEY) || text.contains("E11000"))
        && duplicate_on_id(&text, None)
}

/// Whether a duplicate-key error is about `_id`: from its `keyPattern`
/// where the server sends one, else from the index named in its message
/// (`... index: _id_ dup key: ...`).
pub(super) fn duplicate_on_id(message: &str, key_pattern: Option<&Document>) -> bool {
    match key_pattern {
        Some(pattern) => pattern.keys().eq(["_id"]),
        None => message.contains("index: _id_ ") || message.contains("index: _id_\""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mongodb::bson::doc;

    #[test]
    fn per_document_errors_are_classified_by_code() {
        use WriteErrorClass::*;
        let id = doc! {"_id": 1};
        let unique = doc! {"customer_unique_id": 1};
        // Elections and shutdowns pass on a retry.
        for code in [10107, 11602, 11600, 189, 91, 262, 112, 50] {
            assert_eq!(
                classify_write_error(Some(code), "x", None),
                Transient,
                "{code}"
            );
        }
        for code in [121, 2, 10334, 17280, 66] {
            assert_eq!(
                classify_write_error(Some(code), "x", None),
                Permanent,
                "{code}"
            );
        }
        assert_eq!(
            classify_write_error(Some(11000), "dup", Some(&id)),
            IdConflict
        );
        assert_eq!(
            classify_write_error(Some(11000), "dup", Some(&unique)),
            Permanent
        );
        assert_eq!(classify_write_error(None, "x", None), Permanent);
    }

    #[test]
    fn only_duplicates_on_id_are_conflicts() {
        let id = "E11000 duplicate key error collection: r.customers index: _id_ dup key: { _id: \"a\" }";
        let other = "E11000 duplicate key error collection: r.customers index: customer_unique_id_1 dup key: { customer_unique_id: \"u\" }";
        assert!(duplicate_on_id(id, None));
        assert!(!duplicate_on_id(other, None));
        assert!(duplicate_on_id(other, Some(&doc! {"_id": 1})));
        assert!(!duplicate_on_id(id, Some(&doc! {"customer_unique_id": 1})));
    }
}
