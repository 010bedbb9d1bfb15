//! The Scylla read store: the same table model in CQL tables (`schemas/cql/`), written with
//! lightweight transactions conditional on the row's version.
//!
//! Tested against Apache Cassandra 5.0 (`scripts/engines.sh`), which speaks the same CQL protocol
//! with the same lightweight-transaction semantics; ScyllaDB itself does not install on the
//! machines this is developed on. Where they differ (tablets), both are handled.

use crate::{Put, PutOutcome, ReadStore, Row, StoreError, check_table_name};
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::response::query_result::QueryResult;
use scylla::statement::prepared::PreparedStatement;
use scylla::statement::{Consistency, SerialConsistency};
use scylla::value::{CqlValue, Row as CqlRow};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const KEYSPACE_CQL: &str = include_str!("../../../schemas/cql/keyspace.cql");
const TABLE_CQL: &str = include_str!("../../../schemas/cql/table.cql");
const COLUMNS: &str = "partition, clustering, version, value";

/// The prepared statements of one table.
struct Statements {
    insert: PreparedStatement,
    update: PreparedStatement,
    get: PreparedStatement,
    erase: PreparedStatement,
    partition_first: PreparedStatement,
    partition_after: PreparedStatement,
    table_first: PreparedStatement,
    table_next: PreparedStatement,
}

/// Options read from a `scylla://` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
struct ScyllaUrl {
    hosts: Vec<String>,
    keyspace: String,
    user: Option<(String, String)>,
    consistency: Consistency,
    replication: String,
    /// Whether the replication strategy is NetworkTopologyStrategy (tablets apply on Scylla 6+).
    network_topology: bool,
    /// Conditional writes in flight at once, per store call.
    max_in_flight: usize,
}

/// Conditional writes in flight at once by default (`?max_in_flight=N`); measured with
/// `visionlog bench projections` on one Cassandra node (docs/benchmarks.md).
const MAX_IN_FLIGHT: usize = 64;

fn config(msg: impl Into<String>) -> StoreError {
    StoreError::Config(msg.into())
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn consistency(name: &str) -> Result<Consistency, StoreError> {
    Ok(match name.to_ascii_lowercase().as_str() {
        "one" => Consistency::One,
        "local_one" => Consistency::LocalOne,
        "quorum" => Consistency::Quorum,
        "local_quorum" => Consistency::LocalQuorum,
        "each_quorum" => Consistency::EachQuorum,
        "all" => Consistency::All,
        other => return Err(config(format!("unknown consistency {other:?}"))),
    })
}

/// `url` (a `scylla://` URL) naming keyspace `keyspace` instead of its own; credentials and
/// options are kept. For a store of its own on the same cluster (benches, tests).
pub fn with_keyspace(url: &str, keyspace: &str) -> Result<String, StoreError> {
    parse_url(url)?;
    check_table_name(keyspace).map_err(|_| config(format!("bad keyspace {keyspace:?}")))?;
    let rest = url.strip_prefix("scylla://").unwrap_or(url);
    let (base, query) = rest.split_once('?').map_or((rest, None), |(b, q)| (b, Some(q)));
    let authority = base.split('/').next().unwrap_or_default();
    Ok(match query {
        Some(q) => format!("scylla://{authority}/{keyspace}?{q}"),
        None => format!("scylla://{authority}/{keyspace}"),
    })
}

/// Parses `scylla://[user:secret@]host:port[,host:port]/keyspace[?consistency=..&replication=..&dc=..&max_in_flight=..]`.
fn parse_url(url: &str) -> Result<ScyllaUrl, StoreError> {
    let rest = url.strip_prefix("scylla://").ok_or_else(|| config(format!("not a scylla:// URL: {url:?}")))?;
    let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (authority, keyspace) = rest.split_once('/').unwrap_or((rest, "visionlog"));
    let keyspace = if keyspace.is_empty() { "visionlog" } else { keyspace };
    check_table_name(keyspace).map_err(|_| config(format!("bad keyspace {keyspace:?}")))?;
    let (user, hosts) = match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => {
            let (u, p) = userinfo.split_once(':').ok_or_else(|| config("credentials must be user:secret"))?;
            (Some((u.to_owned(), p.to_owned())), hosts)
        }
        None => (None, authority),
    };
    let hosts: Vec<String> = hosts.split(',').filter(|h| !h.is_empty()).map(str::to_owned).collect();
    if hosts.is_empty() {
        return Err(config(format!("no hosts in {url:?}")));
    }
    for h in &hosts {
        if !h.rsplit_once(':').is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok()) {
            return Err(config(format!("host {h:?} must be host:port")));
        }
    }
    let mut parsed = ScyllaUrl {
        hosts,
        keyspace: keyspace.to_owned(),
        user,
        consistency: Consistency::LocalQuorum,
        replication: "{'class': 'SimpleStrategy', 'replication_factor': 3}".into(),
        network_topology: false,
        max_in_flight: MAX_IN_FLIGHT,
    };
    let (mut factor, mut dc) = (3u32, None::<String>);
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').ok_or_else(|| config(format!("bad option {pair:?}")))?;
        match k {
            "consistency" => parsed.consistency = consistency(v)?,
            "replication" => factor = v.parse().map_err(|_| config(format!("bad replication {v:?}")))?,
            "dc" if v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') => dc = Some(v.to_owned()),
            "max_in_flight" => {
                parsed.max_in_flight = v
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=4096).contains(n))
                    .ok_or_else(|| config(format!("max_in_flight must be 1..=4096, not {v:?}")))?
            }
            other => return Err(config(format!("unknown scylla option {other:?}"))),
        }
    }
    parsed.network_topology = dc.is_some();
    parsed.replication = match dc {
        Some(dc) => format!("{{'class': 'NetworkTopologyStrategy', '{dc}': {factor}}}"),
        None => format!("{{'class': 'SimpleStrategy', 'replication_factor': {factor}}}"),
    };
    Ok(parsed)
}

/// Read store in a Scylla (or Cassandra) cluster.
pub struct ScyllaStore {
    runtime: tokio::runtime::Runtime,
    session: Arc<Session>,
    url: ScyllaUrl,
    tables: Mutex<HashMap<String, Arc<Statements>>>,
}

fn rows(result: QueryResult) -> Result<Vec<CqlRow>, StoreError> {
    let rows = result.into_rows_result().map_err(backend)?;
    rows.rows::<CqlRow>().map_err(backend)?.collect::<Result<Vec<_>, _>>().map_err(backend)
}

/// Reads a row of `partition, clustering, version, value`.
fn view_row(row: CqlRow) -> Result<Row, StoreError> {
    let mut c = row.columns.into_iter();
    let mut next = || c.next().flatten();
    let partition = next().and_then(CqlValue::into_string).ok_or_else(|| backend("row without partition"))?;
    let clustering = next().and_then(CqlValue::into_string).unwrap_or_default();
    let version = next().and_then(|v| v.as_bigint()).ok_or_else(|| backend("row without version"))?;
    let value = next().and_then(CqlValue::into_blob).unwrap_or_default();
    Ok(Row { partition, clustering, version: version as u64, value })
}

/// Reads an LWT answer: whether it applied, and if not, the stored version.
fn lwt(result: QueryResult) -> Result<(bool, Option<u64>), StoreError> {
    let rows_result = result.into_rows_result().map_err(backend)?;
    let names: Vec<String> = rows_result.column_specs().iter().map(|s| s.name().to_owned()).collect();
    let row = rows_result
        .rows::<CqlRow>()
        .map_err(backend)?
        .next()
        .ok_or_else(|| backend("conditional write without an answer"))?
        .map_err(backend)?;
    let column = |name: &str| names.iter().position(|n| n == name).and_then(|i| row.columns[i].as_ref());
    let applied = column("[applied]").and_then(CqlValue::as_boolean).ok_or_else(|| backend("no [applied] column"))?;
    let version = column("version").and_then(CqlValue::as_bigint).map(|v| v as u64);
    Ok((applied, version))
}

impl ScyllaStore {
    /// Connects, and creates the keyspace (from `schemas/cql/keyspace.cql`) if it is missing.
    pub fn connect(url: &str) -> Result<Self, StoreError> {
        let url = parse_url(url)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("scylla")
            .enable_all()
            .build()
            .map_err(backend)?;
        let session = runtime.block_on(async {
            let mut builder = SessionBuilder::new().known_nodes(&url.hosts).connection_timeout(Duration::from_secs(5));
            if let Some((user, secret)) = &url.user {
                builder = builder.user(user, secret);
            }
            let session = builder.build().await.map_err(|e| backend(format!("connecting to {:?}: {e}", url.hosts)))?;
            let scylla = is_scylla(&session).await?;
            let cql = keyspace_cql(&url, scylla);
            if let Err(e) = session.query_unpaged(cql, ()).await {
                // a Scylla before 6.0 knows no `tablets` option (and has no tablets to avoid)
                if !(scylla && e.to_string().contains("tablets")) {
                    return Err(backend(e));
                }
                session.query_unpaged(keyspace_cql(&url, false), ()).await.map_err(backend)?;
            }
            session.await_schema_agreement().await.map_err(backend)?;
            Ok::<_, StoreError>(session)
        })?;
        Ok(Self { runtime, session: Arc::new(session), url, tables: Mutex::new(HashMap::new()) })
    }

    /// The statements of a table, creating it (from `schemas/cql/table.cql`) on first use.
    fn statements(&self, table: &str) -> Result<Arc<Statements>, StoreError> {
        check_table_name(table)?;
        if let Some(s) = self.tables.lock().expect("tables lock").get(table) {
            return Ok(s.clone());
        }
        let qualified = format!("{}.{table}", self.url.keyspace);
        let statements = self.runtime.block_on(async {
            let cql = TABLE_CQL.replace("{keyspace}", &self.url.keyspace).replace("{table}", table);
            self.session.query_unpaged(strip_comments(&cql), ()).await.map_err(backend)?;
            self.session.await_schema_agreement().await.map_err(backend)?;
            let prepare = |cql: String| {
                let session = self.session.clone();
                let c = self.url.consistency;
                async move {
                    let mut s = session.prepare(cql).await.map_err(backend)?;
                    s.set_consistency(c);
                    s.set_serial_consistency(Some(SerialConsistency::LocalSerial));
                    Ok::<_, StoreError>(s)
                }
            };
            let select = format!("SELECT {COLUMNS} FROM {qualified}");
            Ok::<_, StoreError>(Statements {
                insert: prepare(format!("INSERT INTO {qualified} ({COLUMNS}) VALUES (?, ?, ?, ?) IF NOT EXISTS"))
                    .await?,
                update: prepare(format!(
                    "UPDATE {qualified} SET version = ?, value = ? WHERE partition = ? AND clustering = ? IF version = ?"
                ))
                .await?,
                get: prepare(format!("{select} WHERE partition = ? AND clustering = ?")).await?,
                erase: prepare(format!("DELETE FROM {qualified} WHERE partition = ? AND clustering = ?")).await?,
                partition_first: prepare(format!("{select} WHERE partition = ? LIMIT ?")).await?,
                partition_after: prepare(format!("{select} WHERE partition = ? AND clustering > ? LIMIT ?")).await?,
                table_first: prepare(format!("{select} LIMIT ?")).await?,
                table_next: prepare(format!("{select} WHERE token(partition) > token(?) LIMIT ?")).await?,
            })
        })?;
        let statements = Arc::new(statements);
        self.tables.lock().expect("tables lock").insert(table.to_owned(), statements.clone());
        Ok(statements)
    }

    /// One conditional write: insert if absent, else compare-and-set over an older version.
    async fn put_one(session: &Session, s: &Statements, row: &Row) -> Result<PutOutcome, StoreError> {
        let version = row.version as i64;
        let (applied, mut stored) = lwt(session
            .execute_unpaged(&s.insert, (&row.partition, &row.clustering, version, &row.value))
            .await
            .map_err(backend)?)?;
        if applied {
            return Ok(PutOutcome::Applied);
        }
        loop {
            let current = stored.ok_or_else(|| backend("conditional write: the stored row has no version"))?;
            if current >= row.version {
                return Ok(PutOutcome::Stale(current));
            }
            let (applied, now) = lwt(session
                .execute_unpaged(&s.update, (version, &row.value, &row.partition, &row.clustering, current as i64))
                .await
                .map_err(backend)?)?;
            if applied {
                return Ok(PutOutcome::Applied);
            }
            stored = now; // another writer moved it: compare again
        }
    }

    /// Drops this store's keyspace, every table in it (a bench's keyspace, after the bench).
    pub fn drop_keyspace(&self) -> Result<(), StoreError> {
        self.tables.lock().expect("tables lock").clear();
        let cql = format!("DROP KEYSPACE IF EXISTS {}", self.url.keyspace);
        self.runtime.block_on(async {
            self.session.query_unpaged(cql, ()).await.map_err(backend)?;
            self.session.await_schema_agreement().await.map_err(backend)?;
            Ok(())
        })
    }

    /// Writes rows with plain prepared INSERTs (no condition, no version guard), as many in
    /// flight as the store's bound: what the cluster takes at most, the baseline that
    /// `visionlog bench projections` measures guarded writes against. Not for views.
    pub fn insert_unconditionally(&self, table: &str, rows: &[Row]) -> Result<(), StoreError> {
        self.statements(table)?; // creates the table
        let cql = format!("INSERT INTO {}.{table} ({COLUMNS}) VALUES (?, ?, ?, ?)", self.url.keyspace);
        let (session, consistency) = (self.session.clone(), self.url.consistency);
        self.runtime.block_on(async move {
            let mut insert = session.prepare(cql).await.map_err(backend)?;
            insert.set_consistency(consistency);
            let insert = Arc::new(insert);
            let results = bounded(self.url.max_in_flight, rows.iter().cloned(), |row| {
                let (session, insert) = (session.clone(), insert.clone());
                async move {
                    let values = (&row.partition, &row.clustering, row.version as i64, &row.value);
                    session.execute_unpaged(&insert, values).await.map(|_| ()).map_err(backend)
                }
            })
            .await?;
            results.into_iter().collect()
        })
    }

    fn select(
        &self,
        statement: &PreparedStatement,
        values: impl scylla::serialize::row::SerializeRow,
    ) -> Result<Vec<Row>, StoreError> {
        self.runtime.block_on(async {
            rows(self.session.execute_unpaged(statement, values).await.map_err(backend)?)?
                .into_iter()
                .map(view_row)
                .collect()
        })
    }
}

/// Runs `work` on every job with at most `bound` in flight; the results in the jobs' order.
async fn bounded<J, F, Fut, T>(bound: usize, jobs: impl IntoIterator<Item = J>, work: F) -> Result<Vec<T>, StoreError>
where
    F: Fn(J) -> Fut,
    Fut: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let mut set = tokio::task::JoinSet::new();
    let mut results: Vec<Option<T>> = Vec::new();
    let keep = |joined: Result<(usize, T), tokio::task::JoinError>, results: &mut Vec<Option<T>>| {
        let (i, t) = joined.map_err(backend)?;
        results[i] = Some(t);
        Ok::<_, StoreError>(())
    };
    for (i, job) in jobs.into_iter().enumerate() {
        if set.len() >= bound
            && let Some(joined) = set.join_next().await
        {
            keep(joined, &mut results)?;
        }
        results.push(None);
        let fut = work(job);
        set.spawn(async move { (i, fut.await) });
    }
    while let Some(joined) = set.join_next().await {
        keep(joined, &mut results)?;
    }
    Ok(results.into_iter().map(|t| t.expect("every job joined")).collect())
}

/// Tells whether the cluster is ScyllaDB (it has `system.scylla_local`; Cassandra has not).
async fn is_scylla(session: &Session) -> Result<bool, StoreError> {
    let cql =
        "SELECT table_name FROM system_schema.tables WHERE keyspace_name = 'system' AND table_name = 'scylla_local'";
    Ok(!rows(session.query_unpaged(cql, ()).await.map_err(backend)?)?.is_empty())
}

/// The keyspace's CQL. On ScyllaDB 6+ a NetworkTopologyStrategy keyspace gets tablets by
/// default, and lightweight transactions (every guarded write here) are not supported on tablets:
/// such a keyspace is created with tablets off. Cassandra knows no tablets and gets none.
fn keyspace_cql(url: &ScyllaUrl, scylla: bool) -> String {
    let mut cql =
        strip_comments(&KEYSPACE_CQL.replace("{keyspace}", &url.keyspace).replace("{replication}", &url.replication));
    if scylla && url.network_topology {
        let end = cql.trim_end().trim_end_matches(';').len();
        cql.truncate(end);
        cql.push_str("\n  AND tablets = {'enabled': false};");
    }
    cql
}

/// Drops `--` comment lines (the driver takes one statement).
fn strip_comments(cql: &str) -> String {
    cql.lines().filter(|l| !l.trim_start().starts_with("--")).collect::<Vec<_>>().join("\n")
}

fn limit(n: usize) -> i32 {
    n.clamp(1, i32::MAX as usize) as i32
}

impl ReadStore for ScyllaStore {
    fn put(&self, puts: &[Put]) -> Result<Vec<PutOutcome>, StoreError> {
        let mut jobs = Vec::with_capacity(puts.len());
        for p in puts {
            jobs.push((self.statements(&p.table)?, p.row.clone()));
        }
        let session = &self.session;
        let results = self.runtime.block_on(bounded(self.url.max_in_flight, jobs, |(statements, row)| {
            let session = session.clone();
            async move { Self::put_one(&session, &statements, &row).await }
        }))?;
        // each conditional write is atomic on its own: report the first failure after all ran
        let mut outcomes = Vec::with_capacity(results.len());
        let mut first_error = None;
        for r in results {
            match r {
                Ok(o) => outcomes.push(o),
                Err(e) => _ = first_error.get_or_insert(e),
            }
        }
        first_error.map_or(Ok(outcomes), Err)
    }

    fn get(&self, table: &str, partition: &str, clustering: &str) -> Result<Option<Row>, StoreError> {
        let s = self.statements(table)?;
        Ok(self.select(&s.get, (partition, clustering))?.into_iter().next())
    }

    fn scan_partition(
        &self,
        table: &str,
        partition: &str,
        after: Option<&str>,
        n: usize,
    ) -> Result<Vec<Row>, StoreError> {
        let s = self.statements(table)?;
        match after {
            None => self.select(&s.partition_first, (partition, limit(n))),
            Some(after) => self.select(&s.partition_after, (partition, after, limit(n))),
        }
    }

    fn scan_table(&self, table: &str, after: Option<(&str, &str)>, n: usize) -> Result<Vec<Row>, StoreError> {
        let s = self.statements(table)?;
        let Some((partition, clustering)) = after else {
            return self.select(&s.table_first, (limit(n),));
        };
        // the rest of the cursor's partition, then the partitions after it in token order
        let mut out = self.select(&s.partition_after, (partition, clustering, limit(n)))?;
        if out.len() < n {
            out.extend(self.select(&s.table_next, (partition, limit(n - out.len())))?);
        }
        Ok(out)
    }

    fn erase(&self, table: &str, partition: &str, clustering: &str) -> Result<(), StoreError> {
        let s = self.statements(table)?;
        self.runtime.block_on(async {
            self.session.execute_unpaged(&s.erase, (partition, clustering)).await.map_err(backend)?;
            Ok(())
        })
    }

    fn drop_table(&self, table: &str) -> Result<(), StoreError> {
        check_table_name(table)?;
        self.tables.lock().expect("tables lock").remove(table);
        let cql = format!("DROP TABLE IF EXISTS {}.{table}", self.url.keyspace);
        self.runtime.block_on(async {
            self.session.query_unpaged(cql, ()).await.map_err(backend)?;
            self.session.await_schema_agreement().await.map_err(backend)?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_hosts_keyspace_and_options() {
        let u = parse_url("scylla://a:9042,b:9042/views?consistency=quorum&replication=5&dc=eu_west").unwrap();
        assert_eq!(u.hosts, ["a:9042", "b:9042"]);
        assert_eq!(u.keyspace, "views");
        assert_eq!(u.consistency, Consistency::Quorum);
        assert!(u.replication.contains("NetworkTopologyStrategy") && u.replication.contains("'eu_west': 5"));
        let u = parse_url("scylla://me:s3cret@127.0.0.1:9042").unwrap();
        assert_eq!((u.keyspace.as_str(), u.user.unwrap().0.as_str()), ("visionlog", "me"));
        assert_eq!(u.consistency, Consistency::LocalQuorum);
        for bad in [
            "scylla://",
            "scylla://host/ks",
            "scylla://h:1/Bad-Keyspace",
            "scylla://h:1/ks?consistency=maybe",
            "scylla://h:1/ks?dc=x'};DROP",
            "scylla://h:1/ks?color=red",
        ] {
            assert!(matches!(parse_url(bad), Err(StoreError::Config(_))), "{bad}");
        }
    }

    #[test]
    fn keyspaces_turn_tablets_off_on_scylla_only() {
        let nts = parse_url("scylla://h:1/ks?dc=dc1&replication=3").unwrap();
        let simple = parse_url("scylla://h:1/ks?replication=1").unwrap();
        let on_scylla = keyspace_cql(&nts, true);
        assert!(on_scylla.trim_end().ends_with("AND tablets = {'enabled': false};"), "{on_scylla}");
        assert_eq!(on_scylla.matches(';').count(), 1, "one statement: {on_scylla}");
        // Cassandra has no tablets option; SimpleStrategy keyspaces get no tablets on Scylla either
        assert!(!keyspace_cql(&nts, false).contains("tablets"));
        assert!(!keyspace_cql(&simple, true).contains("tablets"));
        assert_eq!(parse_url("scylla://h:1/ks?max_in_flight=8").unwrap().max_in_flight, 8);
        assert_eq!(simple.max_in_flight, MAX_IN_FLIGHT);
        assert!(parse_url("scylla://h:1/ks?max_in_flight=0").is_err());
    }

    #[test]
    fn an_unreachable_cluster_is_a_clear_error() {
        // port 1 on loopback refuses at once
        let err = ScyllaStore::connect("scylla://127.0.0.1:1/visionlog").err().expect("no cluster there");
        assert!(err.to_string().contains("127.0.0.1:1"), "{err}");
    }

    #[test]
    fn cql_files_fill_in() {
        let cql = strip_comments(&TABLE_CQL.replace("{keyspace}", "ks").replace("{table}", "t_g1"));
        assert!(cql.starts_with("CREATE TABLE IF NOT EXISTS ks.t_g1"), "{cql}");
        assert!(!cql.contains('{') || cql.contains("{'class'"));
    }
}
