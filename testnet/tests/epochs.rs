//! The consensus validator set follows membership votes (issue 4, item 8; ADR 0011), on
//! real processes through the `carnet` CLI, with 8-block epochs:
//!
//! 1. XE, an administration outside genesis, is admitted by vote; its node catches up
//!    and, from the first epoch after the admission took effect, is a validator.
//! 2. XD's removal passes (XD votes for it too: four of five) with a delay of three
//!    epochs, and XD's node is killed: five validators need four votes, so until the
//!    removal reaches the set the chain goes on only because XE's node votes.
//! 3. From the first epoch after the removal took effect the set is XA, XB, XC, XE. Then
//!    XC's node is killed too: three of four is a quorum of the new set — under the
//!    genesis set (XA..XD, two of them dead) the chain would stop.
//!
//! The admission registers XE's first officer with it: XE's officer uses the CLI against
//! XE's node once the admission took effect.

mod common;

use common::*;
use std::path::Path;
use std::time::{Duration, Instant};

use carnet_testnet::{init, process};

const EPOCH_LENGTH_BLOCKS: u64 = 8;
/// Upper bound for a network condition to come about (not a performance assertion).
const SETTLE: Duration = Duration::from_secs(120);

/// `carnet status` of a node, or `None` while it does not answer.
fn status(profile: &Path) -> Option<serde_json::Value> {
    let out = carnet(&[
        "--profile",
        profile.to_str().unwrap(),
        "--output",
        "json",
        "status",
    ]);
    out.status.success().then(|| json(&out))
}

fn validator_set(s: &serde_json::Value) -> Vec<String> {
    s["validator_set"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Waits until the node behind `profile` runs an epoch whose validators are `expected`
/// and has committed `blocks_after` more blocks in it; returns (epoch, height).
fn wait_for_set(profile: &Path, expected: &[&str], blocks_after: u64, what: &str) -> (u64, u64) {
    let (epoch, height) = eventually_settle(what, || {
        let s = status(profile).ok_or("no status")?;
        if validator_set(&s) == expected {
            Ok((
                s["epoch"].as_u64().unwrap_or(0),
                s["height"].as_u64().unwrap_or(0),
            ))
        } else {
            Err(format!("status {s}"))
        }
    });
    let target = height + blocks_after;
    eventually_settle(
        &format!("{what}: {blocks_after} blocks in the new epoch"),
        || {
            let s = status(profile).ok_or("no status")?;
            let h = s["height"].as_u64().unwrap_or(0);
            if h >= target {
                Ok(h)
            } else {
                Err(format!("at height {h}, waiting for {target}: {s}"))
            }
        },
    );
    (epoch, height)
}

/// Proposes `args` as XA and has `voters` vote yes; returns the effective height.
fn pass(xa: &Path, args: &[&str], voters: &[&Path], what: &str) -> u64 {
    let proposal = ok(xa, args, what);
    let id = proposal["id"].as_str().expect("proposal id").to_string();
    let proposed_at = proposal["height"].as_u64().expect("proposal height");
    let mut last = proposal;
    for voter in voters {
        wait_for_height(voter.to_str().unwrap(), proposed_at);
        last = ok(voter, &["member", "vote", &id, "yes"], "vote yes");
    }
    assert_eq!(last["status"], "passed", "{what}: {last}");
    last["effective_height"]
        .as_u64()
        .unwrap_or_else(|| panic!("a passed proposal has its height: {last}"))
}

#[test]
fn the_validator_set_follows_membership_votes_at_epoch_boundaries() {
    let started = Instant::now();
    let dir = tempfile::Builder::new()
        .prefix("carnet-epochs-")
        .tempdir()
        .expect("temp dir");
    let node_binary = process::locate_binary(process::NODE_BINARY).expect("carnet-node binary");
    let testnet = init::init(4, &dir.path().join("net"), &node_binary).expect("testnet init");
    init::set_epoch_length(&testnet, EPOCH_LENGTH_BLOCKS).expect("epoch length");
    let mut network = carnet_testnet::Network::new(testnet, node_binary.clone());
    network.up(UP_TIMEOUT).expect("testnet up");
    eprintln!(
        "[setup] 4-node network (epochs of {EPOCH_LENGTH_BLOCKS} blocks) up in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let mut net = TestNetwork { network, dir };
    let (xa, xb, xc, xd) = (
        net.profile("XA"),
        net.profile("XB"),
        net.profile("XC"),
        net.profile("XD"),
    );
    let genesis_set = ["XA", "XB", "XC", "XD"];
    let s = status(&xa).expect("XA status");
    assert_eq!(validator_set(&s), genesis_set, "{s}");

    let xe_member = init::add_candidate(
        &mut net.network.testnet,
        &node_binary,
        "XE",
        "Erewhon Customs",
    )
    .expect("XE's node home");
    let member_file = write_file(
        &net.scratch(),
        "xe-member.json",
        &serde_json::to_string_pretty(&xe_member).unwrap(),
    );

    timed("XE is admitted by vote and becomes a validator", || {
        let effective = pass(
            &xa,
            &[
                "member",
                "propose-add",
                "--file",
                member_file.to_str().unwrap(),
                "--effective-delay-blocks",
                "2",
            ],
            &[&xb, &xc],
            "XA proposes admitting XE; XB and XC vote yes",
        );
        // XE's node starts with genesis only; the members accept it once the admission
        // took effect on their ledgers, and it catches up.
        net.network.start("XE").expect("start XE");
        wait_for_height(xa.to_str().unwrap(), effective);
        let five = ["XA", "XB", "XC", "XD", "XE"];
        let (epoch, height) = wait_for_set(&xa, &five, 3, "XA runs an epoch with XE");
        assert!(epoch >= 1, "a later epoch: {epoch}");
        assert!(
            height + 1 >= effective,
            "the set changes at an epoch boundary at or after the admission ({effective})"
        );
        eventually_settle(
            "XE's node catches up and runs an engine in a five-validator epoch",
            || {
                let h = net.network.height("XE").unwrap_or(0);
                let log = log_of(&net, "XE");
                let voting = log.lines().any(|l| {
                    l.contains("consensus starting")
                        && l.contains("administration=XE")
                        && l.contains("AdminCode(\"XE\")")
                });
                if voting && h > height {
                    Ok(())
                } else {
                    Err(format!("XE at height {h}, engine started: {voting}"))
                }
            },
        );
        // XE's first officer, registered by the admission, is served by XE's node.
        let xe = net.profile("XE");
        let s = status(&xe).expect("XE's officer reads its node's status");
        assert_eq!(s["administration"], "XE", "{s}");
        assert_eq!(validator_set(&s), five, "{s}");
    });

    timed(
        "XD's removal passes; with XD killed the five-validator set goes on only with XE's votes",
        || {
            let delay = (3 * EPOCH_LENGTH_BLOCKS).to_string();
            let effective = pass(
                &xa,
                &[
                    "member",
                    "propose-remove",
                    "XD",
                    "--effective-delay-blocks",
                    &delay,
                ],
                &[&xb, &xc, &xd],
                "XA proposes removing XD; XB, XC and XD vote yes (four of five)",
            );
            net.network.kill("XD").expect("kill XD");
            let s = status(&xa).expect("XA");
            let height = s["height"].as_u64().unwrap();
            let five = ["XA", "XB", "XC", "XD", "XE"];
            assert_eq!(validator_set(&s), five, "{s}");
            assert!(height + 5 < effective, "the check ends before the removal");
            for profile in [&xa, &xb, &xc] {
                eventually_settle("commits go on without XD", || {
                    let s = status(profile).ok_or("no status")?;
                    let h = s["height"].as_u64().unwrap_or(0);
                    if h >= height + 5 && validator_set(&s) == five {
                        Ok(())
                    } else {
                        Err(format!("waiting for {}: {s}", height + 5))
                    }
                });
            }
            let four = ["XA", "XB", "XC", "XE"];
            let (_, switched_at) = wait_for_set(&xa, &four, 2, "XA runs an epoch without XD");
            assert!(
                switched_at + 1 >= effective,
                "the set changes at a boundary at or after the removal ({effective})"
            );
            for profile in [&xb, &xc] {
                wait_for_set(profile, &four, 0, "every live member runs it");
            }
        },
    );

    timed(
        "with XC killed as well, XA, XB and XE are a quorum of the new set",
        || {
            net.network.kill("XC").expect("kill XC");
            let height = status(&xa).expect("XA")["height"].as_u64().unwrap();
            eventually_settle("XE's node commits on with three of four", || {
                let h = net.network.height("XE").unwrap_or(0);
                if h >= height + 5 {
                    Ok(())
                } else {
                    Err(format!("XE at height {h}, waiting for {}", height + 5))
                }
            });
            for profile in [&xa, &xb] {
                eventually_settle("commits go on with three of four", || {
                    let h = status(profile).ok_or("no status")?["height"]
                        .as_u64()
                        .unwrap_or(0);
                    if h >= height + 5 {
                        Ok(())
                    } else {
                        Err(format!("height {h}, waiting for {}", height + 5))
                    }
                });
            }
            // A document still flows between the remaining administrations.
            let scratch = net.scratch();
            let ucr = format!("26XA{}-EPOCH", tag().to_uppercase());
            let marker = format!("AFTER-EPOCHS-{}", tag());
            let file = write_file(&scratch, "export.json", &export_declaration(&ucr, &marker));
            let filed = submit(
                &["--profile", xa.to_str().unwrap(), "--output", "json"],
                "export-declaration",
                &ucr,
                "XB",
                &file,
            );
            assert_exit(&filed, 0, "XA files to XB in the new epoch");
            let filed = json(&filed);
            let id = filed["id"].as_str().expect("document id").to_string();
            wait_for_height(
                xb.to_str().unwrap(),
                filed["height"].as_u64().expect("height"),
            );
            assert_decrypts_to_file(
                xb.to_str().unwrap(),
                &id,
                &scratch.join("xb.json"),
                &export_declaration(&ucr, &marker),
                "XB decrypts a document filed after two validator-set changes",
            );
        },
    );
    for code in ["XA", "XB", "XE"] {
        assert!(
            log_of(&net, code).contains("the validator set changes with the new epoch"),
            "{code} logs the change"
        );
    }
    let _ = xd;
}

fn eventually_settle<T>(what: &str, check: impl FnMut() -> Result<T, String>) -> T {
    eventually(what, SETTLE, check)
}
