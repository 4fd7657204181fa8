//! Reading and creating segment files: a sequential record reader that
//! checks framing and the hash chain, and random reads of one record.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, ErrorKind, Read, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::format::{
    self, HASH_LEN, Hash, RECORD_HEADER_LEN, RecordHeader, SEGMENT_HEADER_LEN, SegmentHeader,
};

pub fn segment_path(segments_dir: &Path, segment_no: u64) -> PathBuf {
    segments_dir.join(format::segment_file_name(segment_no))
}

/// One record as read from disk, its chain hash already checked.
#[derive(Debug)]
pub struct ScannedRecord {
    pub offset: u64,
    pub header: RecordHeader,
    pub payload: Vec<u8>,
    pub chain_hash: Hash,
}

impl ScannedRecord {
    pub fn record_len(&self) -> u64 {
        self.header.record_len() as u64
    }
}

/// Where and why sequential reading stopped before the end of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordFault {
    pub offset: u64,
    pub reason: String,
    /// The file ends inside the record (a torn write rather than an alteration).
    pub incomplete: bool,
}

/// Reads records one after another, checking magic, framing and the chain.
pub struct RecordReader<R> {
    reader: R,
    offset: u64,
    prev_hash: Hash,
}

impl RecordReader<BufReader<File>> {
    /// Starts at `offset`, where the previous record's chain hash is `prev_hash`.
    pub fn new(
        file: File,
        offset: u64,
        prev_hash: Hash,
    ) -> std::io::Result<RecordReader<BufReader<File>>> {
        let mut reader = BufReader::with_capacity(1 << 20, file);
        std::io::Seek::seek(&mut reader, std::io::SeekFrom::Start(offset))?;
        Ok(RecordReader {
            reader,
            offset,
            prev_hash,
        })
    }
}

impl<R: Read> RecordReader<R> {
    pub fn offset(&self) -> u64 {
        self.offset
    }

    pub fn prev_hash(&self) -> Hash {
        self.prev_hash
    }

    /// The next record, `Ok(None)` at a clean end of file.
    pub fn next_record(&mut self) -> Result<Option<ScannedRecord>, RecordFault> {
        let offset = self.offset;
        let fault = |reason: String, incomplete| RecordFault {
            offset,
            reason,
            incomplete,
        };
        let mut header_bytes = [0u8; RECORD_HEADER_LEN];
        match read_full(&mut self.reader, &mut header_bytes) {
            Ok(0) => return Ok(None),
            Ok(n) if n < RECORD_HEADER_LEN => {
                return Err(fault(
                    format!("file ends {n} bytes into a record header"),
                    true,
                ));
            }
            Ok(_) => {}
            Err(error) => return Err(fault(format!("read error: {error}"), false)),
        }
        let header = RecordHeader::decode(&header_bytes)
            .map_err(|error| fault(format!("bad record header: {error}"), false))?;
        let mut payload = vec![0u8; header.payload_len as usize];
        let mut hash = [0u8; HASH_LEN];
        let got_payload = read_full(&mut self.reader, &mut payload)
            .map_err(|error| fault(format!("read error: {error}"), false))?;
        let got_hash = if got_payload == payload.len() {
            read_full(&mut self.reader, &mut hash)
                .map_err(|error| fault(format!("read error: {error}"), false))?
        } else {
            0
        };
        if got_payload < payload.len() || got_hash < HASH_LEN {
            return Err(fault(
                format!("file ends inside a record of {} bytes", header.record_len()),
                true,
            ));
        }
        let expected = format::chain_hash(&self.prev_hash, &header_bytes, &payload);
        if expected != hash {
            return Err(fault(
                "chain hash mismatch: the record or one before it was altered".to_owned(),
                false,
            ));
        }
        self.prev_hash = hash;
        self.offset += header.record_len() as u64;
        Ok(Some(ScannedRecord {
            offset,
            header,
            payload,
            chain_hash: hash,
        }))
    }
}

/// Reads until `buf` is full or the file ends; returns how many bytes were read.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(error) if error.kind() == ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(filled)
}

/// Reads and decodes a segment's header.
pub fn read_header(file: &File) -> Result<(SegmentHeader, [u8; SEGMENT_HEADER_LEN]), String> {
    let mut bytes = [0u8; SEGMENT_HEADER_LEN];
    file.read_exact_at(&mut bytes, 0)
        .map_err(|error| format!("cannot read the segment header: {error}"))?;
    let header =
        SegmentHeader::decode(&bytes).map_err(|error| format!("bad segment header: {error}"))?;
    Ok((header, bytes))
}

/// Reads one record at `offset` and checks its own chain link (against the
/// 32 bytes before it, or the segment's chain start for the first record).
pub fn read_record_at(file: &File, offset: u64, len: u64) -> Result<ScannedRecord, String> {
    let mut records = read_records_at(file, offset, &[len])?;
    records
        .pop()
        .ok_or_else(|| format!("no record at offset {offset}"))
}

/// Reads adjacent records starting at `offset`, of the given lengths, with
/// one read, checking each one's chain link to the one before.
pub fn read_records_at(
    file: &File,
    offset: u64,
    lens: &[u64],
) -> Result<Vec<ScannedRecord>, String> {
    let total: u64 = lens.iter().sum();
    let mut bytes = vec![0u8; total as usize];
    file.read_exact_at(&mut bytes, offset)
        .map_err(|error| format!("cannot read {total} bytes at offset {offset}: {error}"))?;
    let prev_hash: Hash = if offset == SEGMENT_HEADER_LEN as u64 {
        let (_, header_bytes) = read_header(file)?;
        format::chain_start(&header_bytes)
    } else {
        let mut prev = [0u8; HASH_LEN];
        file.read_exact_at(&mut prev, offset - HASH_LEN as u64)
            .map_err(|error| format!("cannot read the previous chain hash: {error}"))?;
        prev
    };
    let mut reader = RecordReader {
        reader: std::io::Cursor::new(bytes),
        offset,
        prev_hash,
    };
    let mut records = Vec::with_capacity(lens.len());
    for &len in lens {
        let at = reader.offset();
        match reader.next_record() {
            Ok(Some(record)) if record.record_len() == len => records.push(record),
            Ok(_) => {
                return Err(format!(
                    "record at offset {at} does not have the recorded length {len}"
                ));
            }
            Err(fault) => {
                return Err(format!(
                    "record at offset {}: {}",
                    fault.offset, fault.reason
                ));
            }
        }
    }
    Ok(records)
}

/// Creates a new segment file (0600) holding only its header, durably.
pub fn create_segment(
    segments_dir: &Path,
    header: &SegmentHeader,
) -> std::io::Result<(File, [u8; SEGMENT_HEADER_LEN])> {
    let path = segment_path(segments_dir, header.segment_no);
    let created = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path);
    let mut file = match created {
        Ok(file) => file,
        // A crash while creating it can leave at most a partial header;
        // anything more is data this must never overwrite.
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
            let len = std::fs::metadata(&path)?.len();
            if len > SEGMENT_HEADER_LEN as u64 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    format!(
                        "segment file {} already holds {len} bytes; refusing to overwrite it",
                        path.display()
                    ),
                ));
            }
            OpenOptions::new()
                .read(true)
                .write(true)
                .truncate(true)
                .open(&path)?
        }
        Err(error) => return Err(error),
    };
    let bytes = header.encode();
    file.write_all(&bytes)?;
    file.sync_all()?;
    sync_dir(segments_dir)?;
    Ok((file, bytes))
}

/// Makes a directory entry change (a new file) durable.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}
