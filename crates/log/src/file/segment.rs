//! One segment file of a partition: frames from a base offset on.

use super::frame::{self, FrameHeader};
use crate::LogError;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Entries of the sparse index are at least this many bytes apart.
const INDEX_INTERVAL: u64 = 64 * 1024;

/// A segment: its file, its size and a sparse index of frame starts.
pub(crate) struct Segment {
    pub(crate) path: PathBuf,
    pub(crate) file: Arc<File>,
    /// Offset of its first record.
    pub(crate) base: u64,
    /// Bytes of valid frames.
    pub(crate) size: u64,
    /// Offset after the last record.
    pub(crate) next_offset: u64,
    /// (first offset of a frame, byte position), ascending.
    index: Vec<(u64, u64)>,
    last_indexed_pos: Option<u64>,
}

pub(crate) fn file_name(base_offset: u64) -> String {
    format!("{base_offset:020}.log")
}

impl Segment {
    pub(crate) fn create(dir: &Path, base_offset: u64) -> Result<Self, LogError> {
        let path = dir.join(file_name(base_offset));
        let file = File::options()
            .create(true)
            .read(true)
            .append(true)
            .open(&path)
            .map_err(|e| LogError::io(path.display(), e))?;
        // the new file's name is durable only once its directory is: without this a power cut
        // after a roll could lose a segment whose records were synced and acknowledged
        File::open(dir).and_then(|d| d.sync_all()).map_err(|e| LogError::io(dir.display(), e))?;
        Ok(Self {
            path,
            file: Arc::new(file),
            base: base_offset,
            size: 0,
            next_offset: base_offset,
            index: Vec::new(),
            last_indexed_pos: None,
        })
    }

    /// Opens a segment and scans its frames. The last segment (`is_tail`) is fully verified and a
    /// torn tail is cut; in a sealed segment only headers are read and any bad frame is an error.
    pub(crate) fn open(path: &Path, base_offset: u64, is_tail: bool) -> Result<Self, LogError> {
        let file = File::options().read(true).append(true).open(path).map_err(|e| LogError::io(path.display(), e))?;
        let len = file.metadata().map_err(|e| LogError::io(path.display(), e))?.len();
        let mut seg = Self {
            path: path.to_owned(),
            file: Arc::new(file),
            base: base_offset,
            size: 0,
            next_offset: base_offset,
            index: Vec::new(),
            last_indexed_pos: None,
        };
        let mut pos = 0u64;
        let mut head = [0u8; frame::PREFIX + frame::BODY_HEADER];
        while pos < len {
            let bad = |reason: &str| LogError::Corrupt {
                path: path.display().to_string(),
                position: pos,
                reason: reason.to_owned(),
            };
            let available = (len - pos).min(head.len() as u64) as usize;
            seg.file.read_exact_at(&mut head[..available], pos).map_err(|e| LogError::io(path.display(), e))?;
            let header = FrameHeader::parse(&head[..available]);
            let valid = match header {
                Some(h) if pos + h.frame_len <= len && h.base_offset == seg.next_offset => {
                    if is_tail {
                        let mut buf = vec![0u8; h.frame_len as usize];
                        seg.file.read_exact_at(&mut buf, pos).map_err(|e| LogError::io(path.display(), e))?;
                        frame::verify(&h, &buf)
                    } else {
                        true
                    }
                }
                _ => false,
            };
            match (valid, header) {
                (true, Some(h)) => {
                    seg.note_frame(h.base_offset, pos);
                    pos += h.frame_len;
                    seg.next_offset = h.next_offset();
                }
                _ if is_tail && seg.rest_is_torn(pos, len, header)? => {
                    tracing::warn!(path = %path.display(), position = pos, cut = len - pos, "cutting a torn tail");
                    seg.file.set_len(pos).map_err(|e| LogError::io(path.display(), e))?;
                    seg.file.sync_all().map_err(|e| LogError::io(path.display(), e))?;
                    break;
                }
                _ => return Err(bad("frame fails its length, offset or checksum")),
            }
        }
        seg.size = pos;
        Ok(seg)
    }

    /// Tells whether the bytes from `pos` are a torn last write: an incomplete or unverifiable
    /// frame that reaches the end of the file (or zeros). A bad frame followed by more frames is
    /// corruption, not a torn tail.
    fn rest_is_torn(&self, pos: u64, len: u64, header: Option<FrameHeader>) -> Result<bool, LogError> {
        if let Some(h) = header
            && pos + h.frame_len < len
        {
            let mut rest = vec![0u8; (len - pos - h.frame_len).min(1 << 20) as usize];
            self.file.read_exact_at(&mut rest, pos + h.frame_len).map_err(|e| LogError::io(self.path.display(), e))?;
            return Ok(rest.iter().all(|b| *b == 0));
        }
        Ok(true)
    }

    fn note_frame(&mut self, first_offset: u64, pos: u64) {
        if self.last_indexed_pos.is_none_or(|last| pos >= last + INDEX_INTERVAL) {
            self.index.push((first_offset, pos));
            self.last_indexed_pos = Some(pos);
        }
    }

    /// Writes encoded frames at the end of the segment.
    pub(crate) fn append(&mut self, bytes: &[u8], first_offset: u64, next_offset: u64) -> Result<(), LogError> {
        use std::io::Write;
        (&*self.file).write_all(bytes).map_err(|e| LogError::io(self.path.display(), e))?;
        self.note_frame(first_offset, self.size);
        self.size += bytes.len() as u64;
        self.next_offset = next_offset;
        Ok(())
    }

    /// Returns the byte position of the frame holding `offset` or a frame before it.
    pub(crate) fn position_before(&self, offset: u64) -> u64 {
        match self.index.partition_point(|(o, _)| *o <= offset) {
            0 => 0,
            i => self.index[i - 1].1,
        }
    }
}

/// Reads records of a segment from `from` up to `end` bytes; verifies each frame read.
pub(crate) fn read(
    file: &File,
    path: &Path,
    mut pos: u64,
    end: u64,
    from: u64,
    max: usize,
    out: &mut Vec<crate::LogRecord>,
) -> Result<(), LogError> {
    let mut head = [0u8; frame::PREFIX + frame::BODY_HEADER];
    let mut buf = Vec::new();
    while pos < end && out.len() < max {
        let bad = |reason: String| LogError::Corrupt { path: path.display().to_string(), position: pos, reason };
        file.read_exact_at(&mut head, pos).map_err(|e| LogError::io(path.display(), e))?;
        let h = FrameHeader::parse(&head).ok_or_else(|| bad("invalid frame header".into()))?;
        if h.next_offset() <= from {
            pos += h.frame_len;
            continue;
        }
        buf.resize(h.frame_len as usize, 0);
        file.read_exact_at(&mut buf, pos).map_err(|e| LogError::io(path.display(), e))?;
        if !frame::verify(&h, &buf) {
            return Err(bad("checksum mismatch".into()));
        }
        frame::decode(&buf, from, out, max).map_err(bad)?;
        pos += h.frame_len;
    }
    Ok(())
}
