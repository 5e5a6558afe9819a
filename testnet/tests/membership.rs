//! A membership change voted on the ledger reaches the running network (issue 4, item 8),
//! on 4 real processes through the `carnet` CLI: XA proposes removing XD with a short
//! effective delay, XB and XC vote yes; once the removal takes effect every remaining
//! node disconnects XD's node and refuses it, the three keep finalizing blocks,
//! documents filed afterwards are refused for XD and never reach its node, and XD's node
//! logs that its administration is no longer a member.

mod common;

use common::*;
use std::path::Path;
use std::time::Duration;

/// Blocks between the removal passing and taking effect.
const EFFECTIVE_DELAY_BLOCKS: &str = "3";
/// Upper bound for a network condition to come about (not a performance assertion).
const SETTLE: Duration = Duration::from_secs(60);

fn status(profile: &Path) -> serde_json::Value {
    ok(profile, &["status"], "status")
}

#[test]
fn removed_member_is_disconnected_refused_and_told() {
    let mut net = start_network(4);
    let (xa, xb, xc, xd) = (
        net.profile("XA"),
        net.profile("XB"),
        net.profile("XC"),
        net.profile("XD"),
    );
    let remaining = [&xa, &xb, &xc];

    let effective_height = timed("XA proposes removing XD; XB and XC vote yes", || {
        for profile in [&xa, &xb, &xc, &xd] {
            assert_eq!(status(profile)["peers"], 3, "fully connected at the start");
        }
        let proposal = ok(
            &xa,
            &[
                "member",
                "propose-remove",
                "XD",
                "--effective-delay-blocks",
                EFFECTIVE_DELAY_BLOCKS,
            ],
            "XA proposes removing XD",
        );
        let id = proposal["id"].as_str().expect("proposal id").to_string();
        assert_eq!(proposal["status"], "open", "{proposal}");
        let proposed_at = proposal["height"].as_u64().expect("proposal height");
        wait_for_height(xb.to_str().unwrap(), proposed_at);
        wait_for_height(xc.to_str().unwrap(), proposed_at);
        let voted = ok(&xb, &["member", "vote", &id, "yes"], "XB votes yes");
        assert_eq!(voted["status"], "open", "two of four is not 2/3: {voted}");
        let voted = ok(&xc, &["member", "vote", &id, "yes"], "XC votes yes");
        assert_eq!(voted["status"], "passed", "{voted}");
        voted["effective_height"]
            .as_u64()
            .unwrap_or_else(|| panic!("a passed proposal has its height: {voted}"))
    });

    timed(
        "after the effective height XD is disconnected; the others keep committing",
        || {
            for profile in remaining {
                wait_for_height(profile.to_str().unwrap(), effective_height + 2);
            }
            for profile in remaining {
                eventually_settle("a remaining member drops XD", || {
                    let s = status(profile);
                    if s["peers"] == 2 {
                        Ok(())
                    } else {
                        Err(format!("status {s}"))
                    }
                });
            }
            let members = ok(&xa, &["member", "list"], "list members");
            let xd_record = members["members"]
                .as_array()
                .expect("members")
                .iter()
                .find(|m| m["code"] == "XD")
                .cloned()
                .unwrap_or_else(|| panic!("XD listed: {members}"));
            assert_eq!(xd_record["active"], false, "{members}");
            for code in ["XA", "XB", "XC"] {
                let log = log_of(&net, code);
                assert!(
                    log.contains("member removed on the ledger"),
                    "{code} logs the disconnection of XD's node"
                );
            }
            // XD's node keeps dialing and is refused; it never counts a member as a peer.
            eventually_settle("XD's node has no peer left", || {
                let s = status(&xd);
                if s["peers"] == 0 {
                    Ok(())
                } else {
                    Err(format!("status {s}"))
                }
            });
        },
    );

    timed(
        "XD's node reports its administration is no longer a member",
        || {
            eventually_settle("XD's node logs its removal", || {
                let log = log_of(&net, "XD");
                if log.contains("this administration is no longer a member") {
                    Ok(())
                } else {
                    Err("no such line in XD's node.log".into())
                }
            });
        },
    );

    timed("documents filed afterwards are not delivered to XD", || {
        let scratch = net.scratch();
        let ucr = format!("24XA{}-EXP", tag().to_uppercase());
        let marker = format!("AFTER-REMOVAL-{}", tag());
        let file = write_file(&scratch, "export.json", &export_declaration(&ucr, &marker));
        let xa_s = xa.to_str().unwrap();

        let refused = submit(
            &["--profile", xa_s, "--output", "json"],
            "export-declaration",
            &ucr,
            "XD",
            &file,
        );
        assert_exit(&refused, 2, "a document to the removed XD");
        assert!(
            describe(&refused).contains("XD"),
            "the refusal names XD: {}",
            describe(&refused)
        );

        let filed = submit(
            &["--profile", xa_s, "--output", "json"],
            "export-declaration",
            &ucr,
            "XB",
            &file,
        );
        assert_exit(&filed, 0, "XA files to XB after the removal");
        let filed = json(&filed);
        let id = filed["id"].as_str().expect("document id").to_string();
        let height = filed["height"].as_u64().expect("document height");
        wait_for_height(xb.to_str().unwrap(), height);
        let out = scratch.join("xb.json");
        assert_decrypts_to_file(
            xb.to_str().unwrap(),
            &id,
            &out,
            &export_declaration(&ucr, &marker),
            "XB decrypts the document filed after the removal",
        );
        // XD's node is cut off: it never received the block holding the document.
        let xd_height = status(&xd)["height"].as_u64().expect("XD height");
        assert!(
            xd_height < height,
            "XD's node reached height {xd_height}, the document is at {height}"
        );
        let xd_s = xd.to_str().unwrap();
        let read = decrypt(
            &["--profile", xd_s, "--output", "json"],
            &id,
            "import clearance of consignment",
            None,
        );
        assert_ne!(
            exit_code(&read),
            0,
            "XD reads the document: {}",
            describe(&read)
        );
        assert!(
            files_containing(
                net.network.testnet.node("XD").unwrap().home.as_path(),
                marker.as_bytes()
            )
            .is_empty(),
            "the document's plaintext is nowhere in XD's node home"
        );
    });

    timed(
        "a member restarted after the removal still refuses XD",
        || {
            let height = status(&xb)["height"].as_u64().expect("XB height");
            net.network.stop("XB").expect("stop XB");
            net.network.start("XB").expect("start XB");
            wait_for_height(xa.to_str().unwrap(), height + 2);
            wait_for_height(xb.to_str().unwrap(), height + 2);
            let log = log_of(&net, "XB");
            let lists: Vec<&str> = log
                .lines()
                .filter(|l| l.contains("network allow-list"))
                .collect();
            assert_eq!(lists.len(), 2, "one allow-list per start: {lists:?}");
            assert!(
                lists[0].contains("\"XD\""),
                "at the first start XD was a member: {}",
                lists[0]
            );
            assert!(
                lists[1].contains("\"XA\"") && !lists[1].contains("\"XD\""),
                "after the restart the allow-list comes from the ledger, without XD: {}",
                lists[1]
            );
            eventually_settle("the restarted XB reconnects to XA and XC only", || {
                let s = status(&xb);
                if s["peers"] == 2 {
                    Ok(())
                } else {
                    Err(format!("status {s}"))
                }
            });
        },
    );
}

fn eventually_settle<T>(what: &str, check: impl FnMut() -> Result<T, String>) -> T {
    eventually(what, SETTLE, check)
}
