//! Crash faults on a 4-node network of real processes (f = 1):
//! SIGKILL the current leader → commits continue; restart it → it catches up and decrypts
//! every document addressed to it, including those submitted while it was down.
//! Kill 2 of 4 → no height advances and no divergence; restart one → commits resume.

mod common;

use carnet_cli::client::{Submission, Submitted};
use carnet_cli::NodeClient;
use carnet_testnet::invariants;
use common::*;
use std::time::{Duration, Instant};

/// Time a restarted node gets to catch up and serve.
const CATCH_UP: Duration = Duration::from_secs(90);

fn named_clients(net: &TestNetwork, codes: &[String]) -> Vec<(String, NodeClient)> {
    codes
        .iter()
        .map(|c| (c.clone(), net.network.testnet.client(c).unwrap()))
        .collect()
}

fn submit(
    net: &TestNetwork,
    from: &str,
    to: &[String],
    ucr: &str,
    marker: &str,
) -> (Submitted, String) {
    let payload = export_declaration(ucr, marker);
    let client = net.network.testnet.client(from).unwrap();
    let submitted = client
        .submit(&Submission {
            kind: "export-declaration".into(),
            ucr: ucr.into(),
            recipients: to.to_vec(),
            payload: payload.clone(),
        })
        .unwrap_or_else(|e| panic!("{from} → {to:?} submission failed: {e}"));
    (submitted, payload)
}

fn max_height(net: &TestNetwork, codes: &[String]) -> u64 {
    codes
        .iter()
        .filter_map(|c| net.network.height(c))
        .max()
        .unwrap_or(0)
}

/// A document and the administrations it is addressed to.
struct Owed {
    to: Vec<String>,
    submitted: Submitted,
    payload: String,
}

#[test]
fn crash_faults_leader_kill_catch_up_and_quorum_loss() {
    let mut net = start_network(4);
    let codes = net.network.testnet.codes();
    let run = tag().to_uppercase();

    // Before the crash: a document addressed to every administration.
    let mut owed = Vec::new();
    for (from, to) in [(0, codes[1..].to_vec()), (1, vec![codes[0].clone()])] {
        let ucr = format!("24{run}-BEFORE-{from}");
        let (submitted, payload) = submit(&net, &codes[from], &to, &ucr, "before the crash");
        owed.push(Owed {
            to,
            submitted,
            payload,
        });
    }

    // The leader of view v is validator `v mod n` (genesis order): kill the current one.
    let victim = timed("SIGKILL the current leader; commits continue", || {
        let view = net
            .network
            .testnet
            .client(&codes[0])
            .unwrap()
            .status()
            .unwrap()
            .view;
        let victim = codes[(view % codes.len() as u64) as usize].clone();
        assert!(net.network.kill(&victim).unwrap(), "{victim} was running");
        eprintln!("[faults] view {view}: killed its leader {victim}");
        let live: Vec<String> = codes.iter().filter(|c| **c != victim).cloned().collect();
        let before = max_height(&net, &live);
        for (i, from) in live.iter().enumerate() {
            let to = vec![victim.clone()];
            let ucr = format!("24{run}-DOWN{i}");
            let (submitted, payload) = submit(&net, from, &to, &ucr, "while it was down");
            owed.push(Owed {
                to,
                submitted,
                payload,
            });
        }
        net.network
            .wait_for_height(&live, before + 3, Duration::from_secs(60))
            .expect("the three live nodes keep committing");
        assert!(!net.network.is_running(&victim));
        victim
    });
    let live: Vec<String> = codes.iter().filter(|c| **c != victim).cloned().collect();

    timed(
        &format!("restart {victim}; it catches up and decrypts all it is owed"),
        || {
            net.network.start(&victim).unwrap();
            let target = max_height(&net, &live);
            net.network
                .wait_for_height(std::slice::from_ref(&victim), target, CATCH_UP)
                .expect("the restarted node catches up");
            let client = net.network.testnet.client(&victim).unwrap();
            let mut served = 0;
            for doc in owed.iter().filter(|d| d.to.contains(&victim)) {
                let started = Instant::now();
                let decrypted = loop {
                    match client.decrypt(&doc.submitted.id, "catch-up check") {
                        Ok(d) => break d,
                        Err(e) if started.elapsed() < CATCH_UP => {
                            eprintln!(
                                "[faults] {victim} cannot decrypt {} yet: {e}",
                                doc.submitted.id
                            );
                            std::thread::sleep(Duration::from_millis(500));
                        }
                        Err(e) => panic!("{victim} cannot decrypt {}: {e}", doc.submitted.id),
                    }
                };
                assert_eq!(
                    decrypted.payload, doc.payload,
                    "payload byte-identical after catch-up"
                );
                served += 1;
            }
            assert!(served >= 4, "{victim} was owed only {served} documents");
            eprintln!("[faults] {victim} decrypted all {served} documents addressed to it");
            let height =
                invariants::agreed_height(&named_clients(&net, &codes), Duration::from_secs(30))
                    .unwrap_or_else(|_| max_height(&net, &codes).saturating_sub(2));
            invariants::same_blocks(&named_clients(&net, &codes), 1, height)
                .expect("no divergence");
        },
    );

    let (down, up): (Vec<String>, Vec<String>) = (codes[2..].to_vec(), codes[..2].to_vec());
    let halted = timed(
        &format!(
            "kill {} and {}: no progress, no divergence",
            down[0], down[1]
        ),
        || {
            for code in &down {
                assert!(net.network.kill(code).unwrap());
            }
            // Votes already in flight may still complete one block.
            std::thread::sleep(Duration::from_secs(3));
            let halted = max_height(&net, &up);
            std::thread::sleep(Duration::from_secs(6));
            let later = max_height(&net, &up);
            assert_eq!(
                later, halted,
                "height advanced without a quorum ({halted} → {later})"
            );
            let min = up
                .iter()
                .filter_map(|c| net.network.height(c))
                .min()
                .unwrap();
            invariants::same_blocks(&named_clients(&net, &up), 1, min).expect("no divergence");
            halted
        },
    );

    timed(&format!("restart {}: commits resume", down[0]), || {
        net.network.start(&down[0]).unwrap();
        let three: Vec<String> = up
            .iter()
            .chain(std::iter::once(&down[0]))
            .cloned()
            .collect();
        net.network
            .wait_for_height(&three, halted + 2, CATCH_UP)
            .expect("commits resume with 3 of 4");
        net.network.start(&down[1]).unwrap();
        let target = max_height(&net, &three);
        net.network
            .wait_for_height(&codes, target, CATCH_UP)
            .expect("the last node catches up");
        let height =
            invariants::agreed_height(&named_clients(&net, &codes), Duration::from_secs(30))
                .unwrap_or(target);
        invariants::same_blocks(&named_clients(&net, &codes), 1, height.min(target))
            .expect("every node has the same chain");
    });
}
