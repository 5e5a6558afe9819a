//! Happy-path report: n = 4 honest validators, uniform one-way latency δ, no loss.
//! Simplex predicts one block every 2δ and finality 3δ after the proposal.
//!
//! `cargo run --release -p carnet-consensus --example happy_path --features sim`

fn main() {
    for n in [4usize, 7] {
        let f = carnet_consensus::sim::happy_path_figures(n, 100, 100_000);
        println!(
            "happy path n={n}: {} blocks in 1000δ -> {:.3} blocks/δ (one block per {:.2}δ), finality {:.2}δ after proposal",
            f.blocks_finalized, f.blocks_per_delta, f.block_interval_delta, f.finality_delta
        );
    }
}
