//! Durable storage of a node: one RocksDB database with a column family per kind of
//! record (finalized blocks, indexes, ciphertexts, contract state, consensus safety
//! records, the key vault, the key-delivery outbox, metadata).
//!
//! Everything a finalized block changes is written in ONE `WriteBatch` with one WAL
//! sync, so the disk never holds a block without its state or the reverse. Safety
//! records are written synced before any vote that follows them leaves the node.
//! This module must never swallow a write error: callers treat it as fatal
//! ([`fatal`]). It must never start on a store whose head is inconsistent.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use carnet_consensus::{Block, Certificate, Digest, Height, SafetyRecord, View};
use rocksdb::{
    ColumnFamilyDescriptor, Direction, IteratorMode, Options, ReadOptions, WriteBatch,
    WriteOptions, DB,
};
use serde::{Deserialize, Serialize};

pub const CF_BLOCKS: &str = "blocks";
pub const CF_BLOCK_INDEX: &str = "block_index";
pub const CF_TRANSACTIONS: &str = "transactions";
pub const CF_PAYLOADS: &str = "payloads";
pub const CF_STATE: &str = "state";
pub const CF_SAFETY: &str = "safety";
pub const CF_VAULT: &str = "vault";
pub const CF_OUTBOX: &str = "outbox";
pub const CF_META: &str = "meta";
pub const ALL_CFS: [&str; 9] = [
    CF_BLOCKS,
    CF_BLOCK_INDEX,
    CF_TRANSACTIONS,
    CF_PAYLOADS,
    CF_STATE,
    CF_SAFETY,
    CF_VAULT,
    CF_OUTBOX,
    CF_META,
];

const META_HEAD: &[u8] = b"head";
const META_GENESIS: &[u8] = b"genesis";
const META_GENESIS_HEAD: &[u8] = b"genesis_head";
/// Largest record this module decodes from disk (a block with its certificate).
const MAX_RECORD_BYTES: u64 = 64 * 1024 * 1024;
/// RocksDB's one block cache (data, index and filter blocks of every column family).
const BLOCK_CACHE_BYTES: usize = 64 * 1024 * 1024;
/// The block cache in 2^4 shards of 4 MiB (see [`Store::open`]).
const BLOCK_CACHE_SHARD_BITS: i32 = 4;
/// All memtables together; past it the largest is flushed.
const MEMTABLE_BUDGET_BYTES: usize = 64 * 1024 * 1024;

/// Errors of the store. Any write error leaves the node inoperable.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("rocksdb: {0}")]
    Db(#[from] rocksdb::Error),
    #[error("corrupted store: {0}")]
    Corrupted(String),
    #[error("store belongs to another network: {0}")]
    WrongGenesis(String),
}

/// Logs loudly and exits the process non-zero. Used when a durable write fails: carrying
/// on would let the node act on state the disk does not hold.
pub fn fatal(what: &str, err: &dyn std::fmt::Display) -> ! {
    tracing::error!(target: "carnet::fatal", "FATAL: {what}: {err}; stopping the node");
    eprintln!("carnet-node: FATAL: {what}: {err}; stopping the node");
    std::process::exit(70)
}

/// A finalized block as stored at its height.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredBlock {
    pub block: Block,
    /// The finalization that made this block final. For a block finalized as the
    /// ancestor of another, the certificate names that descendant's digest.
    pub finalization: Certificate,
    /// Application hash after executing this block.
    pub app_hash: [u8; 32],
    pub time_ms: u64,
    pub tx_count: u32,
    /// For the last block of an epoch finalized through empty boundary blocks (ADR
    /// 0011): those blocks, parent-linked from this one up to the block `finalization`
    /// certifies. Empty otherwise.
    pub boundary: Vec<Block>,
}

/// The last finalized block (height 0 is genesis).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    pub height: Height,
    pub digest: Digest,
    pub view: View,
    pub app_hash: [u8; 32],
    pub time_ms: u64,
}

/// Where a transaction landed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxLocation {
    pub height: Height,
    pub index: u32,
}

/// Key/value pairs read from a column family, in key order.
pub type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// Everything one finalized block writes, applied atomically by [`Store::commit_block`].
#[derive(Debug, Default)]
pub struct BlockWrite {
    pub stored: Option<StoredBlock>,
    pub tx_locations: Vec<([u8; 32], TxLocation)>,
    /// Contract state changes (None = delete).
    pub state: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    pub payloads: Vec<([u8; 32], Vec<u8>)>,
    pub outbox: Vec<(Vec<u8>, Vec<u8>)>,
    /// Metadata records written with the block (e.g. pending erasures).
    pub meta: Vec<(Vec<u8>, Vec<u8>)>,
}

fn decode<T: serde::de::DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T, StorageError> {
    decode_limited(bytes, MAX_RECORD_BYTES)
        .map_err(|e| StorageError::Corrupted(format!("{what}: {e}")))
}

/// Canonical bincode decoding of a record of at most `limit` bytes.
pub(crate) fn decode_limited<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    limit: u64,
) -> Result<T, bincode::Error> {
    use bincode::Options as _;
    bincode::DefaultOptions::new()
        .with_fixint_encoding()
        .with_little_endian()
        .with_limit(limit)
        .deserialize(bytes)
}

/// Canonical bincode (fixed-width little endian), as everywhere in Carnet.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    use bincode::Options as _;
    bincode::DefaultOptions::new()
        .with_fixint_encoding()
        .with_little_endian()
        .serialize(value)
        .unwrap_or_default()
}

/// The node's RocksDB database.
pub struct Store {
    db: DB,
    /// Serializes ciphertext writes against erasure: a ciphertext fetched from a peer
    /// is never stored once its document is erased.
    payload_lock: std::sync::Mutex<()>,
}

/// Meta key marking a ciphertext hash as erased (never stored again).
fn erased_payload_key(hash: &[u8; 32]) -> Vec<u8> {
    let mut key = b"erased_ct/".to_vec();
    key.extend_from_slice(hash);
    key
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

fn synced() -> WriteOptions {
    let mut w = WriteOptions::default();
    w.set_sync(true);
    w
}

/// Space taken by one column family (see [`Store::stats`]).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ColumnFamilyStats {
    pub name: String,
    pub live_sst_bytes: u64,
    pub memtable_bytes: u64,
    pub estimated_keys: u64,
}

/// The smallest key greater than every key starting with `prefix`; `None` when there
/// is none (an empty prefix, or all 0xFF bytes).
pub(crate) fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut bound = prefix.to_vec();
    while let Some(last) = bound.pop() {
        if last < u8::MAX {
            bound.push(last + 1);
            return Some(bound);
        }
    }
    None
}

fn checked_read() -> ReadOptions {
    let mut r = ReadOptions::default();
    r.set_verify_checksums(true);
    r
}

impl Store {
    /// Opens (creating if needed) the store with paranoid checks. Does not check the
    /// head; call [`Store::check_consistency`] once genesis is known.
    pub fn open(path: &Path) -> Result<Arc<Self>, StorageError> {
        let mut options = Options::default();
        options.create_if_missing(true);
        options.create_missing_column_families(true);
        options.set_paranoid_checks(true);
        options.set_atomic_flush(true);
        options.set_max_open_files(512);
        // Erasure (docs/erasure.md): WAL files are never recycled (a reused file keeps
        // old bytes) nor archived, and stay small so that obsolete ones, which may hold
        // destroyed keys, are deleted as soon as the memtables are flushed.
        options.set_recycle_log_file_num(0);
        options.set_wal_ttl_seconds(0);
        options.set_wal_size_limit_mb(0);
        options.set_max_total_wal_size(64 * 1024 * 1024);
        options.set_keep_log_file_num(10);
        // Memory (docs/performance.md, "Memory"): one block cache for every column
        // family, holding index and filter blocks too (else each open table keeps its
        // own outside any bound, and RSS grows with the store), and one budget for all
        // memtables.
        options.set_db_write_buffer_size(MEMTABLE_BUDGET_BYTES);
        // Few shards: RocksDB's default for 64 MiB is 64 shards of 1 MiB, which cannot
        // keep a filter block of a large table; such blocks were read from disk again on
        // nearly every lookup (26 % of a catching-up node's CPU, session 8).
        let mut cache_options = rocksdb::LruCacheOptions::default();
        cache_options.set_capacity(BLOCK_CACHE_BYTES);
        cache_options.set_num_shard_bits(BLOCK_CACHE_SHARD_BITS);
        let cache = rocksdb::Cache::new_lru_cache_opts(&cache_options);
        let cfs = ALL_CFS.iter().map(|name| {
            let mut cf = Options::default();
            cf.set_paranoid_checks(true);
            let mut table = rocksdb::BlockBasedOptions::default();
            table.set_block_cache(&cache);
            table.set_cache_index_and_filter_blocks(true);
            table.set_pin_l0_filter_and_index_blocks_in_cache(true);
            // Index and filter in partitions of 4 KiB: a lookup loads the partition it
            // needs, not a table-sized block; the small top level of each stays pinned.
            table.set_index_type(rocksdb::BlockBasedIndexType::TwoLevelIndexSearch);
            table.set_partition_filters(true);
            table.set_metadata_block_size(4096);
            table.set_pin_top_level_index_and_filter(true);
            table.set_format_version(5);
            if [CF_STATE, CF_TRANSACTIONS, CF_PAYLOADS, CF_VAULT, CF_META].contains(name) {
                // Point lookups, many of them for absent keys (replay checks, "do we
                // hold this ciphertext", "was it erased", vault misses): a bloom filter
                // answers those without reading a data block.
                table.set_bloom_filter(10.0, false);
            }
            if *name == CF_PAYLOADS {
                // 2 KiB values read one at a time: larger blocks keep the index (in the
                // cache) a quarter of the size.
                table.set_block_size(16 * 1024);
            }
            cf.set_block_based_table_factory(&table);
            cf.set_write_buffer_size(if *name == CF_PAYLOADS {
                MEMTABLE_BUDGET_BYTES / 2
            } else {
                MEMTABLE_BUDGET_BYTES / 4
            });
            if *name == CF_PAYLOADS {
                cf.set_compression_type(rocksdb::DBCompressionType::None);
            } else if *name == CF_OUTBOX {
                // A queue: every entry is deleted once delivered. Files dense with
                // tombstones are compacted early so that scans do not wade through them.
                cf.set_compression_type(rocksdb::DBCompressionType::Lz4);
                cf.add_compact_on_deletion_collector_factory(1024, 512, 0.5);
            } else {
                cf.set_compression_type(rocksdb::DBCompressionType::Lz4);
            }
            ColumnFamilyDescriptor::new(*name, cf)
        });
        let db = DB::open_cf_descriptors(&options, path, cfs)?;
        Ok(Arc::new(Self {
            db,
            payload_lock: std::sync::Mutex::new(()),
        }))
    }

    fn cf(&self, name: &str) -> &rocksdb::ColumnFamily {
        // Every name used here is in ALL_CFS, which `open` creates.
        match self.db.cf_handle(name) {
            Some(cf) => cf,
            None => fatal("column family missing", &name),
        }
    }

    pub fn get_raw(&self, cf: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.db.get_cf_opt(self.cf(cf), key, &checked_read())?)
    }

    /// Unsynced single write (vault, payloads, outbox bookkeeping): durable with the
    /// next synced write; losing it on a crash is harmless (re-delivered / refetched).
    pub fn put_raw(&self, cf: &str, key: &[u8], value: &[u8]) -> Result<(), StorageError> {
        Ok(self.db.put_cf(self.cf(cf), key, value)?)
    }

    /// Synced single write.
    pub fn put_raw_synced(&self, cf: &str, key: &[u8], value: &[u8]) -> Result<(), StorageError> {
        let mut batch = WriteBatch::default();
        batch.put_cf(self.cf(cf), key, value);
        Ok(self.db.write_opt(batch, &synced())?)
    }

    /// Many puts into one column family as ONE synced write batch (one WAL sync for all
    /// of them: the vault's group commit). All or nothing.
    pub fn put_many_synced<K, V>(&self, cf: &str, entries: &[(K, V)]) -> Result<(), StorageError>
    where
        K: AsRef<[u8]>,
        V: AsRef<[u8]>,
    {
        let handle = self.cf(cf);
        let mut batch = WriteBatch::default();
        for (key, value) in entries {
            batch.put_cf(handle, key, value);
        }
        Ok(self.db.write_opt(batch, &synced())?)
    }

    pub fn delete_raw(&self, cf: &str, key: &[u8]) -> Result<(), StorageError> {
        Ok(self.db.delete_cf(self.cf(cf), key)?)
    }

    /// Synced delete, for secrets that must be gone (vault).
    pub fn delete_raw_synced(&self, cf: &str, key: &[u8]) -> Result<(), StorageError> {
        let mut batch = WriteBatch::default();
        batch.delete_cf(self.cf(cf), key);
        self.db.write_opt(batch, &synced())?;
        Ok(())
    }

    /// Flushes memtables of every column family to SST files.
    pub fn flush(&self) -> Result<(), StorageError> {
        for name in ALL_CFS {
            self.db.flush_cf(self.cf(name))?;
        }
        Ok(())
    }

    /// Per column family: live SST bytes, memtable bytes and RocksDB's estimate of its
    /// keys (what `carnet-node store-stats` prints).
    pub fn stats(&self) -> Result<Vec<ColumnFamilyStats>, StorageError> {
        let property = |cf: &str, name: &str| -> Result<u64, StorageError> {
            Ok(self
                .db
                .property_int_value_cf(self.cf(cf), name)?
                .unwrap_or_default())
        };
        ALL_CFS
            .iter()
            .map(|name| {
                Ok(ColumnFamilyStats {
                    name: name.to_string(),
                    live_sst_bytes: property(name, "rocksdb.live-sst-files-size")?,
                    memtable_bytes: property(name, "rocksdb.cur-size-all-mem-tables")?,
                    estimated_keys: property(name, "rocksdb.estimate-num-keys")?,
                })
            })
            .collect()
    }

    /// Compacts a column family so deleted values leave the SST files.
    pub fn compact(&self, cf: &str) {
        self.db
            .compact_range_cf(self.cf(cf), None::<&[u8]>, None::<&[u8]>);
    }

    /// Stores ciphertexts (in one write batch) except those whose hash was erased.
    /// Returns, per entry in order, whether it was stored.
    pub fn put_payloads_unless_erased(
        &self,
        entries: &[([u8; 32], Vec<u8>)],
    ) -> Result<Vec<bool>, StorageError> {
        let _guard = self.payload_lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut batch = WriteBatch::default();
        let mut stored = Vec::with_capacity(entries.len());
        for (hash, ciphertext) in entries {
            let erased = self.get_raw(CF_META, &erased_payload_key(hash))?.is_some();
            if !erased {
                batch.put_cf(self.cf(CF_PAYLOADS), hash, ciphertext);
            }
            stored.push(!erased);
        }
        if !batch.is_empty() {
            self.db.write(batch)?;
        }
        Ok(stored)
    }

    /// Whether a ciphertext hash belongs to an erased document version.
    pub fn payload_erased(&self, hash: &[u8; 32]) -> Result<bool, StorageError> {
        Ok(self.get_raw(CF_META, &erased_payload_key(hash))?.is_some())
    }

    /// Deletes a ciphertext (synced) and marks its hash so it is never stored again.
    /// The bytes stay in SST/WAL files until [`Store::purge_deleted`].
    pub fn erase_payload(&self, hash: &[u8; 32]) -> Result<(), StorageError> {
        let _guard = self.payload_lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut batch = WriteBatch::default();
        batch.put_cf(self.cf(CF_META), erased_payload_key(hash), [1u8]);
        batch.delete_cf(self.cf(CF_PAYLOADS), hash);
        Ok(self.db.write_opt(batch, &synced())?)
    }

    /// Makes deleted values physically leave the disk: flushes every memtable (so the
    /// WAL files written before become obsolete and are deleted), compacts the given
    /// column families down to the bottommost level with forced rewriting (so no SST
    /// file keeps a deleted value), and syncs the new WAL. Files pinned by a live
    /// iterator are deleted when it ends.
    pub fn purge_deleted(&self, cfs: &[&str]) -> Result<(), StorageError> {
        let handles: Vec<&rocksdb::ColumnFamily> = ALL_CFS.iter().map(|n| self.cf(n)).collect();
        let mut flush = rocksdb::FlushOptions::default();
        flush.set_wait(true);
        self.db.flush_cfs_opt(&handles, &flush)?;
        let mut compact = rocksdb::CompactOptions::default();
        compact.set_exclusive_manual_compaction(true);
        compact.set_bottommost_level_compaction(rocksdb::BottommostLevelCompaction::Force);
        for name in cfs {
            self.db
                .compact_range_cf_opt(self.cf(name), None::<&[u8]>, None::<&[u8]>, &compact);
        }
        self.db.flush_wal(true)?;
        Ok(())
    }

    /// Key/value pairs whose key starts with `prefix`, at most `limit` of them.
    pub fn scan_prefix(
        &self,
        cf: &str,
        prefix: &[u8],
        limit: usize,
    ) -> Result<Entries, StorageError> {
        self.scan_prefix_from(cf, prefix, prefix, limit)
    }

    /// [`Store::scan_prefix`] from the first key at or after `start` (a seek: the keys
    /// before it, deleted ones included, are never walked).
    pub fn scan_prefix_from(
        &self,
        cf: &str,
        prefix: &[u8],
        start: &[u8],
        limit: usize,
    ) -> Result<Entries, StorageError> {
        // The upper bound keeps a seek from walking past the prefix over deleted keys
        // (the outbox deletes every entry it delivers: a seek into an empty prefix
        // would otherwise skip every tombstone after it to find the next live key).
        let mut read = checked_read();
        if let Some(bound) = prefix_successor(prefix) {
            read.set_iterate_upper_bound(bound);
        }
        let iter = self.db.iterator_cf_opt(
            self.cf(cf),
            read,
            IteratorMode::From(start.max(prefix), Direction::Forward),
        );
        let mut out = Vec::new();
        for item in iter {
            let (k, v) = item?;
            if !k.starts_with(prefix) || out.len() >= limit {
                break;
            }
            out.push((k.to_vec(), v.to_vec()));
        }
        Ok(out)
    }

    // ---- consensus safety ----

    /// Persists a safety record with a WAL sync. Must complete before any vote that
    /// follows it is sent.
    pub fn put_safety(&self, record: &SafetyRecord) -> Result<(), StorageError> {
        self.put_raw_synced(CF_SAFETY, &record.view.to_be_bytes(), &encode(record))
    }

    /// Deletes every safety record (synced): at an epoch boundary, once the previous
    /// epoch's engine is gone for good, before the next one signs anything.
    pub fn clear_safety(&self) -> Result<(), StorageError> {
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(self.cf(CF_SAFETY), &[][..], &[0xFFu8; 9][..]);
        self.db.write_opt(batch, &synced())?;
        Ok(())
    }

    /// Safety records of views above `after_view`, in view order.
    pub fn safety_records(&self, after_view: View) -> Result<Vec<SafetyRecord>, StorageError> {
        let start = after_view.saturating_add(1).to_be_bytes();
        let iter = self.db.iterator_cf_opt(
            self.cf(CF_SAFETY),
            checked_read(),
            IteratorMode::From(&start, Direction::Forward),
        );
        let mut out = Vec::new();
        for item in iter {
            let (_, v) = item?;
            out.push(decode::<SafetyRecord>("safety record", &v)?);
        }
        Ok(out)
    }

    // ---- blocks ----

    pub fn head(&self) -> Result<Option<Head>, StorageError> {
        match self.get_raw(CF_META, META_HEAD)? {
            None => Ok(None),
            Some(bytes) => Ok(Some(decode("head", &bytes)?)),
        }
    }

    /// The head as it was right after genesis (height 0).
    pub fn genesis_head(&self) -> Result<Option<Head>, StorageError> {
        match self.get_raw(CF_META, META_GENESIS_HEAD)? {
            None => Ok(None),
            Some(bytes) => Ok(Some(decode("genesis head", &bytes)?)),
        }
    }

    pub fn block(&self, height: Height) -> Result<Option<StoredBlock>, StorageError> {
        match self.get_raw(CF_BLOCKS, &height.to_be_bytes())? {
            None => Ok(None),
            Some(bytes) => Ok(Some(decode("block", &bytes)?)),
        }
    }

    pub fn height_of(&self, digest: &Digest) -> Result<Option<Height>, StorageError> {
        match self.get_raw(CF_BLOCK_INDEX, digest)? {
            None => Ok(None),
            Some(bytes) => {
                let arr: [u8; 8] = bytes
                    .as_slice()
                    .try_into()
                    .map_err(|_| StorageError::Corrupted("block index entry".into()))?;
                Ok(Some(u64::from_be_bytes(arr)))
            }
        }
    }

    pub fn tx_location(&self, hash: &[u8; 32]) -> Result<Option<TxLocation>, StorageError> {
        match self.get_raw(CF_TRANSACTIONS, hash)? {
            None => Ok(None),
            Some(bytes) => Ok(Some(decode("tx location", &bytes)?)),
        }
    }

    pub fn payload(&self, hash: &[u8; 32]) -> Result<Option<Vec<u8>>, StorageError> {
        self.get_raw(CF_PAYLOADS, hash)
    }

    /// Whether a ciphertext is stored (without copying it out).
    pub fn payload_exists(&self, hash: &[u8; 32]) -> Result<bool, StorageError> {
        Ok(self
            .db
            .get_pinned_cf_opt(self.cf(CF_PAYLOADS), hash, &checked_read())?
            .is_some())
    }

    pub fn genesis_marker(&self) -> Result<Option<Vec<u8>>, StorageError> {
        self.get_raw(CF_META, META_GENESIS)
    }

    /// Writes genesis state and the genesis head in one synced batch.
    pub fn commit_genesis(
        &self,
        marker: &[u8],
        state: &BTreeMap<Vec<u8>, Option<Vec<u8>>>,
        head: &Head,
    ) -> Result<(), StorageError> {
        let mut batch = WriteBatch::default();
        let cf_state = self.cf(CF_STATE);
        for (k, v) in state {
            match v {
                Some(v) => batch.put_cf(cf_state, k, v),
                None => batch.delete_cf(cf_state, k),
            }
        }
        batch.put_cf(self.cf(CF_META), META_GENESIS, marker);
        batch.put_cf(self.cf(CF_META), META_HEAD, encode(head));
        batch.put_cf(self.cf(CF_META), META_GENESIS_HEAD, encode(head));
        batch.put_cf(
            self.cf(CF_BLOCK_INDEX),
            head.digest,
            head.height.to_be_bytes(),
        );
        Ok(self.db.write_opt(batch, &synced())?)
    }

    /// Writes a finalized block and everything it changes in one batch with one WAL
    /// sync, and moves the head. Safety records of views at or below the block's view
    /// are pruned in the same batch.
    pub fn commit_block(&self, write: BlockWrite) -> Result<Head, StorageError> {
        let stored = write
            .stored
            .ok_or_else(|| StorageError::Corrupted("commit without a block".into()))?;
        let height = stored.block.height;
        let digest = stored.block.digest();
        let head = Head {
            height,
            digest,
            view: stored.block.view,
            app_hash: stored.app_hash,
            time_ms: stored.time_ms,
        };
        let mut batch = WriteBatch::default();
        batch.put_cf(self.cf(CF_BLOCKS), height.to_be_bytes(), encode(&stored));
        batch.put_cf(self.cf(CF_BLOCK_INDEX), digest, height.to_be_bytes());
        let cf_tx = self.cf(CF_TRANSACTIONS);
        for (hash, location) in &write.tx_locations {
            batch.put_cf(cf_tx, hash, encode(location));
        }
        let cf_state = self.cf(CF_STATE);
        for (k, v) in &write.state {
            match v {
                Some(v) => batch.put_cf(cf_state, k, v),
                None => batch.delete_cf(cf_state, k),
            }
        }
        let cf_payloads = self.cf(CF_PAYLOADS);
        for (hash, bytes) in &write.payloads {
            batch.put_cf(cf_payloads, hash, bytes);
        }
        let cf_outbox = self.cf(CF_OUTBOX);
        for (k, v) in &write.outbox {
            batch.put_cf(cf_outbox, k, v);
        }
        let cf_meta = self.cf(CF_META);
        for (k, v) in &write.meta {
            batch.put_cf(cf_meta, k, v);
        }
        // The engine never votes again at or below a finalized view.
        batch.delete_range_cf(
            self.cf(CF_SAFETY),
            0u64.to_be_bytes(),
            stored.block.view.saturating_add(1).to_be_bytes(),
        );
        batch.put_cf(self.cf(CF_META), META_HEAD, encode(&head));
        self.db.write_opt(batch, &synced())?;
        Ok(head)
    }

    /// Refuses a store whose head does not agree with its block, index and state.
    /// `state_app_hash` is the application hash read back from the state column family.
    pub fn check_consistency(
        &self,
        head: &Head,
        state_app_hash: [u8; 32],
    ) -> Result<(), StorageError> {
        if self.height_of(&head.digest)? != Some(head.height) {
            return Err(StorageError::Corrupted(format!(
                "head block {} at height {} is missing from the block index",
                hex::encode(head.digest),
                head.height
            )));
        }
        if head.height > 0 {
            let stored = self.block(head.height)?.ok_or_else(|| {
                StorageError::Corrupted(format!("head block at height {} is missing", head.height))
            })?;
            if stored.block.digest() != head.digest {
                return Err(StorageError::Corrupted(format!(
                    "block at height {} hashes to {}, head says {}",
                    head.height,
                    hex::encode(stored.block.digest()),
                    hex::encode(head.digest)
                )));
            }
            if stored.app_hash != head.app_hash {
                return Err(StorageError::Corrupted(format!(
                    "app hash of block {} differs from the head's",
                    head.height
                )));
            }
        }
        if state_app_hash != head.app_hash {
            return Err(StorageError::Corrupted(format!(
                "state app hash {} differs from head app hash {}",
                hex::encode(state_app_hash),
                hex::encode(head.app_hash)
            )));
        }
        // Read every state entry once so RocksDB verifies its block checksums.
        let iter = self
            .db
            .iterator_cf_opt(self.cf(CF_STATE), checked_read(), IteratorMode::Start);
        for item in iter {
            item?;
        }
        Ok(())
    }
}

/// Read-through overlay over the committed `state` column family: contract execution
/// writes here, and the collected changes go into the block's single write batch.
pub struct StateOverlay<'a> {
    store: &'a Store,
    pub changes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

impl std::fmt::Debug for StateOverlay<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateOverlay")
            .field("changes", &self.changes.len())
            .finish()
    }
}

impl<'a> StateOverlay<'a> {
    pub fn new(store: &'a Store) -> Self {
        Self {
            store,
            changes: BTreeMap::new(),
        }
    }

    pub fn read(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        if let Some(v) = self.changes.get(key) {
            return Ok(v.clone());
        }
        self.store.get_raw(CF_STATE, key)
    }

    pub fn write(&mut self, key: &[u8], value: Option<Vec<u8>>) {
        self.changes.insert(key.to_vec(), value);
    }

    /// Entries whose key starts with `prefix`, committed state merged with the overlay.
    pub fn scan(&self, prefix: &[u8], limit: usize) -> Result<Entries, StorageError> {
        self.scan_from(prefix, prefix, limit)
    }

    /// [`StateOverlay::scan`] from the first key at or after `start`.
    pub fn scan_from(
        &self,
        prefix: &[u8],
        start: &[u8],
        limit: usize,
    ) -> Result<Entries, StorageError> {
        let start = start.max(prefix);
        let mut merged: BTreeMap<Vec<u8>, Vec<u8>> = self
            .store
            .scan_prefix_from(
                CF_STATE,
                prefix,
                start,
                limit.saturating_add(self.changes.len()),
            )?
            .into_iter()
            .collect();
        for (k, v) in self.changes.range(start.to_vec()..) {
            if !k.starts_with(prefix) {
                break;
            }
            match v {
                Some(v) => {
                    merged.insert(k.clone(), v.clone());
                }
                None => {
                    merged.remove(k);
                }
            }
        }
        Ok(merged.into_iter().take(limit).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use carnet_consensus::VoteKind;

    #[test]
    fn prefix_scans_stay_inside_their_prefix() {
        assert_eq!(prefix_successor(&[1, 2]), Some(vec![1, 3]));
        assert_eq!(prefix_successor(&[1, 255]), Some(vec![2]));
        assert_eq!(prefix_successor(&[255, 255]), None);
        assert_eq!(prefix_successor(&[]), None);
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        for key in [&[1u8, 0][..], &[1, 255], &[2], &[2, 0], &[255, 255, 1]] {
            store.put_raw(CF_OUTBOX, key, b"v").unwrap();
        }
        store.db.delete_cf(store.cf(CF_OUTBOX), [2u8]).unwrap();
        let keys = |prefix: &[u8]| -> Vec<Vec<u8>> {
            let entries = store.scan_prefix(CF_OUTBOX, prefix, 10).unwrap();
            entries.into_iter().map(|(k, _)| k).collect()
        };
        assert_eq!(keys(&[1]), vec![vec![1, 0], vec![1, 255]]);
        assert_eq!(keys(&[2]), vec![vec![2, 0]]);
        assert_eq!(keys(&[3]), Vec::<Vec<u8>>::new());
        assert_eq!(keys(&[255, 255]), vec![vec![255, 255, 1]]);
        assert_eq!(keys(&[]).len(), 4);
        // Once flushed and compacted, the deleted key is gone and the four live ones
        // are counted in the outbox's files.
        store.purge_deleted(&ALL_CFS).unwrap();
        let stats = store.stats().unwrap();
        assert_eq!(stats.len(), ALL_CFS.len());
        let outbox = stats.iter().find(|s| s.name == CF_OUTBOX).unwrap();
        assert_eq!(outbox.estimated_keys, 4);
        assert!(outbox.live_sst_bytes > 0);
    }

    fn cert(view: View, digest: Digest) -> Certificate {
        Certificate {
            kind: VoteKind::Finalize,
            view,
            digest: Some(digest),
            signers: vec![0b111],
            signatures: vec![vec![1; 64], vec![2; 64], vec![3; 64]],
        }
    }

    fn genesis_head() -> Head {
        Head {
            height: 0,
            digest: [9; 32],
            view: 0,
            app_hash: [1; 32],
            time_ms: 1000,
        }
    }

    fn block_write(height: u64, parent: Digest, app_hash: [u8; 32]) -> BlockWrite {
        let block = Block {
            view: height,
            height,
            parent,
            payload: vec![height as u8; 10],
        };
        let digest = block.digest();
        let mut state = BTreeMap::new();
        state.insert(b"app".to_vec(), Some(app_hash.to_vec()));
        state.insert(format!("k{height}").into_bytes(), Some(vec![height as u8]));
        BlockWrite {
            stored: Some(StoredBlock {
                boundary: Vec::new(),
                block,
                finalization: cert(height, digest),
                app_hash,
                time_ms: 1000 + height,
                tx_count: 1,
            }),
            tx_locations: vec![([height as u8; 32], TxLocation { height, index: 0 })],
            state,
            payloads: vec![([0xAA; 32], vec![1, 2, 3])],
            outbox: vec![],
            meta: vec![],
        }
    }

    fn state_app_hash(store: &Store) -> [u8; 32] {
        store
            .get_raw(CF_STATE, b"app")
            .ok()
            .flatten()
            .map(|v| v.try_into().unwrap())
            .unwrap_or([1; 32])
    }

    #[test]
    fn a_block_and_everything_it_changes_survive_reopen_together() {
        let dir = tempfile::tempdir().unwrap();
        let head1;
        {
            let store = Store::open(dir.path()).unwrap();
            store
                .commit_genesis(b"g", &BTreeMap::new(), &genesis_head())
                .unwrap();
            store
                .put_safety(&SafetyRecord {
                    view: 1,
                    notarized: Some([5; 32]),
                    nullified: false,
                    finalized: None,
                })
                .unwrap();
            store
                .put_safety(&SafetyRecord {
                    view: 3,
                    notarized: None,
                    nullified: true,
                    finalized: None,
                })
                .unwrap();
            head1 = store
                .commit_block(block_write(1, genesis_head().digest, [2; 32]))
                .unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        let head = store.head().unwrap().unwrap();
        assert_eq!(head, head1);
        let stored = store.block(1).unwrap().unwrap();
        assert_eq!(stored.block.digest(), head.digest);
        assert_eq!(store.height_of(&head.digest).unwrap(), Some(1));
        assert_eq!(
            store.tx_location(&[1; 32]).unwrap(),
            Some(TxLocation {
                height: 1,
                index: 0
            })
        );
        assert_eq!(store.payload(&[0xAA; 32]).unwrap(), Some(vec![1, 2, 3]));
        assert_eq!(store.get_raw(CF_STATE, b"k1").unwrap(), Some(vec![1]));
        store
            .check_consistency(&head, state_app_hash(&store))
            .unwrap();
        // Safety records at or below the finalized view are pruned in the same batch.
        let safety = store.safety_records(0).unwrap();
        assert_eq!(safety.iter().map(|r| r.view).collect::<Vec<_>>(), vec![3]);
    }

    #[test]
    fn overlay_changes_reach_disk_only_through_the_block_batch() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.put_raw(CF_STATE, b"doc/1", b"old").unwrap();
        store.put_raw(CF_STATE, b"doc/2", b"two").unwrap();
        let mut overlay = StateOverlay::new(&store);
        overlay.write(b"doc/1", Some(b"new".to_vec()));
        overlay.write(b"doc/2", None);
        overlay.write(b"doc/3", Some(b"three".to_vec()));
        assert_eq!(overlay.read(b"doc/1").unwrap(), Some(b"new".to_vec()));
        assert_eq!(overlay.read(b"doc/2").unwrap(), None);
        let scanned: Vec<Vec<u8>> = overlay
            .scan(b"doc/", 10)
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(scanned, vec![b"doc/1".to_vec(), b"doc/3".to_vec()]);
        // Nothing written yet.
        assert_eq!(
            store.get_raw(CF_STATE, b"doc/1").unwrap(),
            Some(b"old".to_vec())
        );
        assert_eq!(store.get_raw(CF_STATE, b"doc/3").unwrap(), None);
        let changes = overlay.changes;
        let mut write = block_write(1, [9; 32], [2; 32]);
        write.state.extend(changes);
        store.commit_block(write).unwrap();
        assert_eq!(
            store.get_raw(CF_STATE, b"doc/1").unwrap(),
            Some(b"new".to_vec())
        );
        assert_eq!(store.get_raw(CF_STATE, b"doc/2").unwrap(), None);
        assert_eq!(
            store.get_raw(CF_STATE, b"doc/3").unwrap(),
            Some(b"three".to_vec())
        );
    }

    #[test]
    fn inconsistent_head_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store
            .commit_genesis(b"g", &BTreeMap::new(), &genesis_head())
            .unwrap();
        let head = store
            .commit_block(block_write(1, genesis_head().digest, [2; 32]))
            .unwrap();
        store.check_consistency(&head, [2; 32]).unwrap();
        // State whose app hash differs from the head's.
        assert!(matches!(
            store.check_consistency(&head, [3; 32]),
            Err(StorageError::Corrupted(_))
        ));
        // A head naming a digest the block at that height does not have.
        let mut forged = head.clone();
        forged.digest = [7; 32];
        store
            .put_raw(CF_BLOCK_INDEX, &forged.digest, &1u64.to_be_bytes())
            .unwrap();
        assert!(matches!(
            store.check_consistency(&forged, [2; 32]),
            Err(StorageError::Corrupted(_))
        ));
        // A head whose block is missing.
        store.delete_raw(CF_BLOCKS, &1u64.to_be_bytes()).unwrap();
        assert!(matches!(
            store.check_consistency(&head, [2; 32]),
            Err(StorageError::Corrupted(_))
        ));
    }

    #[test]
    fn flipped_bytes_in_an_sst_file_refuse_the_store() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            store
                .commit_genesis(b"g", &BTreeMap::new(), &genesis_head())
                .unwrap();
            let mut write = block_write(1, genesis_head().digest, [2; 32]);
            for i in 0..2000u32 {
                write.state.insert(
                    format!("state/{i:06}").into_bytes(),
                    Some(vec![(i % 251) as u8; 100]),
                );
            }
            store.commit_block(write).unwrap();
            store.flush().unwrap();
        }
        let mut corrupted = 0;
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "sst") {
                let mut bytes = std::fs::read(&path).unwrap();
                if bytes.len() > 20_000 {
                    for b in &mut bytes[1000..1100] {
                        *b ^= 0xFF;
                    }
                    std::fs::write(&path, bytes).unwrap();
                    corrupted += 1;
                }
            }
        }
        assert!(corrupted > 0, "test needs an SST file with state in it");
        let outcome = Store::open(dir.path()).and_then(|store| {
            let head = store
                .head()?
                .ok_or_else(|| StorageError::Corrupted("no head".into()))?;
            let app = state_app_hash(&store);
            store.check_consistency(&head, app)
        });
        assert!(outcome.is_err(), "a corrupted store must be refused");
    }
}
