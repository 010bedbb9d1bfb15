//! One partition of the embedded log: its segments, its writer and its waiters.

use super::segment::{self, Segment};
use super::{FileLogOptions, FsyncPolicy, frame};
use crate::{Appended, LogError, LogRecord, Record};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

pub(super) struct Partition {
    dir: PathBuf,
    inner: Mutex<Inner>,
    appended: Condvar,
}

struct Inner {
    /// Sealed segments, by base offset; they never change.
    sealed: Vec<Arc<Segment>>,
    active: Segment,
    /// A second handle on the active segment's file for readers.
    active_file: Arc<File>,
    unsynced_since: Option<Instant>,
    scratch: Vec<u8>,
}

/// One stretch of a segment file to read.
struct ReadPlan {
    file: Arc<File>,
    path: PathBuf,
    start: u64,
    end: u64,
}

impl Partition {
    pub(super) fn open(dir: &Path) -> Result<Self, LogError> {
        std::fs::create_dir_all(dir).map_err(|e| LogError::io(dir.display(), e))?;
        let mut bases: Vec<u64> = std::fs::read_dir(dir)
            .map_err(|e| LogError::io(dir.display(), e))?
            .filter_map(|e| e.ok()?.file_name().to_str()?.strip_suffix(".log")?.parse().ok())
            .collect();
        bases.sort_unstable();
        let mut sealed = Vec::new();
        // retention may have removed the oldest segments: the log starts at the first one left
        let mut expected = bases.first().copied().unwrap_or(0);
        for (i, base) in bases.iter().enumerate() {
            let is_tail = i + 1 == bases.len();
            let path = dir.join(segment::file_name(*base));
            if *base != expected {
                return Err(LogError::Corrupt {
                    path: path.display().to_string(),
                    position: 0,
                    reason: format!("segment starts at {base}, expected {expected}"),
                });
            }
            let seg = Segment::open(&path, *base, is_tail)?;
            expected = seg.next_offset;
            sealed.push(seg);
        }
        let active = match sealed.pop() {
            Some(seg) => seg,
            None => Segment::create(dir, 0)?,
        };
        let active_file = handle(&active)?;
        Ok(Self {
            dir: dir.to_owned(),
            inner: Mutex::new(Inner {
                sealed: sealed.into_iter().map(Arc::new).collect(),
                active,
                active_file,
                unsynced_since: None,
                scratch: Vec::new(),
            }),
            appended: Condvar::new(),
        })
    }

    pub(super) fn end(&self) -> u64 {
        self.inner.lock().expect("partition lock").active.next_offset
    }

    pub(super) fn start(&self) -> u64 {
        let inner = self.inner.lock().expect("partition lock");
        inner.sealed.first().map_or(inner.active.base, |s| s.base)
    }

    /// Deletes the segments wholly below `offset` (the active one is sealed first when the
    /// offset reaches the end, so that everything can go); returns the new start.
    pub(super) fn drop_before(&self, offset: u64) -> Result<u64, LogError> {
        let mut inner = self.inner.lock().expect("partition lock");
        let end = inner.active.next_offset;
        if offset >= end && inner.active.size > 0 {
            inner.active.file.sync_all().map_err(|e| LogError::io(inner.active.path.display(), e))?;
            let next = Segment::create(&self.dir, end)?;
            inner.active_file = handle(&next)?;
            let old = std::mem::replace(&mut inner.active, next);
            inner.sealed.push(Arc::new(old));
            inner.unsynced_since = None;
        }
        let keep = inner.sealed.iter().position(|s| s.next_offset > offset).unwrap_or(inner.sealed.len());
        // readers holding a dropped segment's file read on from it (unlinked, not closed)
        for seg in inner.sealed.drain(..keep) {
            std::fs::remove_file(&seg.path).map_err(|e| LogError::io(seg.path.display(), e))?;
        }
        File::open(&self.dir).and_then(|d| d.sync_all()).map_err(|e| LogError::io(self.dir.display(), e))?;
        Ok(inner.sealed.first().map_or(inner.active.base, |s| s.base))
    }

    pub(super) fn append(
        &self,
        records: &[Record],
        timestamp_ms: i64,
        options: &FileLogOptions,
    ) -> Result<Appended, LogError> {
        let mut inner = self.inner.lock().expect("partition lock");
        let first = inner.active.next_offset;
        if records.is_empty() {
            return Ok(Appended::contiguous(first, 0));
        }
        if inner.active.size >= options.segment_bytes {
            inner.active.file.sync_all().map_err(|e| LogError::io(inner.active.path.display(), e))?;
            let next = Segment::create(&self.dir, first)?;
            inner.active_file = handle(&next)?;
            let old = std::mem::replace(&mut inner.active, next);
            inner.sealed.push(Arc::new(old));
        }
        let mut bytes = std::mem::take(&mut inner.scratch);
        bytes.clear();
        frame::encode(first, timestamp_ms, records, &mut bytes);
        if bytes.len() > frame::MAX_FRAME {
            inner.scratch = bytes;
            return Err(LogError::BatchTooLarge { size: inner.scratch.len(), max: Some(frame::MAX_FRAME) });
        }
        let next = first + records.len() as u64;
        let result = inner.active.append(&bytes, first, next);
        inner.scratch = bytes;
        result?;
        let sync = match options.fsync {
            FsyncPolicy::Always => true,
            FsyncPolicy::Interval(d) => *inner.unsynced_since.get_or_insert_with(Instant::now) <= Instant::now() - d,
            FsyncPolicy::Never => false,
        };
        if sync {
            inner.active.file.sync_data().map_err(|e| LogError::io(inner.active.path.display(), e))?;
            inner.unsynced_since = None;
        }
        drop(inner);
        self.appended.notify_all();
        Ok(Appended::contiguous(first, records.len() as u64))
    }

    pub(super) fn read(&self, from: u64, max: usize) -> Result<Vec<LogRecord>, LogError> {
        let mut out = Vec::new();
        // plan under the lock, read without it: frames below the planned ends never change
        let plan = {
            let inner = self.inner.lock().expect("partition lock");
            if from >= inner.active.next_offset || max == 0 {
                return Ok(out);
            }
            let mut plan = Vec::new();
            for seg in inner.sealed.iter().filter(|s| s.next_offset > from) {
                let start = if plan.is_empty() { seg.position_before(from) } else { 0 };
                plan.push(ReadPlan { file: seg.file.clone(), path: seg.path.clone(), start, end: seg.size });
            }
            let start = if plan.is_empty() { inner.active.position_before(from) } else { 0 };
            plan.push(ReadPlan {
                file: inner.active_file.clone(),
                path: inner.active.path.clone(),
                start,
                end: inner.active.size,
            });
            plan
        };
        for p in plan {
            segment::read(&p.file, &p.path, p.start, p.end, from, max, &mut out)?;
            if out.len() >= max {
                break;
            }
        }
        Ok(out)
    }

    pub(super) fn wait_for(&self, offset: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut inner = self.inner.lock().expect("partition lock");
        while inner.active.next_offset <= offset {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            inner = self.appended.wait_timeout(inner, deadline - now).expect("partition lock").0;
        }
        true
    }

    pub(super) fn sync(&self) -> Result<(), LogError> {
        let mut inner = self.inner.lock().expect("partition lock");
        if inner.unsynced_since.take().is_some() {
            inner.active.file.sync_data().map_err(|e| LogError::io(inner.active.path.display(), e))?;
        }
        Ok(())
    }
}

fn handle(seg: &Segment) -> Result<Arc<File>, LogError> {
    Ok(seg.file.clone())
}
