//! The on-disk format of segment files. FROZEN: version 1.
//!
//! DO NOT CHANGE anything in this file for `FORMAT_VERSION` 1: the layout of
//! headers and records, the associated data and the chain-hash input are what
//! every existing archive was written with and what `verify` proves. A new
//! layout needs a new version number and a reader for both.
//! `docs/storage-format.md` describes the same bytes for people.
//!
//! ```text
//! segment  := header(64) record*
//! header   := "HOLDSEG\0" version:u32 segment_no:u64 created_at_ms:i64 prev_hash:[32] reserved:[4]=0
//! record   := rheader(40) payload(payload_len) chain_hash(32)
//! rheader  := "HFR1" type:u8 flags:u8=0 reserved:u16=0 seq:u64 epoch_id:u64 nonce:[12] payload_len:u32
//! chain_hash = SHA-256(prev_chain_hash || rheader || payload)
//! the chain of a segment starts at SHA-256("holdfast-chain-v1" || header)
//! ```
//! All integers little-endian. Event payloads are AES-256-GCM ciphertext
//! (with tag) of the event's canonical JSON under the epoch's data key, with
//! [`associated_data`] binding segment, offset, seq and epoch. Seal payloads
//! are plaintext: `n_event_records:u64 sealed_at_ms:i64`.

use sha2::{Digest, Sha256};

pub const SEGMENT_MAGIC: [u8; 8] = *b"HOLDSEG\0";
pub const FORMAT_VERSION: u32 = 1;
pub const SEGMENT_HEADER_LEN: usize = 64;
pub const RECORD_MAGIC: [u8; 4] = *b"HFR1";
pub const RECORD_HEADER_LEN: usize = 40;
pub const HASH_LEN: usize = 32;
pub const NONCE_LEN: usize = 12;
/// Largest payload a record may carry (an event is at most 1 MiB of JSON).
pub const MAX_PAYLOAD_LEN: u32 = 2 * 1024 * 1024;
pub const SEAL_PAYLOAD_LEN: usize = 16;

pub type Hash = [u8; HASH_LEN];

/// What a record holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordType {
    /// One encrypted event.
    Event = 1,
    /// The last record of a sealed segment.
    Seal = 2,
}

/// Why bytes are not a valid header or record. The caller adds where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error("bad magic bytes")]
    BadMagic,
    #[error("unsupported format version {0}")]
    UnsupportedVersion(u32),
    #[error("unknown record type {0}")]
    UnknownRecordType(u8),
    #[error("reserved bytes are not zero")]
    ReservedNotZero,
    #[error("payload length {0} exceeds the limit")]
    PayloadTooLong(u32),
    #[error("too short: {needed} bytes needed, {available} available")]
    Truncated { needed: usize, available: usize },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentHeader {
    pub segment_no: u64,
    pub created_at_ms: i64,
    /// Chain hash of the last record of the previous segment (zeros for the first).
    pub prev_hash: Hash,
}

impl SegmentHeader {
    pub fn encode(&self) -> [u8; SEGMENT_HEADER_LEN] {
        let mut bytes = [0u8; SEGMENT_HEADER_LEN];
        bytes[0..8].copy_from_slice(&SEGMENT_MAGIC);
        bytes[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        bytes[12..20].copy_from_slice(&self.segment_no.to_le_bytes());
        bytes[20..28].copy_from_slice(&self.created_at_ms.to_le_bytes());
        bytes[28..60].copy_from_slice(&self.prev_hash);
        bytes
    }

    pub fn decode(bytes: &[u8]) -> Result<SegmentHeader, FormatError> {
        if bytes.len() < SEGMENT_HEADER_LEN {
            return Err(FormatError::Truncated {
                needed: SEGMENT_HEADER_LEN,
                available: bytes.len(),
            });
        }
        if bytes[0..8] != SEGMENT_MAGIC {
            return Err(FormatError::BadMagic);
        }
        let version = u32::from_le_bytes(array(&bytes[8..12]));
        if version != FORMAT_VERSION {
            return Err(FormatError::UnsupportedVersion(version));
        }
        if bytes[60..64] != [0; 4] {
            return Err(FormatError::ReservedNotZero);
        }
        Ok(SegmentHeader {
            segment_no: u64::from_le_bytes(array(&bytes[12..20])),
            created_at_ms: i64::from_le_bytes(array(&bytes[20..28])),
            prev_hash: array(&bytes[28..60]),
        })
    }
}

/// Where a segment's chain starts.
pub fn chain_start(header_bytes: &[u8; SEGMENT_HEADER_LEN]) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update(b"holdfast-chain-v1");
    hasher.update(header_bytes);
    hasher.finalize().into()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordHeader {
    pub record_type: RecordType,
    pub seq: u64,
    pub epoch_id: u64,
    pub nonce: [u8; NONCE_LEN],
    pub payload_len: u32,
}

impl RecordHeader {
    pub fn encode(&self) -> [u8; RECORD_HEADER_LEN] {
        let mut bytes = [0u8; RECORD_HEADER_LEN];
        bytes[0..4].copy_from_slice(&RECORD_MAGIC);
        bytes[4] = self.record_type as u8;
        bytes[8..16].copy_from_slice(&self.seq.to_le_bytes());
        bytes[16..24].copy_from_slice(&self.epoch_id.to_le_bytes());
        bytes[24..36].copy_from_slice(&self.nonce);
        bytes[36..40].copy_from_slice(&self.payload_len.to_le_bytes());
        bytes
    }

    pub fn decode(bytes: &[u8]) -> Result<RecordHeader, FormatError> {
        if bytes.len() < RECORD_HEADER_LEN {
            return Err(FormatError::Truncated {
                needed: RECORD_HEADER_LEN,
                available: bytes.len(),
            });
        }
        if bytes[0..4] != RECORD_MAGIC {
            return Err(FormatError::BadMagic);
        }
        let record_type = match bytes[4] {
            1 => RecordType::Event,
            2 => RecordType::Seal,
            other => return Err(FormatError::UnknownRecordType(other)),
        };
        if bytes[5..8] != [0; 3] {
            return Err(FormatError::ReservedNotZero);
        }
        let payload_len = u32::from_le_bytes(array(&bytes[36..40]));
        if payload_len > MAX_PAYLOAD_LEN {
            return Err(FormatError::PayloadTooLong(payload_len));
        }
        Ok(RecordHeader {
            record_type,
            seq: u64::from_le_bytes(array(&bytes[8..16])),
            epoch_id: u64::from_le_bytes(array(&bytes[16..24])),
            nonce: array(&bytes[24..36]),
            payload_len,
        })
    }

    /// Bytes of the whole record: header, payload and chain hash.
    pub fn record_len(&self) -> usize {
        RECORD_HEADER_LEN + self.payload_len as usize + HASH_LEN
    }
}

/// The chain hash of a record.
pub fn chain_hash(prev: &Hash, header: &[u8; RECORD_HEADER_LEN], payload: &[u8]) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update(prev);
    hasher.update(header);
    hasher.update(payload);
    hasher.finalize().into()
}

/// Associated data of an event record: binds it to its place and key epoch,
/// so a record moved, swapped or relabelled no longer decrypts.
pub fn associated_data(segment_no: u64, offset: u64, seq: u64, epoch_id: u64) -> [u8; 48] {
    let mut ad = [0u8; 48];
    ad[0..16].copy_from_slice(b"holdfast-rec-v1\0");
    ad[16..24].copy_from_slice(&segment_no.to_le_bytes());
    ad[24..32].copy_from_slice(&offset.to_le_bytes());
    ad[32..40].copy_from_slice(&seq.to_le_bytes());
    ad[40..48].copy_from_slice(&epoch_id.to_le_bytes());
    ad
}

/// The plaintext payload of a seal record.
pub fn encode_seal(n_event_records: u64, sealed_at_ms: i64) -> [u8; SEAL_PAYLOAD_LEN] {
    let mut bytes = [0u8; SEAL_PAYLOAD_LEN];
    bytes[0..8].copy_from_slice(&n_event_records.to_le_bytes());
    bytes[8..16].copy_from_slice(&sealed_at_ms.to_le_bytes());
    bytes
}

pub fn decode_seal(payload: &[u8]) -> Option<(u64, i64)> {
    (payload.len() == SEAL_PAYLOAD_LEN).then(|| {
        (
            u64::from_le_bytes(array(&payload[0..8])),
            i64::from_le_bytes(array(&payload[8..16])),
        )
    })
}

/// The file name of a segment: zero-padded so names sort in order.
pub fn segment_file_name(segment_no: u64) -> String {
    format!("{segment_no:012}.seg")
}

fn array<const N: usize>(bytes: &[u8]) -> [u8; N] {
    bytes
        .try_into()
        .expect("callers pass slices of exactly N bytes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip() {
        let header = SegmentHeader {
            segment_no: 7,
            created_at_ms: 1_700_000_000_000,
            prev_hash: [9; 32],
        };
        assert_eq!(SegmentHeader::decode(&header.encode()), Ok(header));
        let record = RecordHeader {
            record_type: RecordType::Event,
            seq: 42,
            epoch_id: 3,
            nonce: [1; 12],
            payload_len: 100,
        };
        assert_eq!(RecordHeader::decode(&record.encode()), Ok(record.clone()));
        assert_eq!(record.record_len(), 40 + 100 + 32);
    }

    #[test]
    fn the_layout_is_frozen() {
        // A change to these bytes breaks every existing archive.
        let header = SegmentHeader {
            segment_no: 1,
            created_at_ms: 2,
            prev_hash: [0; 32],
        };
        assert_eq!(
            hex::encode(chain_start(&header.encode())),
            hex::encode(Sha256::digest(
                [b"holdfast-chain-v1".as_slice(), &header.encode()].concat()
            ))
        );
        assert_eq!(&header.encode()[..12], b"HOLDSEG\0\x01\0\0\0");
        assert_eq!(&associated_data(1, 2, 3, 4)[..16], b"holdfast-rec-v1\0");
        assert_eq!(segment_file_name(12), "000000000012.seg");
    }

    #[test]
    fn bad_headers_are_refused() {
        let mut bytes = RecordHeader {
            record_type: RecordType::Seal,
            seq: 1,
            epoch_id: 0,
            nonce: [0; 12],
            payload_len: 16,
        }
        .encode();
        bytes[4] = 9;
        assert_eq!(
            RecordHeader::decode(&bytes),
            Err(FormatError::UnknownRecordType(9))
        );
        bytes[4] = 2;
        bytes[36..40].copy_from_slice(&(MAX_PAYLOAD_LEN + 1).to_le_bytes());
        assert!(matches!(
            RecordHeader::decode(&bytes),
            Err(FormatError::PayloadTooLong(_))
        ));
        assert!(matches!(
            SegmentHeader::decode(&[0; 10]),
            Err(FormatError::Truncated { .. })
        ));
    }
}
