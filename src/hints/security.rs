//! Reaching a secured cluster: the client properties (TLS, SASL,
//! `KAFKA_PROPERTY_*`) that every client is built with, their errors told
//! under the variable that set them, and the start-up check that a TLS or
//! SASL setting the brokers refuse stops the start at once (one line naming
//! the setting) instead of every write timing out later.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;

use super::{HintError, HintLog, base_config};
use crate::config::KafkaConfig;

/// Sets every security and passed-through property on `c`.
pub(super) fn apply(config: &KafkaConfig, c: &mut ClientConfig) {
    for p in &config.security.properties {
        c.set(&p.name, p.value.expose());
    }
}

/// A client that could not be built, told under the variable that set the
/// property librdkafka refused (an unknown `KAFKA_PROPERTY_*`, a CA file
/// that is not a certificate, ...).
pub(super) fn setting_error(config: &KafkaConfig, e: KafkaError) -> HintError {
    let security = &config.security;
    let named = match &e {
        KafkaError::ClientConfig(_, desc, key, _) => security
            .variable_of(key)
            .map(|v| (v.to_owned(), desc.clone())),
        KafkaError::ClientCreation(message) => (security.properties.iter())
            .find(|p| message.contains(&p.name))
            .map(|p| (p.variable.clone(), message.clone())),
        _ => None,
    };
    match named {
        Some((variable, reason)) => HintError::Setting { variable, reason },
        None => HintError::Kafka(e),
    }
}

/// Records the TLS and authentication failures librdkafka logs while
/// connecting, and its hint that the protocol is wrong (a plaintext client
/// at a TLS listener).
#[derive(Default)]
struct Recorder {
    refused: Mutex<Option<(RDKafkaErrorCode, String)>>,
}

impl ProducerContext for Recorder {
    type DeliveryOpaque = ();

    fn delivery(&self, _: &rdkafka::message::DeliveryResult<'_>, _: ()) {}
}

impl Recorder {
    fn record(&self, code: RDKafkaErrorCode, reason: &str) {
        if let Ok(mut refused) = self.refused.lock() {
            refused.get_or_insert((code, reason.to_owned()));
        }
    }
}

impl ClientContext for Recorder {
    /// librdkafka logs each failed connection (with a facility of `FAIL`);
    /// the log lines reach this context when the client is polled.
    fn log(&self, _: RDKafkaLogLevel, facility: &str, message: &str) {
        if facility != "FAIL" {
            return;
        }
        if message.contains("SASL") || message.contains("Authentication failed") {
            self.record(RDKafkaErrorCode::Authentication, message);
        } else if message.contains("SSL") || message.contains("security.protocol") {
            self.record(RDKafkaErrorCode::SSL, message);
        }
    }

    /// The same failures also come as error events, with less text than
    /// the log lines; the service's own clients log them already.
    fn error(&self, _: KafkaError, _: &str) {}
}

impl HintLog {
    /// Asks the brokers for their metadata once: a certificate or
    /// credentials they refuse, or a protocol they do not speak, is an
    /// error naming the setting. Brokers that are merely unreachable are
    /// not (writes bypass Kafka while every node is up), only logged.
    pub async fn check_security(&self) -> Result<(), HintError> {
        let config = self.config.clone();
        let wait = self.config.timeout;
        self.blocking(move || probe(&config, wait)).await
    }
}

/// Asks for metadata in short tries until it answers, a refusal is
/// recorded (polling the client hands its log lines to the [`Recorder`]),
/// or `wait` passes.
fn probe(config: &KafkaConfig, wait: Duration) -> Result<(), HintError> {
    let client: BaseProducer<Recorder> = base_config(config)
        .create_with_context(Recorder::default())
        .map_err(|e| setting_error(config, e))?;
    let deadline = Instant::now() + wait;
    loop {
        let answered = client.client().fetch_metadata(None, TRY);
        if answered.is_ok() {
            return Ok(());
        }
        client.poll(Duration::ZERO);
        let refused = client.context().refused.lock().ok().and_then(|r| r.clone());
        if let Some((code, reason)) = refused {
            return Err(refusal(config, code, &reason));
        }
        if Instant::now() >= deadline {
            if let Err(e) = answered {
                tracing::warn!(error = %e, "kafka not reachable at start; writes go on while every node is up");
            }
            return Ok(());
        }
    }
}

/// One metadata request of the start-up check.
const TRY: Duration = Duration::from_millis(250);

/// Which setting a refusal is about: the CA for an unverified certificate,
/// the credentials for a failed authentication, the protocol otherwise.
fn refusal(config: &KafkaConfig, code: RDKafkaErrorCode, reason: &str) -> HintError {
    let ca = config.security.variable_of("ssl.ca.location").is_some();
    let variable = match code {
        RDKafkaErrorCode::Authentication if reason.contains("mechanism") => "KAFKA_SASL_MECHANISM",
        RDKafkaErrorCode::Authentication => "KAFKA_SASL_USERNAME/KAFKA_SASL_PASSWORD",
        _ if reason.contains("certificate verify failed") && ca => "KAFKA_SSL_CA_FILE",
        _ if reason.contains("certificate verify failed") => {
            "KAFKA_SSL_CA_FILE (unset: the system's CA roots were used)"
        }
        _ => "KAFKA_SECURITY_PROTOCOL",
    };
    HintError::Setting {
        variable: variable.to_owned(),
        reason: format!("the brokers refused the connection: {}", one_line(reason)),
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use rdkafka::producer::BaseProducer;

    use super::*;
    use crate::config::Config;

    fn kafka(pairs: &[(&str, &str)]) -> KafkaConfig {
        let vars: HashMap<String, String> = (pairs.iter())
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::from_vars(&vars).expect("config").kafka
    }

    #[test]
    fn sasl_plain_over_tls_and_passed_properties_reach_librdkafka() {
        let config = kafka(&[
            ("KAFKA_SECURITY_PROTOCOL", "sasl_ssl"),
            ("KAFKA_SASL_MECHANISM", "plain"),
            ("KAFKA_SASL_USERNAME", "key"),
            ("KAFKA_SASL_PASSWORD", "secret"),
            ("KAFKA_PROPERTY_SOCKET_KEEPALIVE_ENABLE", "true"),
        ]);
        let c = base_config(&config);
        assert_eq!(c.get("security.protocol"), Some("sasl_ssl"));
        assert_eq!(c.get("sasl.mechanism"), Some("PLAIN"));
        assert_eq!(c.get("sasl.username"), Some("key"));
        assert_eq!(c.get("sasl.password"), Some("secret"));
        assert_eq!(c.get("socket.keepalive.enable"), Some("true"));
        // librdkafka itself takes them (it checks names and values when a
        // client is built; nothing connects yet).
        assert!(c.create::<BaseProducer>().is_ok());
        assert!(!format!("{config:?}").contains("secret"));
    }

    #[test]
    fn each_instance_has_a_client_id_of_its_own() {
        let nodes = [crate::domain::NodeId::parse("region_1").expect("node")];
        let log = HintLog::new(&kafka(&[]), &nodes, "regiondb-123-0000abcd").expect("clients");
        let c = base_config(&log.config);
        assert_eq!(c.get("client.id"), Some("regiondb-123-0000abcd"));
    }

    #[test]
    fn a_property_librdkafka_refuses_is_told_under_its_variable() {
        let config = kafka(&[("KAFKA_PROPERTY_NO_SUCH_THING", "1")]);
        let refused = base_config(&config).create::<BaseProducer>().err();
        let error = setting_error(&config, refused.expect("refused"));
        let text = error.to_string();
        assert!(text.starts_with("KAFKA_PROPERTY_NO_SUCH_THING: "), "{text}");
        let config = kafka(&[("KAFKA_PROPERTY_SOCKET_KEEPALIVE_ENABLE", "perhaps")]);
        let refused = base_config(&config).create::<BaseProducer>().err();
        let text = setting_error(&config, refused.expect("refused")).to_string();
        assert!(
            text.starts_with("KAFKA_PROPERTY_SOCKET_KEEPALIVE_ENABLE: "),
            "{text}"
        );
    }
}
