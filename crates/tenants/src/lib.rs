//! Who may use visionlog, from one JSON file (`--tenants` / `VISIONLOG_TENANTS`), shared by the
//! gateway (tokens), the webhook sink (signing secrets) and the executor (QC sampling):
//!
//! ```json
//! {
//!   "tenants": [{ "id": "acme", "team": "shelves", "tokens": ["sha256:9f86d0..."],
//!                 "webhook_secrets": ["whsec-new", "whsec-old"], "qc_per_mille": 50,
//!                 "operator_subtasks": { "DETECTION_AND_RECOGNITION": ["detection"] } }],
//!   "operators": [{ "id": "anna", "teams": ["shelves"], "skills": ["annotation"],
//!                   "tokens": ["sha256:..."] }],
//!   "admins": [{ "id": "ops", "tokens": ["sha256:..."] }]
//! }
//! ```
//!
//! Tokens are kept as `sha256:<hex>` (a plain token is accepted too, for development); a
//! request's token is hashed and looked up, so no comparison time depends on how much of a
//! token matched. The first webhook secret signs; every secret is listed in the signature
//! header, so a receiver can rotate (see docs/operations.md).

use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use visionlog_domain::{Recipe, Subtask};

/// The environment variable naming the file.
pub const TENANTS_ENV: &str = "VISIONLOG_TENANTS";

/// Automatic results sampled for a quality check, per thousand, where a tenant says nothing.
pub const DEFAULT_QC_PER_MILLE: u32 = 100;

/// A customer of visionlog.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tenant {
    /// The customer id (the tenant of its tasks).
    pub id: String,
    /// The operator team that serves it.
    #[serde(default)]
    pub team: Option<String>,
    /// Its API tokens.
    #[serde(default)]
    pub tokens: Vec<String>,
    /// The secrets its webhooks are signed with, newest first.
    #[serde(default)]
    pub webhook_secrets: Vec<String>,
    /// Its automatic results sampled for quality checks, per thousand.
    #[serde(default)]
    pub qc_per_mille: Option<u32>,
    /// Per recipe, the subtasks its operators annotate (the others, accurate enough, are left
    /// to the models: seed 000); a recipe not named shows every subtask. A subtask whose model
    /// is missing shows anyway, and quality checks show them all.
    #[serde(default)]
    pub operator_subtasks: BTreeMap<Recipe, Vec<Subtask>>,
}

/// A human operator.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Operator {
    /// The operator id.
    pub id: String,
    /// The teams it belongs to (which customers' tasks it sees).
    #[serde(default)]
    pub teams: Vec<String>,
    /// What it may do: `annotation`, `quality_check`.
    #[serde(default)]
    pub skills: Vec<String>,
    /// Its API tokens.
    #[serde(default)]
    pub tokens: Vec<String>,
}

/// Someone who runs visionlog (every tenant's models and tasks).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Admin {
    /// The admin id.
    pub id: String,
    /// Its API tokens.
    #[serde(default)]
    pub tokens: Vec<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    tenants: Vec<Tenant>,
    #[serde(default)]
    operators: Vec<Operator>,
    #[serde(default)]
    admins: Vec<Admin>,
}

/// Who a request is from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    /// A customer: its own tasks and models.
    Tenant(String),
    /// An operator: the queue of its teams' customers.
    Operator(String),
    /// Ops: everything.
    Admin(String),
}

/// Why the file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TenantsError {
    /// It cannot be read.
    #[error("reading {path}: {error}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        error: std::io::Error,
    },
    /// It is not valid.
    #[error("{0}")]
    Invalid(String),
}

/// The loaded file.
#[derive(Clone, Debug, Default)]
pub struct Tenants {
    tenants: HashMap<String, Tenant>,
    operators: HashMap<String, Operator>,
    by_token: HashMap<[u8; 32], Principal>,
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// How a token is written in the file: `sha256:` and the hex of its SHA-256.
pub fn token_entry(token: &str) -> String {
    let d = digest(token);
    format!("sha256:{}", d.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

/// The shortest token the file takes (a plain one, or as the hash of one it cannot check).
pub const MIN_TOKEN_CHARS: usize = 8;

fn stored(entry: &str) -> Result<[u8; 32], TenantsError> {
    let Some(hex) = entry.strip_prefix("sha256:") else {
        // an empty token would let `Authorization: Bearer ` with nothing after it in
        if entry.trim().chars().count() < MIN_TOKEN_CHARS {
            return Err(TenantsError::Invalid(format!(
                "a token is empty or shorter than {MIN_TOKEN_CHARS} characters"
            )));
        }
        return Ok(digest(entry));
    };
    let bad = || TenantsError::Invalid(format!("token entry {entry:.15}... is not sha256:<64 hex digits>"));
    if hex.len() != 64 {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2).ok_or_else(bad)?, 16).map_err(|_| bad())?;
    }
    if out == digest("") {
        return Err(TenantsError::Invalid("a token entry is the hash of the empty token".into()));
    }
    Ok(out)
}

impl Tenants {
    /// Parses the file's JSON.
    pub fn parse(json: &str) -> Result<Self, TenantsError> {
        let file: File = serde_json::from_str(json).map_err(|e| TenantsError::Invalid(format!("tenants file: {e}")))?;
        let mut t = Tenants::default();
        let mut add = |entry: &str, who: Principal| -> Result<(), TenantsError> {
            if t.by_token.insert(stored(entry)?, who.clone()).is_some() {
                return Err(TenantsError::Invalid(format!("a token of {who:?} is given twice")));
            }
            Ok(())
        };
        for x in &file.tenants {
            x.tokens.iter().try_for_each(|k| add(k, Principal::Tenant(x.id.clone())))?;
        }
        for x in &file.operators {
            x.tokens.iter().try_for_each(|k| add(k, Principal::Operator(x.id.clone())))?;
        }
        for x in &file.admins {
            x.tokens.iter().try_for_each(|k| add(k, Principal::Admin(x.id.clone())))?;
        }
        for x in file.tenants {
            // a tenant's id names its Kafka topics (`tenant.<id>.commands`)
            let topic_safe = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
            if x.id.is_empty() || x.id.len() > 64 || !x.id.chars().all(topic_safe) {
                return Err(TenantsError::Invalid(format!(
                    "tenant id {:?} is not 1 to 64 characters of [A-Za-z0-9._-]",
                    x.id
                )));
            }
            if x.qc_per_mille.is_some_and(|q| q > 1000) {
                return Err(TenantsError::Invalid(format!("tenant {}: qc_per_mille is at most 1000", x.id)));
            }
            for (recipe, shown) in &x.operator_subtasks {
                if let Some(s) = shown.iter().find(|s| !recipe.subtasks().contains(s)) {
                    return Err(TenantsError::Invalid(format!(
                        "tenant {}: the recipe {recipe:?} has no subtask {}",
                        x.id,
                        s.name()
                    )));
                }
            }
            if t.tenants.insert(x.id.clone(), x).is_some() {
                return Err(TenantsError::Invalid("a tenant id is given twice".into()));
            }
        }
        for x in file.operators {
            t.operators.insert(x.id.clone(), x);
        }
        Ok(t)
    }

    /// Reads the file at `path`.
    pub fn load(path: &str) -> Result<Self, TenantsError> {
        let json = std::fs::read_to_string(path).map_err(|error| TenantsError::Read { path: path.into(), error })?;
        Self::parse(&json)
    }

    /// The file named by [`TENANTS_ENV`], or none (no tokens, defaults everywhere).
    pub fn from_env() -> Result<Self, TenantsError> {
        match std::env::var(TENANTS_ENV) {
            Ok(path) if !path.is_empty() => Self::load(&path),
            _ => Ok(Self::default()),
        }
    }

    /// Who holds `token`, if anyone.
    pub fn authenticate(&self, token: &str) -> Option<&Principal> {
        if token.trim().is_empty() {
            return None;
        }
        self.by_token.get(&digest(token))
    }

    /// The tenant `id`.
    pub fn tenant(&self, id: &str) -> Option<&Tenant> {
        self.tenants.get(id)
    }

    /// Every tenant id, sorted.
    pub fn tenant_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.tenants.keys().cloned().collect();
        ids.sort();
        ids
    }

    /// The operator `id`.
    pub fn operator(&self, id: &str) -> Option<&Operator> {
        self.operators.get(id)
    }

    /// The customers an operator's teams serve.
    pub fn customers_of(&self, operator: &Operator) -> Vec<String> {
        let mut out: Vec<String> = self
            .tenants
            .values()
            .filter(|t| t.team.as_ref().is_some_and(|team| operator.teams.contains(team)))
            .map(|t| t.id.clone())
            .collect();
        out.sort();
        out
    }

    /// The secrets `customer`'s webhooks are signed with, newest first (none: unsigned).
    pub fn webhook_secrets(&self, customer: &str) -> &[String] {
        self.tenants.get(customer).map_or(&[], |t| &t.webhook_secrets)
    }

    /// The subtasks `customer`'s operators annotate in tasks of `recipe`, where it names them
    /// (see [`visionlog_domain::subtasks::operator_subtasks`]).
    pub fn operator_subtasks(&self, customer: &str, recipe: Recipe) -> Option<&[Subtask]> {
        self.tenants.get(customer).and_then(|t| t.operator_subtasks.get(&recipe)).map(Vec::as_slice)
    }

    /// Whether any customer names the subtasks its operators annotate (where none does, every
    /// operator works on every subtask, and no task history need be read to know it).
    pub fn limits_operator_subtasks(&self) -> bool {
        self.tenants.values().any(|t| !t.operator_subtasks.is_empty())
    }

    /// `customer`'s quality-check sampling rate, per thousand.
    pub fn qc_per_mille(&self, customer: &str) -> u32 {
        self.tenants.get(customer).and_then(|t| t.qc_per_mille).unwrap_or(DEFAULT_QC_PER_MILLE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"{
        "tenants": [
            {"id": "acme", "team": "shelves", "tokens": ["acme-token"], "webhook_secrets": ["new", "old"], "qc_per_mille": 0},
            {"id": "beta", "team": "fridges", "tokens": ["TOKEN_B"]}
        ],
        "operators": [{"id": "anna", "teams": ["shelves"], "skills": ["annotation"], "tokens": ["anna-token"]}],
        "admins": [{"id": "ops", "tokens": ["ops-token"]}]
    }"#;

    #[test]
    fn tokens_name_principals_and_hashes_stand_for_tokens() {
        let file = FILE.replace("TOKEN_B", &token_entry("beta-token"));
        let t = Tenants::parse(&file).unwrap();
        assert_eq!(t.authenticate("acme-token"), Some(&Principal::Tenant("acme".into())));
        assert_eq!(t.authenticate("beta-token"), Some(&Principal::Tenant("beta".into())));
        assert_eq!(t.authenticate("anna-token"), Some(&Principal::Operator("anna".into())));
        assert_eq!(t.authenticate("ops-token"), Some(&Principal::Admin("ops".into())));
        assert_eq!(t.authenticate("acme-token "), None);
        assert_eq!(t.authenticate(""), None);
        assert_eq!(t.customers_of(t.operator("anna").unwrap()), ["acme"]);
        assert_eq!(t.webhook_secrets("acme"), ["new", "old"]);
        assert!(t.webhook_secrets("nobody").is_empty());
        assert_eq!((t.qc_per_mille("acme"), t.qc_per_mille("beta")), (0, DEFAULT_QC_PER_MILLE));
        assert_eq!(t.operator_subtasks("acme", Recipe::DetectionAndRecognition), None);
    }

    #[test]
    fn a_tenant_names_the_subtasks_its_operators_annotate_per_recipe() {
        let base = FILE.replace("TOKEN_B", &token_entry("beta-token"));
        let file = base.replace(
            r#""qc_per_mille": 0}"#,
            r#""qc_per_mille": 0, "operator_subtasks": {"DETECTION_AND_RECOGNITION": ["detection"]}}"#,
        );
        let t = Tenants::parse(&file).unwrap();
        assert_eq!(t.operator_subtasks("acme", Recipe::DetectionAndRecognition), Some(&[Subtask::Detection][..]));
        assert_eq!(t.operator_subtasks("acme", Recipe::Detection), None);
        assert_eq!(t.operator_subtasks("beta", Recipe::DetectionAndRecognition), None);
        let wrong = base.replace(
            r#""qc_per_mille": 0}"#,
            r#""qc_per_mille": 0, "operator_subtasks": {"DETECTION": ["recognition"]}}"#,
        );
        let err = Tenants::parse(&wrong).unwrap_err().to_string();
        assert!(err.contains("the recipe Detection has no subtask recognition"), "{err}");
        let unknown = base
            .replace(r#""qc_per_mille": 0}"#, r#""qc_per_mille": 0, "operator_subtasks": {"DETECTION": ["tags"]}}"#);
        let err = Tenants::parse(&unknown).unwrap_err().to_string();
        assert!(err.contains("unknown variant `tags`"), "{err}");
    }

    #[test]
    fn bad_files_are_refused() {
        assert!(Tenants::parse(r#"{"tenants": [{"id": "a", "tokenz": []}]}"#).is_err());
        assert!(
            Tenants::parse(
                r#"{"tenants": [{"id": "a", "tokens": ["xxxxxxxx"]}, {"id": "b", "tokens": ["xxxxxxxx"]}]}"#
            )
            .is_err()
        );
        assert!(Tenants::parse(r#"{"tenants": [{"id": "a", "tokens": ["sha256:abc"]}]}"#).is_err());
        assert!(Tenants::parse(r#"{"tenants": [{"id": "a", "qc_per_mille": 1001}]}"#).is_err());
        assert!(Tenants::parse(r#"{"tenants": [{"id": "a:b"}]}"#).unwrap_err().to_string().contains("[A-Za-z0-9._-]"));
        assert!(Tenants::parse(r#"{"tenants": [{"id": ""}]}"#).is_err());
        // an empty (or blank, or too short) token would authenticate `Bearer ` with nothing after it
        for token in ["", "   ", "short"] {
            let file = format!(r#"{{"operators": [{{"id": "o", "tokens": ["{token}"]}}]}}"#);
            let err = Tenants::parse(&file).unwrap_err().to_string();
            assert!(err.contains("empty or shorter"), "{err}");
        }
        let hashed_empty = format!(r#"{{"admins": [{{"id": "o", "tokens": ["{}"]}}]}}"#, token_entry(""));
        assert!(Tenants::parse(&hashed_empty).unwrap_err().to_string().contains("empty token"));
        // non-ASCII hex is an error, not a panic on a char boundary
        let odd = format!(r#"{{"admins": [{{"id": "o", "tokens": ["sha256:{}é"]}}]}}"#, "0".repeat(62));
        assert!(Tenants::parse(&odd).is_err());
    }
}
