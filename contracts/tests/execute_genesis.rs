//! Genesis checks and the store-failure contract of execution.

mod common;

use carnet_contracts::execute::*;
use carnet_contracts::*;
use common::*;

#[test]
fn genesis_app_hash_does_not_depend_on_file_order() {
    let mut a = MemoryState::new();
    let mut b = MemoryState::new();
    let mut reordered = genesis();
    reordered.administrations.reverse();
    reordered.officers.reverse();
    assert_eq!(
        apply_genesis(&mut a, &genesis()).unwrap(),
        apply_genesis(&mut b, &reordered).unwrap()
    );
    assert_eq!(a, b);
}

#[test]
fn genesis_is_refused_when_it_breaks_a_rule() {
    type Change = Box<dyn Fn(&mut Genesis)>;
    let cases: Vec<(&str, Change, &str)> = vec![
        (
            "empty chain id",
            Box::new(|g| g.chain_id.clear()),
            "chain_id",
        ),
        (
            "no administrations",
            Box::new(|g| g.administrations.clear()),
            "administrations",
        ),
        (
            "bad code",
            Box::new(|g| g.administrations[0].code = code("xa")),
            "upper-case",
        ),
        (
            "code twice",
            Box::new(|g| g.administrations[1].code = code("XA")),
            "appears twice",
        ),
        (
            "node key twice",
            Box::new(|g| g.administrations[1].node_key = g.administrations[0].node_key),
            "node key",
        ),
        (
            "officer of nobody",
            Box::new(|g| g.officers[0].administration = code("QQ")),
            "not an administration",
        ),
        (
            "officer twice",
            Box::new(|g| g.officers[1].key = g.officers[0].key),
            "officer",
        ),
    ];
    for (name, change, needle) in cases {
        let mut g = genesis();
        change(&mut g);
        let mut state = MemoryState::new();
        let err = apply_genesis(&mut state, &g).unwrap_err();
        assert!(err.to_string().contains(needle), "{name}: {err}");
        assert!(
            state.entries().is_empty(),
            "{name}: a refused genesis writes nothing"
        );
    }
}

#[test]
fn genesis_is_applied_only_once() {
    let mut state = MemoryState::new();
    apply_genesis(&mut state, &genesis()).unwrap();
    assert!(matches!(
        apply_genesis(&mut state, &genesis()),
        Err(ExecError::Genesis(_))
    ));
}

/// A store whose reads fail after a number of successful ones.
struct FailingStore {
    inner: MemoryState,
    reads_left: std::cell::Cell<usize>,
}

impl StateStore for FailingStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        if self.reads_left.get() == 0 {
            return Err(StoreError::Failed("disk gone".into()));
        }
        self.reads_left.set(self.reads_left.get() - 1);
        self.inner.get(key)
    }
    fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.inner.put(key, value)
    }
    fn delete(&mut self, key: Vec<u8>) {
        self.inner.delete(key)
    }
    fn scan_prefix_from(
        &self,
        prefix: &[u8],
        start: &[u8],
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        self.inner.scan_prefix_from(prefix, start, limit)
    }
}

#[test]
fn a_store_failure_aborts_the_block_and_writes_nothing() {
    let base = state_with_document();
    let txs = [
        sign(submit_tx(2, &["XB"], 1)),
        sign(access_tx("XB", XB_OFFICER, 1, 2)),
    ];
    for reads in 0..12 {
        let mut store = FailingStore {
            inner: base.clone(),
            reads_left: std::cell::Cell::new(reads),
        };
        match execute_block(&mut store, &ctx(2, T0), &txs) {
            Err(ExecError::Store(StoreError::Failed(m))) => {
                assert_eq!(m, "disk gone");
                assert_eq!(store.inner, base, "after {reads} reads");
            }
            Err(other) => panic!("unexpected {other}"),
            Ok(_) => assert!(reads >= 6, "succeeded with only {reads} reads"),
        }
    }
}

#[test]
fn corrupted_record_is_reported_not_treated_as_missing() {
    let mut state = state_with_document();
    let key = [b"member/code/".as_slice(), b"XB"].concat();
    state.put(key, vec![0xFF; 3]);
    let outcome = execute_block(
        &mut state.clone(),
        &ctx(2, T0),
        &[sign(submit_tx(2, &["XB"], 1))],
    );
    assert!(matches!(outcome, Err(ExecError::Corrupt(_))), "{outcome:?}");
    assert!(matches!(
        query::administration(&state, &code("XB")),
        Err(ExecError::Corrupt(_))
    ));
}
