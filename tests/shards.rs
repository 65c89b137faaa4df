//! Runners on shards end where one runner ends: the same contacts and the
//! same edits, synced by one runner and by four runners on four shards of
//! one store, leave the two systems holding the same records, with no
//! duplicate and no lost edit, also when one shard's runner dies in the
//! middle of a run and a new one takes its shard over; and contacts whose
//! email changed stay in the shard that linked them.
#![cfg(feature = "testkit")]

#[path = "common/shards.rs"]
mod shards;

use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use recsync::shard::Shard;
use recsync::{AsyncStateStore, MemoryStore};
use shards::*;

const CONTACTS: usize = 2_000;

async fn run_all(runners: &[recsync::SyncRunner]) {
    let reports = futures::future::join_all(runners.iter().map(|r| r.run())).await;
    for report in reports {
        let report = report.unwrap();
        assert!(report.errors.is_empty(), "{report}");
    }
}

/// Runs one runner twice (the second run plans nothing: it is quiescent).
async fn settle(runners: &[recsync::SyncRunner]) {
    run_all(runners).await;
    run_all(runners).await;
}

#[tokio::test]
async fn four_shards_end_where_one_runner_ends_and_a_dead_shard_is_taken_over() {
    // One runner.
    let one = universe(CONTACTS);
    let single_store = Arc::new(MemoryStore::new());
    let single = runner(
        Shard::whole(),
        one[0].clone(),
        one[1].clone(),
        single_store.clone(),
    );
    settle(std::slice::from_ref(&single)).await;

    // Four runners; shard 2's dies after its first write batch.
    let four = universe(CONTACTS);
    let store: Arc<dyn AsyncStateStore> = Arc::new(MemoryStore::new());
    let dying = Dying {
        inner: four[1].clone(),
        batches: Arc::new(AtomicUsize::new(1)),
    };
    let doomed = runner(
        Shard::new(2, 4).unwrap(),
        Dying {
            inner: four[0].clone(),
            batches: dying.batches.clone(),
        },
        dying,
        store.clone(),
    );
    let runners: Vec<_> = [0, 1, 3]
        .into_iter()
        .map(|i| {
            runner(
                Shard::new(i, 4).unwrap(),
                four[0].clone(),
                four[1].clone(),
                store.clone(),
            )
        })
        .collect();
    let died = tokio::time::timeout(std::time::Duration::from_secs(2), doomed.run()).await;
    assert!(died.is_err(), "shard 2's runner was to die mid-run");
    assert_eq!(
        AsyncStateStore::load(&*store, "contacts/shard-2-of-4")
            .await
            .unwrap()
            .len(),
        0,
        "the dead runner saved nothing"
    );
    settle(&runners).await;
    // A new runner takes shard 2 over.
    let taken = runner(
        Shard::new(2, 4).unwrap(),
        four[0].clone(),
        four[1].clone(),
        store.clone(),
    );
    let mut all = runners;
    all.push(taken);
    settle(&all).await;
    assert_same_content("crm", &four[0], &one[0]);
    assert_same_content("mkt", &four[1], &one[1]);

    // The same edits in both: names, emails (routing the contact to
    // another shard), deletes, new contacts in both systems.
    edit(&one, CONTACTS);
    edit(&four, CONTACTS);
    settle(std::slice::from_ref(&single)).await;
    settle(&all).await;
    assert_same_content("crm", &four[0], &one[0]);
    assert_same_content("mkt", &four[1], &one[1]);
    // Every edit arrived: a renamed contact and a moved email in both.
    for c in &four {
        let c = content(c);
        assert!(c.contains_key(&("p7@example.com".to_owned(), "Renamed 7".to_owned())));
        assert!(c.keys().any(|(email, _)| email == "moved3@example.com"));
        assert!(
            !c.keys().any(|(email, _)| email == "p1@example.com"),
            "p1 was deleted"
        );
    }
    // Each shard's baseline holds its share, and together every entity.
    let mut total = 0;
    for shard in Shard::all(4) {
        let b = AsyncStateStore::load(&*store, &shard.state_key("contacts"))
            .await
            .unwrap();
        assert!(b.len() > CONTACTS / 8, "{shard} holds {}", b.len());
        total += b.len();
    }
    let whole = AsyncStateStore::load(&*single_store, "contacts")
        .await
        .unwrap();
    assert_eq!(total, whole.len());
}
