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

fn submit(net: &TestNetwork, from: &str, to: &str, ucr: &str, marker: &str) -> (Submitted, String) {
    let payload = export_declaration(ucr, marker);
    let client = net.network.testnet.client(from).unwrap();
    let submitted = client
        .submit(&Submission {
            kind: "export-declaration".into(),
            ucr: ucr.into(),
            recipients: vec![to.into()],
            payload: payload.clone(),
        })
        .unwrap_or_else(|e| panic!("{from} → {to} submission failed: {e}"));
    (submitted, payload)
}

fn max_height(net: &TestNetwork, codes: &[String]) -> u64 {
    codes
        .iter()
        .filter_map(|c| net.network.height(c))
        .max()
        .unwrap_or(0)
}

#[test]
fn crash_faults_leader_kill_catch_up_and_quorum_loss() {
    let mut net = start_network(4);
    let codes = net.network.testnet.codes();
    let run = tag().to_uppercase();

    // The leader of the current view is validator `view mod n` (genesis order).
    let status = net.network.testnet.client("XA").unwrap().status().unwrap();
    let victim = codes[(status.view % codes.len() as u64) as usize].clone();
    let live: Vec<String> = codes.iter().filter(|c| **c != victim).cloned().collect();
    let mut addressed_to_victim = Vec::new();
    addressed_to_victim.push(submit(
        &net,
        &live[0],
        &victim,
        &format!("24{run}-BEFORE"),
        "before the crash",
    ));

    timed(
        &format!("SIGKILL the leader {victim}; commits continue"),
        || {
            let view = net
                .network
                .testnet
                .client(&live[0])
                .unwrap()
                .status()
                .unwrap()
                .view;
            let leader = codes[(view % codes.len() as u64) as usize].clone();
            eprintln!("[faults] view {view}: leader {leader}; killing {victim}");
            assert!(net.network.kill(&victim).unwrap(), "{victim} was running");
            let before = max_height(&net, &live);
            for (i, from) in live.iter().enumerate() {
                addressed_to_victim.push(submit(
                    &net,
                    from,
                    &victim,
                    &format!("24{run}-DOWN{i}"),
                    "while it was down",
                ));
            }
            net.network
                .wait_for_height(&live, before + 3, Duration::from_secs(60))
                .expect("the three live nodes keep committing");
            assert!(!net.network.is_running(&victim));
        },
    );

    timed(
        &format!("restart {victim}; it catches up and decrypts all it is owed"),
        || {
            net.network.start(&victim).unwrap();
            let target = max_height(&net, &live);
            net.network
                .wait_for_height(std::slice::from_ref(&victim), target, CATCH_UP)
                .expect("the restarted node catches up");
            let client = net.network.testnet.client(&victim).unwrap();
            for (submitted, payload) in &addressed_to_victim {
                let started = Instant::now();
                let decrypted = loop {
                    match client.decrypt(&submitted.id, "catch-up check") {
                        Ok(d) => break d,
                        Err(e) if started.elapsed() < CATCH_UP => {
                            eprintln!("[faults] {victim} cannot decrypt {} yet: {e}", submitted.id);
                            std::thread::sleep(Duration::from_millis(500));
                        }
                        Err(e) => panic!("{victim} cannot decrypt {}: {e}", submitted.id),
                    }
                };
                assert_eq!(
                    decrypted.payload, *payload,
                    "payload byte-identical after catch-up"
                );
            }
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
