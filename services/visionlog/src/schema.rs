//! `visionlog schema ...`: the Avro schemas as the registry knows them, for integrators who
//! write and read the topics with their own clients.

use crate::runtime::Backends;
use anyhow::Context;
use serde_json::json;
use visionlog_codec::{Catalog, Codec};
use visionlog_journal::Topics;

#[derive(clap::Subcommand, Debug)]
pub(crate) enum SchemaCmd {
    /// Every schema version with its registry id and subject (the schema text with --json).
    List {
        /// One JSON array on one line: id, subject, name, version, current, schema.
        #[arg(long)]
        json: bool,
    },
}

pub(crate) fn run(b: &Backends, cmd: &SchemaCmd) -> anyhow::Result<()> {
    let SchemaCmd::List { json } = cmd;
    std::fs::create_dir_all(&b.data_dir).with_context(|| format!("creating {}", b.data_dir.display()))?;
    let data = b.data_dir.canonicalize()?;
    // on Kafka the registry is a topic; the embedded log (locked by a running process) is not opened
    let on_kafka = b.on_kafka() && b.schema_registry.as_deref().is_none_or(|r| r == "topic");
    let (log, _broker) = match on_kafka {
        true => {
            let (log, _, broker) = crate::runtime::open_log(b.log.as_deref(), &data, b.fsync)?;
            (Some(log), broker)
        }
        false => (None, None),
    };
    let topics = Topics::new(&b.topic_prefix, 1);
    let registry = crate::runtime::open_registry(b, &data, log.as_ref().map(|l| (l, &topics)))?;
    // registering is idempotent: a registry that has them all answers with their ids
    let codec = Codec::new(registry.clone())?;
    let mut rows = Vec::new();
    for v in Catalog::compiled()?.all() {
        let id = registry.register(&v.subject(), &v.text)?;
        let current = codec.schema_id(&v.full_name) == Some(id);
        rows.push(json!({
            "id": id, "subject": v.subject(), "name": v.full_name, "version": v.version,
            "current": current, "schema": v.text,
        }));
    }
    if *json {
        crate::output::line(serde_json::to_string(&rows)?);
    } else {
        for r in &rows {
            let mark = if r["current"] == true { "" } else { "  (older version, still read)" };
            crate::output::line(format!("{:>4}  {}{mark}", r["id"], r["subject"].as_str().unwrap_or_default()));
        }
    }
    Ok(())
}
