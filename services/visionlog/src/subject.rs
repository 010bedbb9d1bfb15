//! `visionlog subject ...`: GDPR erasure of a data subject by crypto-shredding.

use crate::runtime::{Backends, Runtime};
use serde_json::json;
use visionlog_log::Record;
use visionlog_privacy::KeyStore;

#[derive(clap::Subcommand, Debug)]
pub(crate) enum SubjectCmd {
    /// Destroys every key of a data subject: their personal data becomes unreadable in the hot
    /// log, the cold segments, the views and the exports at once; the history replays as before.
    /// The fact is recorded in the key store and on the `privacy` topic.
    Shred {
        /// The subject id (as sealed in the tasks' personal data).
        subject: String,
        /// Why (recorded).
        #[arg(long)]
        reason: String,
        /// Who asks (recorded).
        #[arg(long, default_value = "service:privacy")]
        actor: String,
    },
    /// Whether a subject was shredded, and when.
    Show {
        /// The subject id.
        subject: String,
    },
}

pub(crate) fn run(backends: &Backends, cmd: &SubjectCmd) -> anyhow::Result<()> {
    let rt = Runtime::open(backends)?;
    let keys = KeyStore::new(rt.store.clone());
    match cmd {
        SubjectCmd::Shred { subject, reason, actor } => {
            actor.parse::<visionlog_domain::Actor>().map_err(|e| anyhow::anyhow!("--actor: {e}"))?;
            let record = keys.shred(subject, actor, reason, visionlog_journal::now_ms())?;
            rt.store.sync()?;
            let topic = &rt.topics.privacy;
            let value = serde_json::to_vec(&json!({ "type": "SubjectShredded", "record": record }))?;
            let headers = vec![("vl.type".into(), b"SubjectShredded".to_vec())];
            rt.log.append(topic, 0, &[Record { key: Some(subject.as_bytes().to_vec()), headers, value }])?;
            rt.log.flush()?;
            crate::output::line(serde_json::to_string(&record)?);
        }
        SubjectCmd::Show { subject } => {
            let out = match keys.shredded(subject)? {
                Some(r) => json!({ "subject": subject, "shredded": r }),
                None => json!({ "subject": subject, "shredded": null }),
            };
            crate::output::line(out.to_string());
        }
    }
    Ok(())
}
