//! The embedded read store: one `redb` file, rows keyed by (table, partition, clustering).

use crate::{Put, PutOutcome, ReadStore, Row, RowPlace, StoreError, check_table_name};
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use std::path::Path;

const ROWS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("rows");
const SEP: u8 = 0;

/// Read store in a local file.
pub struct EmbeddedStore {
    db: Database,
}

fn err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn key(table: &str, partition: &str, clustering: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(table.len() + partition.len() + clustering.len() + 2);
    k.extend_from_slice(table.as_bytes());
    k.push(SEP);
    k.extend_from_slice(partition.as_bytes());
    k.push(SEP);
    k.extend_from_slice(clustering.as_bytes());
    k
}

fn split_key(k: &[u8]) -> Option<(String, String)> {
    let mut parts = k.splitn(3, |b| *b == SEP);
    let _table = parts.next()?;
    let partition = String::from_utf8(parts.next()?.to_vec()).ok()?;
    let clustering = String::from_utf8(parts.next()?.to_vec()).ok()?;
    Some((partition, clustering))
}

fn decode(k: &[u8], v: &[u8]) -> Result<Row, StoreError> {
    let (partition, clustering) = split_key(k).ok_or_else(|| err("malformed row key"))?;
    if v.len() < 8 {
        return Err(err("malformed row value"));
    }
    let version = u64::from_le_bytes(v[..8].try_into().expect("8 bytes"));
    Ok(Row { partition, clustering, version, value: v[8..].to_vec() })
}

fn check(name: &str, s: &str) -> Result<(), StoreError> {
    if s.as_bytes().contains(&SEP) {
        return Err(StoreError::Config(format!("{name} may not contain NUL bytes")));
    }
    Ok(())
}

impl EmbeddedStore {
    /// Opens (or creates) the store file, with redb's page cache (1 GiB at most).
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_with_cache(path, None)
    }

    /// Opens (or creates) the store file with a page cache of at most `cache_bytes` (none:
    /// redb's default, 1 GiB): the memory a process reading much of the store grows to.
    pub fn open_with_cache(path: &Path, cache_bytes: Option<usize>) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        let mut builder = redb::Builder::new();
        if let Some(bytes) = cache_bytes {
            builder.set_cache_size(bytes);
        }
        let db = builder.create(path).map_err(err)?;
        let tx = db.begin_write().map_err(err)?;
        tx.open_table(ROWS).map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(Self { db })
    }

    fn put_with(&self, puts: &[Put], durability: Durability) -> Result<Vec<PutOutcome>, StoreError> {
        let mut keyed = Vec::with_capacity(puts.len());
        for (i, p) in puts.iter().enumerate() {
            check_table_name(&p.table)?;
            check("partition", &p.row.partition)?;
            keyed.push((key(&p.table, &p.row.partition, &p.row.clustering), i));
        }
        // in key order, the B-tree is walked once rather than hopped across (stable: writes of
        // one key keep their order)
        keyed.sort_by(|a, b| a.0.cmp(&b.0));
        let mut tx = self.db.begin_write().map_err(err)?;
        tx.set_durability(durability).map_err(err)?;
        let mut outcomes = vec![PutOutcome::Applied; puts.len()];
        {
            let mut table = tx.open_table(ROWS).map_err(err)?;
            let mut value = Vec::new();
            for (k, i) in keyed {
                let p = &puts[i];
                let stored = table
                    .get(k.as_slice())
                    .map_err(err)?
                    .map(|v| u64::from_le_bytes(v.value()[..8].try_into().expect("8 bytes")));
                match stored {
                    Some(current) if current >= p.row.version => outcomes[i] = PutOutcome::Stale(current),
                    _ => {
                        value.clear();
                        value.extend_from_slice(&p.row.version.to_le_bytes());
                        value.extend_from_slice(&p.row.value);
                        table.insert(k.as_slice(), value.as_slice()).map_err(err)?;
                    }
                }
            }
        }
        tx.commit().map_err(err)?;
        Ok(outcomes)
    }

    fn scan(&self, start: Vec<u8>, prefix: Vec<u8>, skip_first: bool, limit: usize) -> Result<Vec<Row>, StoreError> {
        let tx = self.db.begin_read().map_err(err)?;
        let table = tx.open_table(ROWS).map_err(err)?;
        let mut out = Vec::new();
        for item in table.range(start.as_slice()..).map_err(err)? {
            let (k, v) = item.map_err(err)?;
            let k = k.value();
            if !k.starts_with(&prefix) {
                break;
            }
            if skip_first && out.is_empty() && k == start.as_slice() {
                continue;
            }
            out.push(decode(k, v.value())?);
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }
}

impl ReadStore for EmbeddedStore {
    fn put(&self, puts: &[Put]) -> Result<Vec<PutOutcome>, StoreError> {
        self.put_with(puts, Durability::Immediate)
    }

    fn put_unsynced(&self, puts: &[Put]) -> Result<Vec<PutOutcome>, StoreError> {
        self.put_with(puts, Durability::None)
    }

    fn sync(&self) -> Result<(), StoreError> {
        // an immediate commit makes every earlier one durable
        let mut tx = self.db.begin_write().map_err(err)?;
        tx.set_durability(Durability::Immediate).map_err(err)?;
        tx.commit().map_err(err)
    }

    fn get(&self, table: &str, partition: &str, clustering: &str) -> Result<Option<Row>, StoreError> {
        let tx = self.db.begin_read().map_err(err)?;
        let t = tx.open_table(ROWS).map_err(err)?;
        let k = key(table, partition, clustering);
        t.get(k.as_slice()).map_err(err)?.map(|v| decode(&k, v.value())).transpose()
    }

    fn scan_partition(
        &self,
        table: &str,
        partition: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Row>, StoreError> {
        let prefix = key(table, partition, "");
        let start = after.map_or_else(|| prefix.clone(), |a| key(table, partition, a));
        self.scan(start, prefix, after.is_some(), limit)
    }

    fn scan_table(&self, table: &str, after: Option<(&str, &str)>, limit: usize) -> Result<Vec<Row>, StoreError> {
        let mut prefix = table.as_bytes().to_vec();
        prefix.push(SEP);
        let start = after.map_or_else(|| prefix.clone(), |(p, c)| key(table, p, c));
        self.scan(start, prefix, after.is_some(), limit)
    }

    fn erase(&self, table: &str, partition: &str, clustering: &str) -> Result<(), StoreError> {
        check_table_name(table)?;
        let tx = self.db.begin_write().map_err(err)?;
        {
            let mut t = tx.open_table(ROWS).map_err(err)?;
            t.remove(key(table, partition, clustering).as_slice()).map_err(err)?;
        }
        tx.commit().map_err(err)
    }

    fn erase_many(&self, keys: &[RowPlace]) -> Result<(), StoreError> {
        for k in keys {
            check_table_name(&k.table)?;
        }
        let tx = self.db.begin_write().map_err(err)?;
        {
            let mut t = tx.open_table(ROWS).map_err(err)?;
            for k in keys {
                t.remove(key(&k.table, &k.partition, &k.clustering).as_slice()).map_err(err)?;
            }
        }
        tx.commit().map_err(err)
    }

    fn drop_table(&self, table: &str) -> Result<(), StoreError> {
        check_table_name(table)?;
        let mut prefix = table.as_bytes().to_vec();
        prefix.push(SEP);
        let mut end = table.as_bytes().to_vec();
        end.push(SEP + 1);
        let tx = self.db.begin_write().map_err(err)?;
        {
            let mut t = tx.open_table(ROWS).map_err(err)?;
            t.retain_in(prefix.as_slice()..end.as_slice(), |_, _| false).map_err(err)?;
        }
        tx.commit().map_err(err)
    }
}
