//! Micro-benchmarks of the runtime's hot paths (criterion). Whole-system scenarios
//! comparable with the reference harness are `warden bench`. Sizes shrink when `CI`
//! is set.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use warden::clock::Instant;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use serde_json::json;
use warden::actors::{AgentSlot, AgentSpec, Kinds, Registry, SendOptions};
use warden::config::Config;
use warden::supervision::intensity::IntensityWindow;
use warden::supervision::Intensity;

fn batch() -> u64 {
    if std::env::var_os("CI").is_some() {
        1_000
    } else {
        10_000
    }
}

fn intensity(c: &mut Criterion) {
    let mut w = IntensityWindow::new(Intensity {
        max_restarts: 100_000,
        within: Duration::from_secs(1),
    });
    let t = Instant::now();
    let mut i = 0u64;
    c.bench_function("intensity_add_restart", |b| {
        b.iter(|| {
            i += 1;
            black_box(w.add_restart(t + Duration::from_nanos(i * 10)))
        })
    });
}

fn accept(c: &mut Criterion) {
    let n = batch();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    c.bench_function("memory_mailbox_accept", |b| {
        b.iter_batched(
            || {
                let mut spec = AgentSpec::new("a", "echo");
                spec.mailbox_capacity = n as usize + 1;
                Arc::new(AgentSlot::new(spec))
            },
            |slot| {
                rt.block_on(async {
                    for i in 0..n {
                        Registry::send_to(&slot, json!(i), SendOptions::default())
                            .await
                            .unwrap();
                    }
                });
                slot
            },
            BatchSize::LargeInput,
        )
    });
}

fn config(c: &mut Criterion) {
    let text = include_str!("../config/examples/full.toml");
    let kinds = Kinds::builtin();
    c.bench_function("config_parse_full_example", |b| {
        b.iter(|| Config::parse(black_box(text), "full.toml", &kinds).unwrap())
    });
}

criterion_group!(benches, intensity, accept, config);
criterion_main!(benches);
