//! Settings of the Kafka backend: what a `kafka://` URL and the environment say, and the one
//! place every client (producer, admin, readers, group members) takes its configuration from.
//!
//! Each option comes from the URL's query, else from `VISIONLOG_KAFKA_<OPTION>` (upper case);
//! the user name and password from the URL's `user:password@`, else `VISIONLOG_KAFKA_USERNAME`
//! and `VISIONLOG_KAFKA_PASSWORD` (the environment keeps a password out of argv and shell history).

use crate::LogError;
use rdkafka::config::ClientConfig;
use std::time::Duration;

/// Settings of the Kafka backend
/// (`kafka://user@host:9093?security_protocol=sasl_ssl&ssl_ca_location=/etc/kafka/ca.pem&replication=3`).
#[derive(Clone, Debug)]
pub struct KafkaOptions {
    /// Replication factor of the topics it creates.
    pub replication: u32,
    /// `min.insync.replicas` of the topics it creates: with the producer's `acks=all`, an append
    /// is acknowledged only once this many replicas have it. Default: one less than the
    /// replication factor (at least 1), so one broker may be down while appends go on.
    pub min_insync_replicas: Option<u32>,
    /// A group member silent for this long is dropped and its partitions move. Kafka accepts
    /// 6 s to 30 min by default; tansu takes half of it for every join.
    pub session_timeout: Duration,
    /// `max.message.bytes` of the topics it creates; unset, the broker's `message.max.bytes`.
    pub max_message_bytes: Option<u64>,
    /// TLS and SASL.
    pub security: KafkaSecurity,
}

impl Default for KafkaOptions {
    fn default() -> Self {
        Self {
            replication: 1,
            min_insync_replicas: None,
            session_timeout: Duration::from_secs(6),
            max_message_bytes: None,
            security: KafkaSecurity::default(),
        }
    }
}

/// librdkafka's `security.protocol`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SecurityProtocol {
    /// Neither TLS nor authentication (loopback, development).
    #[default]
    Plaintext,
    /// TLS; the client authenticates by certificate if it has one.
    Ssl,
    /// SASL without TLS: the password crosses the network in clear with PLAIN.
    SaslPlaintext,
    /// SASL over TLS: what production uses.
    SaslSsl,
}

impl SecurityProtocol {
    fn parse(value: &str) -> Option<Self> {
        Some(match value.to_ascii_lowercase().as_str() {
            "plaintext" => Self::Plaintext,
            "ssl" => Self::Ssl,
            "sasl_plaintext" => Self::SaslPlaintext,
            "sasl_ssl" => Self::SaslSsl,
            _ => return None,
        })
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Plaintext => "plaintext",
            Self::Ssl => "ssl",
            Self::SaslPlaintext => "sasl_plaintext",
            Self::SaslSsl => "sasl_ssl",
        }
    }

    fn sasl(self) -> bool {
        matches!(self, Self::SaslPlaintext | Self::SaslSsl)
    }
}

/// TLS and SASL settings. The password never shows in `Debug`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct KafkaSecurity {
    /// How clients connect.
    pub protocol: SecurityProtocol,
    /// `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512` (the default with SASL).
    pub sasl_mechanism: Option<String>,
    /// SASL user name.
    pub username: Option<String>,
    /// SASL password.
    pub password: Option<String>,
    /// PEM file of the certificate authorities that sign the brokers' certificates (else the
    /// system's).
    pub ssl_ca_location: Option<String>,
    /// PEM file of this client's certificate (mutual TLS).
    pub ssl_certificate_location: Option<String>,
    /// PEM file of this client's private key (mutual TLS).
    pub ssl_key_location: Option<String>,
}

impl std::fmt::Debug for KafkaSecurity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSecurity")
            .field("protocol", &self.protocol)
            .field("sasl_mechanism", &self.sasl_mechanism)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("ssl_ca_location", &self.ssl_ca_location)
            .field("ssl_certificate_location", &self.ssl_certificate_location)
            .field("ssl_key_location", &self.ssl_key_location)
            .finish()
    }
}

/// The SASL mechanisms librdkafka runs here (GSSAPI and OAUTHBEARER are not built in).
const MECHANISMS: [&str; 3] = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"];

/// The options a URL query (or the environment) may set.
const OPTIONS: [&str; 9] = [
    "replication",
    "min_insync_replicas",
    "session_timeout_ms",
    "max_message_bytes",
    "security_protocol",
    "sasl_mechanism",
    "ssl_ca_location",
    "ssl_certificate_location",
    "ssl_key_location",
];

impl KafkaOptions {
    /// Reads the options from a URL's user info and query, and `env` for what they do not say.
    pub fn from_url(
        userinfo: Option<(String, Option<String>)>,
        pairs: impl Iterator<Item = (String, String)>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, LogError> {
        let mut given: Vec<(String, String)> = Vec::new();
        for (key, value) in pairs {
            if !OPTIONS.contains(&key.as_str()) {
                return Err(LogError::Config(format!("unknown kafka option {key:?} (known: {})", OPTIONS.join(", "))));
            }
            given.push((key, value));
        }
        let value = |key: &str| {
            given.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.clone()).or_else(|| {
                env(&format!("VISIONLOG_KAFKA_{}", key.to_ascii_uppercase())).filter(|v| !v.trim().is_empty())
            })
        };
        let number = |key: &str| -> Result<Option<u64>, LogError> {
            value(key)
                .map(|v| v.trim().parse::<u64>().map_err(|_| LogError::Config(format!("kafka option {key}={v:?}"))))
                .transpose()
        };
        let mut options = Self::default();
        if let Some(n) = number("replication")? {
            options.replication = n.clamp(1, 32) as u32;
        }
        options.min_insync_replicas = number("min_insync_replicas")?.map(|n| n.clamp(1, 32) as u32);
        if let Some(ms) = number("session_timeout_ms")? {
            options.session_timeout = Duration::from_millis(ms);
        }
        options.max_message_bytes = number("max_message_bytes")?;
        if let Some(n) = options.min_insync_replicas
            && n > options.replication
        {
            return Err(LogError::Config(format!(
                "min_insync_replicas={n} exceeds replication={}: no append could be acknowledged",
                options.replication
            )));
        }
        let (username, password) = match userinfo {
            Some((user, password)) => (Some(user), password.or_else(|| env("VISIONLOG_KAFKA_PASSWORD"))),
            None => (env("VISIONLOG_KAFKA_USERNAME"), env("VISIONLOG_KAFKA_PASSWORD")),
        };
        options.security = KafkaSecurity::new(
            value("security_protocol"),
            value("sasl_mechanism"),
            username.filter(|u| !u.is_empty()),
            password.filter(|p| !p.is_empty()),
        )?;
        options.security.ssl_ca_location = value("ssl_ca_location");
        options.security.ssl_certificate_location = value("ssl_certificate_location");
        options.security.ssl_key_location = value("ssl_key_location");
        let tls = matches!(options.security.protocol, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl);
        let files = [&options.security.ssl_ca_location, &options.security.ssl_certificate_location];
        if !tls && let Some(path) = files.into_iter().flatten().next() {
            return Err(LogError::Config(format!(
                "kafka TLS file {path:?} given, but security_protocol={} does not use TLS (ssl or sasl_ssl)",
                options.security.protocol.as_str()
            )));
        }
        Ok(options)
    }

    /// The `min.insync.replicas` topics are created with.
    pub fn min_insync(&self) -> u32 {
        self.min_insync_replicas.unwrap_or(self.replication.saturating_sub(1).max(1))
    }
}

impl KafkaSecurity {
    /// Checks that the settings make sense together: credentials mean SASL (over TLS unless the
    /// protocol says otherwise), SASL needs both, and the mechanism is one librdkafka runs here.
    fn new(
        protocol: Option<String>,
        mechanism: Option<String>,
        username: Option<String>,
        password: Option<String>,
    ) -> Result<Self, LogError> {
        let protocol = match protocol {
            Some(p) => SecurityProtocol::parse(p.trim()).ok_or_else(|| {
                LogError::Config(format!("kafka security_protocol={p:?} (plaintext, ssl, sasl_plaintext or sasl_ssl)"))
            })?,
            // a user name says SASL; over the network that means TLS too
            None if username.is_some() || mechanism.is_some() => SecurityProtocol::SaslSsl,
            None => SecurityProtocol::Plaintext,
        };
        if !protocol.sasl() {
            if username.is_some() || mechanism.is_some() {
                return Err(LogError::Config(format!(
                    "kafka credentials or sasl_mechanism given, but security_protocol={} does not use SASL",
                    protocol.as_str()
                )));
            }
            return Ok(Self { protocol, ..Self::default() });
        }
        let mechanism = mechanism.map_or("SCRAM-SHA-512".to_owned(), |m| m.trim().to_ascii_uppercase());
        if !MECHANISMS.contains(&mechanism.as_str()) {
            return Err(LogError::Config(format!(
                "kafka sasl_mechanism={mechanism:?} (one of {})",
                MECHANISMS.join(", ")
            )));
        }
        let (Some(username), Some(password)) = (username, password) else {
            return Err(LogError::Config(format!(
                "kafka {} needs a user name and a password: kafka://USER@host:port with \
                 VISIONLOG_KAFKA_PASSWORD (or VISIONLOG_KAFKA_USERNAME too)",
                protocol.as_str()
            )));
        };
        if protocol == SecurityProtocol::SaslPlaintext && mechanism == "PLAIN" {
            tracing::warn!("kafka SASL PLAIN without TLS: the password crosses the network in clear");
        }
        Ok(Self {
            protocol,
            sasl_mechanism: Some(mechanism),
            username: Some(username),
            password: Some(password),
            ..Self::default()
        })
    }

    /// Writes these settings into a client's configuration.
    fn apply(&self, config: &mut ClientConfig) {
        config.set("security.protocol", self.protocol.as_str());
        if let (Some(mechanism), Some(user), Some(password)) = (&self.sasl_mechanism, &self.username, &self.password) {
            config.set("sasl.mechanism", mechanism).set("sasl.username", user).set("sasl.password", password);
        }
        for (key, value) in [
            ("ssl.ca.location", &self.ssl_ca_location),
            ("ssl.certificate.location", &self.ssl_certificate_location),
            ("ssl.key.location", &self.ssl_key_location),
        ] {
            if let Some(v) = value {
                config.set(key, v);
            }
        }
    }
}

/// The configuration every client of the backend starts from: the brokers, no topic created by
/// a lookup (topics are created with their partition counts), TLS and SASL.
pub(super) fn client_config(bootstrap: &str, options: &KafkaOptions) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", bootstrap).set("allow.auto.create.topics", "false");
    options.security.apply(&mut config);
    config
}

#[cfg(test)]
mod tests {
    use super::{KafkaOptions, SecurityProtocol};
    use std::collections::HashMap;

    fn options(
        userinfo: Option<(&str, Option<&str>)>,
        query: &[(&str, &str)],
        env: &[(&str, &str)],
    ) -> Result<KafkaOptions, crate::LogError> {
        let env: HashMap<String, String> = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        KafkaOptions::from_url(
            userinfo.map(|(u, p)| (u.to_owned(), p.map(str::to_owned))),
            query.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
            |name| env.get(name).cloned(),
        )
    }

    #[test]
    fn min_insync_replicas_defaults_to_one_less_than_the_replicas() {
        assert_eq!(options(None, &[], &[]).unwrap().min_insync(), 1);
        assert_eq!(options(None, &[("replication", "3")], &[]).unwrap().min_insync(), 2);
        let both = [("replication", "3"), ("min_insync_replicas", "3")];
        assert_eq!(options(None, &both, &[]).unwrap().min_insync(), 3);
        assert!(options(None, &[("replication", "2"), ("min_insync_replicas", "3")], &[]).is_err());
    }

    #[test]
    fn credentials_mean_sasl_over_tls_and_the_url_wins_over_the_environment() {
        let o = options(Some(("alice", Some("s3cret"))), &[], &[]).unwrap().security;
        assert_eq!(o.protocol, SecurityProtocol::SaslSsl);
        assert_eq!(o.sasl_mechanism.as_deref(), Some("SCRAM-SHA-512"));
        assert!(!format!("{o:?}").contains("s3cret"), "the password never shows: {o:?}");
        // the password from the environment, the rest from the URL
        let env = [("VISIONLOG_KAFKA_PASSWORD", "from-env"), ("VISIONLOG_KAFKA_SASL_MECHANISM", "scram-sha-256")];
        let o = options(Some(("alice", None)), &[("sasl_mechanism", "PLAIN")], &env).unwrap().security;
        assert_eq!((o.password.as_deref(), o.sasl_mechanism.as_deref()), (Some("from-env"), Some("PLAIN")));
        let o = options(None, &[], &[("VISIONLOG_KAFKA_USERNAME", "bob"), ("VISIONLOG_KAFKA_PASSWORD", "pw")])
            .unwrap()
            .security;
        assert_eq!((o.protocol, o.username.as_deref()), (SecurityProtocol::SaslSsl, Some("bob")));
        assert_eq!(options(None, &[], &[]).unwrap().security.protocol, SecurityProtocol::Plaintext);
    }

    #[test]
    fn settings_that_cannot_work_together_are_refused() {
        let refused = |userinfo, query: &[(&str, &str)]| options(userinfo, query, &[]).unwrap_err().to_string();
        assert!(refused(Some(("alice", None)), &[]).contains("needs a user name and a password"));
        assert!(refused(None, &[("security_protocol", "sasl_ssl")]).contains("needs a user name"));
        assert!(refused(Some(("a", Some("p"))), &[("security_protocol", "ssl")]).contains("does not use SASL"));
        assert!(refused(Some(("a", Some("p"))), &[("sasl_mechanism", "GSSAPI")]).contains("sasl_mechanism"));
        assert!(refused(None, &[("security_protocol", "tls")]).contains("security_protocol"));
        assert!(refused(None, &[("ssl_ca_location", "/ca.pem")]).contains("does not use TLS"));
        assert!(refused(None, &[("password", "x")]).contains("unknown kafka option"));
    }
}
