//! Exhaustive model check of the Simplex vote and certificate rules at n = 4, f = 1.
//!
//! Abstraction. Honest validators follow [`crate::rules`] exactly; the f Byzantine ones
//! sign every vote there is (they count toward every quorum). Proposals are arbitrary:
//! in every view any block on any earlier block (or genesis) may be offered, which
//! covers equivocating and malicious leaders. Any certificate that exists may be shown
//! to any honest validator (worst-case network).
//!
//! Reduction. The voting rules are per view: whether an honest validator may vote in
//! view v depends on its own record for v and on certificates (of view v and, for the
//! parent rule, of earlier views). Votes of view v never enable or disable anything in
//! earlier views, so every reachable global state is reachable by completing view 1,
//! then view 2, and so on. The explorer therefore enumerates, view by view, every
//! reachable multiset of honest records (validators are interchangeable within a view)
//! and keeps the distinct certificate outcomes; the product over views is then checked
//! against the safety invariants. Certificates are monotone in votes, so checking every
//! reachable state (not only final ones) is exhaustive for these safety properties.

use std::collections::{BTreeMap, BTreeSet};

use crate::rules::{may_finalize, may_notarize, may_nullify, record_is_consistent};
use crate::{SafetyRecord, ValidatorSet};

/// A block of the model: `parent == None` is genesis.
#[derive(Clone, Debug)]
struct ModelBlock {
    view: u64,
    parent: Option<usize>,
    height: u64,
}

/// Certificates that exist after some views.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
struct Outcome {
    notarized: BTreeSet<usize>,
    nullified: BTreeSet<u64>,
    finalized: BTreeSet<usize>,
}

struct Model {
    blocks: Vec<ModelBlock>,
    views: u64,
    honest: usize,
    byzantine: usize,
    quorum: usize,
    states_explored: u64,
    /// The finalize rule under test (a mutant in the checker's self-test).
    finalize_rule: fn(&SafetyRecord, &[u8; 32]) -> bool,
    /// First violation of a per-record invariant met while exploring.
    record_violation: Option<String>,
}

/// A safety record without its view, as an ordered key.
type RecordKey = (Option<[u8; 32]>, bool, Option<[u8; 32]>);

fn digest_of(block: usize) -> [u8; 32] {
    [block as u8 + 1; 32]
}

fn block_of(digest: &[u8; 32]) -> usize {
    usize::from(digest[0]) - 1
}

impl Model {
    /// Blocks: `variants[v - 1]` blocks per possible parent in view v.
    fn new(validators: &ValidatorSet, variants: &[usize]) -> Model {
        let mut blocks: Vec<ModelBlock> = Vec::new();
        for (i, &count) in variants.iter().enumerate() {
            let view = i as u64 + 1;
            let parents: Vec<Option<usize>> = std::iter::once(None)
                .chain((0..blocks.len()).map(Some))
                .collect();
            for parent in parents {
                let height = parent.map_or(0, |p| blocks[p].height) + 1;
                for _ in 0..count {
                    blocks.push(ModelBlock {
                        view,
                        parent,
                        height,
                    });
                }
            }
        }
        Model {
            blocks,
            views: variants.len() as u64,
            honest: validators.len() - validators.f(),
            byzantine: validators.f(),
            quorum: validators.quorum(),
            states_explored: 0,
            finalize_rule: may_finalize,
            record_violation: None,
        }
    }

    fn is_ancestor(&self, ancestor: usize, mut block: usize) -> bool {
        loop {
            if block == ancestor {
                return true;
            }
            match self.blocks[block].parent {
                Some(p) => block = p,
                None => return false,
            }
        }
    }

    /// The parent rule against the certificates of earlier views.
    fn parent_ok(&self, block: usize, context: &Outcome) -> bool {
        let b = &self.blocks[block];
        let parent_view = match b.parent {
            None => 0,
            Some(p) => {
                if !context.notarized.contains(&p) {
                    return false;
                }
                self.blocks[p].view
            }
        };
        (parent_view + 1..b.view).all(|w| context.nullified.contains(&w))
    }

    fn certified(&self, honest_votes: usize) -> bool {
        honest_votes + self.byzantine >= self.quorum
    }

    fn outcome_of(&self, view: u64, records: &[SafetyRecord]) -> Outcome {
        let mut out = Outcome::default();
        for (id, b) in self.blocks.iter().enumerate() {
            if b.view != view {
                continue;
            }
            let d = digest_of(id);
            let notarizes = records.iter().filter(|r| r.notarized == Some(d)).count();
            let finalizes = records.iter().filter(|r| r.finalized == Some(d)).count();
            if self.certified(notarizes) {
                out.notarized.insert(id);
            }
            if self.certified(finalizes) {
                out.finalized.insert(id);
            }
        }
        if self.certified(records.iter().filter(|r| r.nullified).count()) {
            out.nullified.insert(view);
        }
        out
    }

    /// Every reachable certificate outcome of `view` given earlier certificates.
    fn explore_view(&mut self, view: u64, context: &Outcome) -> BTreeSet<Outcome> {
        let start: Vec<SafetyRecord> = vec![
            SafetyRecord {
                view,
                ..SafetyRecord::default()
            };
            self.honest
        ];
        let in_view: Vec<usize> = (0..self.blocks.len())
            .filter(|&b| self.blocks[b].view == view)
            .collect();
        let mut seen: BTreeSet<Vec<RecordKey>> = BTreeSet::new();
        let mut stack = vec![start];
        let mut outcomes = BTreeSet::new();
        while let Some(records) = stack.pop() {
            let key: Vec<_> = records
                .iter()
                .map(|r| (r.notarized, r.nullified, r.finalized))
                .collect();
            if !seen.insert(key) {
                continue;
            }
            self.states_explored += 1;
            let current = self.outcome_of(view, &records);
            for (j, record) in records.iter().enumerate() {
                if records[..j].contains(record) {
                    continue; // interchangeable validators
                }
                let mut successors = Vec::new();
                if may_notarize(record) {
                    for &b in &in_view {
                        if self.parent_ok(b, context) {
                            let mut r = record.clone();
                            r.notarized = Some(digest_of(b));
                            successors.push(r);
                        }
                    }
                }
                if may_nullify(record) && !record.nullified {
                    let mut r = record.clone();
                    r.nullified = true;
                    successors.push(r);
                }
                for &b in &current.notarized {
                    let d = digest_of(b);
                    if (self.finalize_rule)(record, &d) {
                        let mut r = record.clone();
                        r.finalized = Some(d);
                        successors.push(r);
                    }
                }
                for r in successors {
                    if !record_is_consistent(&r) {
                        self.record_violation.get_or_insert(format!(
                            "an honest validator signed finalize and nullify in view {view}"
                        ));
                    }
                    if record.notarized.is_some() && r.notarized != record.notarized {
                        self.record_violation.get_or_insert(format!(
                            "an honest validator notarized twice in view {view}"
                        ));
                    }
                    let mut next = records.clone();
                    next[j] = r;
                    next.sort_by_key(|r| (r.notarized, r.nullified, r.finalized));
                    stack.push(next);
                }
            }
            outcomes.insert(current);
        }
        outcomes
    }

    fn check(&self, all: &Outcome) -> Result<(), String> {
        for view in 1..=self.views {
            let notarized: Vec<usize> = all
                .notarized
                .iter()
                .copied()
                .filter(|&b| self.blocks[b].view == view)
                .collect();
            if notarized.len() > 1 {
                return Err(format!(
                    "two blocks notarized in view {view}: {notarized:?}"
                ));
            }
        }
        for &f in &all.finalized {
            let fb = &self.blocks[f];
            if all.nullified.contains(&fb.view) {
                return Err(format!("view {} both finalized and nullified", fb.view));
            }
            for &g in &all.finalized {
                if f != g && self.blocks[g].height == fb.height {
                    return Err(format!(
                        "blocks {f} and {g} finalized at height {}",
                        fb.height
                    ));
                }
                if !self.is_ancestor(f, g) && !self.is_ancestor(g, f) {
                    return Err(format!("finalized blocks {f} and {g} conflict"));
                }
            }
            for &n in &all.notarized {
                if self.blocks[n].view > fb.view && !self.is_ancestor(f, n) {
                    return Err(format!(
                        "block {n} notarized after finalized block {f} without extending it"
                    ));
                }
            }
        }
        Ok(())
    }

    /// Explores all views; returns the first violation found, if any.
    fn run(&mut self) -> Result<u64, String> {
        let mut memo: BTreeMap<(u64, Outcome), BTreeSet<Outcome>> = BTreeMap::new();
        let mut frontier: BTreeSet<Outcome> = BTreeSet::from([Outcome::default()]);
        for view in 1..=self.views {
            let mut next = BTreeSet::new();
            for context in &frontier {
                let outcomes = match memo.get(&(view, context.clone())) {
                    Some(o) => o.clone(),
                    None => {
                        let o = self.explore_view(view, context);
                        memo.insert((view, context.clone()), o.clone());
                        o
                    }
                };
                for o in outcomes {
                    let mut all = context.clone();
                    all.notarized.extend(o.notarized);
                    all.nullified.extend(o.nullified);
                    all.finalized.extend(o.finalized);
                    self.check(&all)?;
                    if let Some(v) = &self.record_violation {
                        return Err(v.clone());
                    }
                    next.insert(all);
                }
            }
            frontier = next;
        }
        Ok(frontier.len() as u64)
    }
}

fn validators(n: usize) -> ValidatorSet {
    let keys = (0..n)
        .map(|i| ed25519_dalek::SigningKey::from_bytes(&[i as u8 + 1; 32]).verifying_key())
        .collect();
    ValidatorSet::new(keys).unwrap()
}

/// Five views. Views 1-3 offer two competing blocks (equivocation) on every possible
/// parent, views 4-5 one block on every possible parent: 107 blocks in all.
const SHAPE: &[usize] = &[2, 2, 2, 1, 1];

#[test]
fn model_check_n4_safety_holds() {
    let set = validators(4);
    assert_eq!((set.f(), set.quorum()), (1, 3));
    let mut model = Model::new(&set, SHAPE);
    let outcomes = model
        .run()
        .unwrap_or_else(|e| panic!("safety violated: {e}"));
    println!(
        "model check n=4: {} blocks, {} vote states, {} distinct certificate outcomes",
        model.blocks.len(),
        model.states_explored,
        outcomes
    );
    // The exploration really reaches finalizations and nullifications (non-vacuous).
    assert!(outcomes > 100);
}

#[test]
fn model_check_finds_fork_with_weak_quorum() {
    let mut set = validators(4);
    set.weaken_quorum_to_f_plus_one();
    let mut model = Model::new(&set, SHAPE);
    let err = model.run().expect_err("f+1 quorum must be caught");
    assert!(!err.is_empty());
}

#[test]
fn model_check_finds_violation_if_finalize_ignores_nullify() {
    // Self-test of the checker: a mutant finalize rule that forgets "did not nullify"
    // must be caught (honest record with both votes, then finalized + nullified view).
    let set = validators(4);
    let mut model = Model::new(&set, SHAPE);
    model.finalize_rule = |record, _| record.finalized.is_none();
    let err = model
        .run()
        .expect_err("mutant finalize rule must be caught");
    assert!(
        err.contains("finalize and nullify") || err.contains("both finalized and nullified"),
        "{err}"
    );
    assert_eq!(block_of(&digest_of(5)), 5);
}
