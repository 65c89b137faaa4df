//! Executing a plan's ops: per system in batches of one kind, several
//! batches and several systems at once, each entity's ops in order, with
//! retries, and the read-back that confirms what was reported applied.

use std::collections::{HashMap, HashSet};

use futures::stream::{self, FuturesUnordered, StreamExt};
use futures::FutureExt;

use super::calls::Run;
use super::confirm::{self, Verdict};
use super::{SyncEvent, SyncRunner};
use crate::baseline::{Baseline, EntityId};
use crate::connector::{Applied, ConnectorError, ErrorKind};
use crate::engine::OpOutcome;
use crate::model::{Record, Snapshot};
use crate::plan::{OpId, OpKind, WriteOp};

/// An op's final result in a run.
pub(super) type OpResult = Result<Applied, ConnectorError>;

/// The records a plan's updates target, as the run read them (by system
/// index and record id): what the written fields held before the write, for
/// the read-back.
pub(super) type Prior = HashMap<(usize, String), Record>;

/// One system's ops, each with its final result.
pub(super) struct Executed<'p> {
    pub(super) system: usize,
    pub(super) results: Vec<(&'p WriteOp, OpResult)>,
    /// The ops applied whose read-back showed them made.
    pub(super) shown: HashSet<OpId>,
    pub(super) retries: usize,
}

/// One batch's ops, each with its final result.
struct Sent<'p> {
    results: Vec<(&'p WriteOp, OpResult)>,
    retries: usize,
}

/// Splits one system's ops into batches of at most `size` ops, each of one
/// kind, since the batch endpoints of most APIs take one kind: the kinds
/// in the order the plan first has them, each kind's ops in the plan's
/// order. Where an entity has more than one op, the batches follow the
/// plan's order instead, cut where the kind changes, so that its ops keep
/// their order.
fn batches<'p>(mine: &[&'p WriteOp], size: usize) -> Vec<Vec<&'p WriteOp>> {
    let mut seen = HashSet::with_capacity(mine.len());
    let repeats = !mine.iter().all(|op| seen.insert(&op.entity));
    let mut runs: Vec<Vec<&'p WriteOp>> = Vec::new();
    if repeats {
        for op in mine {
            match runs.last_mut() {
                Some(run) if run.first().is_some_and(|o| o.kind == op.kind) => run.push(op),
                _ => runs.push(vec![*op]),
            }
        }
    } else {
        for op in mine {
            match runs
                .iter_mut()
                .find(|run| run.first().is_some_and(|o| o.kind == op.kind))
            {
                Some(run) => run.push(op),
                None => runs.push(vec![*op]),
            }
        }
    }
    runs.iter()
        .flat_map(|run| run.chunks(size.max(1)).map(<[&WriteOp]>::to_vec))
        .collect()
}

/// For each batch, the earlier batches that hold an op of one of its
/// entities: it is sent once they are done. (The latest earlier batch per
/// entity is enough: that one waited for the ones before it.)
fn waits_for(batches: &[Vec<&WriteOp>]) -> Vec<Vec<usize>> {
    let mut last: HashMap<&EntityId, usize> = HashMap::new();
    batches
        .iter()
        .enumerate()
        .map(|(k, batch)| {
            let mut after: Vec<usize> = batch
                .iter()
                .filter_map(|op| last.get(&op.entity).copied())
                .collect();
            after.sort_unstable();
            after.dedup();
            for op in batch {
                last.insert(&op.entity, k);
            }
            after
        })
        .collect()
}

/// What became of `op`, for the commit: a write the read-back showed made
/// is confirmed.
pub(super) fn outcome(shown: &HashSet<OpId>, op: &WriteOp, result: OpResult) -> OpOutcome {
    let outcome = OpOutcome::from(result);
    if shown.contains(&op.id) {
        outcome.confirmed()
    } else {
        outcome
    }
}

impl SyncRunner {
    /// Whether what is written to system `s` is read back.
    fn reads_back(&self, s: usize) -> bool {
        self.read_back
            && self
                .connectors
                .get(s)
                .is_some_and(|c| c.capabilities().fetch_by_ids)
    }

    /// The records of `snapshots` that `ops` update where the runner reads
    /// back.
    pub(super) fn prior_reads(&self, ops: &[&WriteOp], snapshots: &[Snapshot]) -> Prior {
        let mut wanted: HashSet<(usize, &str)> = HashSet::new();
        for op in ops.iter().filter(|op| op.kind == OpKind::Update) {
            let s = self.systems.iter().position(|x| x == &op.system);
            if let (Some(s), Some(id)) = (s, op.record_id.as_deref()) {
                if self.reads_back(s) {
                    wanted.insert((s, id));
                }
            }
        }
        let mut prior = Prior::new();
        if wanted.is_empty() {
            return prior;
        }
        for snapshot in snapshots {
            let Some(s) = self.systems.iter().position(|x| *x == snapshot.system) else {
                continue;
            };
            for r in &snapshot.records {
                if wanted.contains(&(s, r.id.as_str())) {
                    prior.insert((s, r.id.clone()), r.clone());
                }
            }
        }
        prior
    }

    /// Executes `ops`, per system, several systems at once, and reads back
    /// what each system reported applied.
    pub(super) async fn execute<'p>(
        &self,
        run: Run,
        ops: &[&'p WriteOp],
        baseline: &Baseline,
        prior: &Prior,
    ) -> Vec<Executed<'p>> {
        let groups: Vec<(usize, Vec<&'p WriteOp>)> = self
            .systems
            .iter()
            .enumerate()
            .map(|(s, system)| {
                let mine: Vec<&'p WriteOp> = ops
                    .iter()
                    .copied()
                    .filter(|op| &op.system == system)
                    .collect();
                (s, mine)
            })
            .filter(|(_, mine)| !mine.is_empty())
            .collect();
        // The futures are made here, not by a closure inside the stream:
        // a stream holding a closure that borrows would make `run`'s
        // future one the compiler cannot prove `Send`.
        let systems: Vec<_> = groups
            .into_iter()
            .map(|(s, mine)| self.execute_system(run, s, mine, baseline, prior))
            .collect();
        stream::iter(systems)
            .buffer_unordered(self.concurrency.max(1))
            .collect()
            .await
    }

    /// Executes one system's ops in batches of one kind
    /// ([`batches`]), up to the runner's batches in flight at once, a batch
    /// waiting for the earlier batches that hold an op of one of its
    /// entities; then reads back what was reported applied.
    async fn execute_system<'p>(
        &self,
        run: Run,
        s: usize,
        mine: Vec<&'p WriteOp>,
        baseline: &Baseline,
        prior: &Prior,
    ) -> Executed<'p> {
        let mut done = Executed {
            system: s,
            results: Vec::with_capacity(mine.len()),
            shown: HashSet::new(),
            retries: 0,
        };
        let Some(connector) = self.connectors.get(s) else {
            return done;
        };
        let size = connector.capabilities().max_batch_size.max(1);
        let batches = batches(&mine, size);
        let after = waits_for(&batches);
        let mut sent: Vec<Option<Sent<'p>>> = batches.iter().map(|_| None).collect();
        let mut running = FuturesUnordered::new();
        let mut next = 0;
        loop {
            while running.len() < self.in_flight.max(1)
                && next < batches.len()
                && after[next].iter().all(|k| sent[*k].is_some())
            {
                let k = next;
                running.push(self.send_batch(run, s, &batches[k]).map(move |r| (k, r)));
                next += 1;
            }
            // Batches start in order, so when none runs, every batch one
            // waits for is done and the loop above starts the next.
            let Some((k, result)) = running.next().await else {
                break;
            };
            sent[k] = Some(result);
        }
        drop(running);
        for batch in sent.into_iter().flatten() {
            done.retries += batch.retries;
            done.results.extend(batch.results);
        }
        if self.reads_back(s) {
            self.read_back(run, &mut done, baseline, prior).await;
        }
        done
    }

    /// Sends one batch; retryable failures are sent again (as a smaller
    /// batch) until they succeed or their attempts are spent. Each attempt
    /// waits for a permit of the system's rate limit; ops not sent before
    /// the run's deadline fail as timed out, and once the budget is spent
    /// as [`BudgetSpent`](ErrorKind::BudgetSpent).
    async fn send_batch<'p>(&self, run: Run, s: usize, chunk: &[&'p WriteOp]) -> Sent<'p> {
        let mut results: Vec<Option<OpResult>> = vec![None; chunk.len()];
        let mut pending: Vec<usize> = (0..chunk.len()).collect();
        let mut attempt = 0u32;
        let mut retries = 0;
        let (Some(connector), Some(system)) = (self.connectors.get(s), self.systems.get(s)) else {
            return Sent {
                results: Vec::new(),
                retries,
            };
        };
        loop {
            let late = || {
                ConnectorError::timed_out(
                    "not sent: the run's deadline passed; the next run writes it",
                )
            };
            let not_sent = if self.past(run) {
                Some(late())
            } else {
                self.permit(run, s).await.err()
            };
            if let Some(error) = not_sent {
                let spent = *error.kind() == ErrorKind::BudgetSpent;
                for k in &pending {
                    // A batch that timed out keeps its own error.
                    if spent || results[*k].is_none() {
                        results[*k] = Some(Err(error.clone()));
                    }
                }
                break;
            }
            attempt += 1;
            let batch: Vec<WriteOp> = pending
                .iter()
                .filter_map(|k| chunk.get(*k).map(|op| (*op).clone()))
                .collect();
            let answer = self
                .bounded(
                    run,
                    self.timeout,
                    "writing to",
                    system,
                    connector.apply(&self.object, &batch),
                )
                .await;
            match answer {
                Ok(answers) if answers.len() == batch.len() => {
                    for ((k, answer), op) in pending.iter().zip(answers).zip(&batch) {
                        results[*k] = Some(settle(op, answer));
                    }
                }
                Ok(answers) => {
                    let error = ConnectorError::permanent(format!(
                        "{system} returned {} results for a batch of {} ops",
                        answers.len(),
                        batch.len()
                    ));
                    for k in &pending {
                        results[*k] = Some(Err(error.clone()));
                    }
                }
                Err(error) => {
                    for (k, op) in pending.iter().zip(&batch) {
                        results[*k] = Some(settle(op, Err(error.clone())));
                    }
                }
            }
            for k in &pending {
                if let Some(Err(error)) = &results[*k] {
                    self.saw(s, error);
                }
            }
            let retry: Vec<usize> = pending
                .iter()
                .copied()
                .filter(|k| matches!(&results[*k], Some(Err(e)) if e.is_retryable()))
                .collect();
            let Some(first) = retry.first().and_then(|k| match &results[*k] {
                Some(Err(e)) => Some(e.kind().clone()),
                _ => None,
            }) else {
                break;
            };
            let retry_after = retry
                .iter()
                .filter_map(|k| match &results[*k] {
                    Some(Err(e)) => e.retry_after(),
                    _ => None,
                })
                .max();
            let after = self.retry_wait_after(run, attempt, true, retry_after);
            let limited = retry.iter().any(|k| {
                matches!(&results[*k], Some(Err(e)) if matches!(e.kind(), ErrorKind::RateLimited { .. }))
            });
            if limited {
                self.refused(s, &ErrorKind::RateLimited { retry_after }, after);
            }
            let Some(after) = after else {
                break;
            };
            self.emit(SyncEvent::Retrying {
                system: system.clone(),
                attempt,
                after,
                error: first,
                ops: retry.len(),
            });
            retries += 1;
            self.sleeper.sleep(after).await;
            pending = retry;
        }
        let mut applied = 0;
        let mut failed = 0;
        let mut out = Vec::with_capacity(chunk.len());
        for (op, result) in chunk.iter().zip(results) {
            let result =
                result.unwrap_or_else(|| Err(ConnectorError::permanent("op was not sent")));
            if result.is_ok() {
                applied += 1;
            } else {
                failed += 1;
            }
            out.push((*op, result));
        }
        self.emit(SyncEvent::BatchDone {
            system: system.clone(),
            applied,
            failed,
        });
        Sent {
            results: out,
            retries,
        }
    }

    /// Reads back the records of one system's ops that were reported
    /// applied, and turns those whose write does not show into
    /// [`ErrorKind::Unconfirmed`] failures. A read-back that fails leaves
    /// the results as reported: the next plan's read is the check then.
    async fn read_back(
        &self,
        run: Run,
        done: &mut Executed<'_>,
        baseline: &Baseline,
        prior: &Prior,
    ) {
        let s = done.system;
        let (Some(connector), Some(system)) = (self.connectors.get(s), self.systems.get(s)) else {
            return;
        };
        let target = |op: &WriteOp, applied: &Applied| -> Option<String> {
            match op.kind {
                OpKind::Create => applied.record_id.clone(),
                _ => op.record_id.clone(),
            }
        };
        let mut ids: Vec<String> = done
            .results
            .iter()
            .filter_map(|(op, result)| result.as_ref().ok().and_then(|a| target(op, a)))
            .collect();
        ids.sort_unstable();
        ids.dedup();
        if ids.is_empty() || self.past(run) {
            return;
        }
        let size = connector.capabilities().max_batch_size.max(1);
        // Made here, not in the stream (see `execute`).
        let chunks: Vec<_> = ids
            .chunks(size)
            .map(|chunk| {
                self.with_retry(run, system, move || async move {
                    self.permit(run, s).await?;
                    self.bounded(
                        run,
                        self.timeout,
                        "reading back from",
                        system,
                        connector.fetch_records(&self.object, chunk),
                    )
                    .await
                })
            })
            .collect();
        let reads: Vec<(Result<Snapshot, ConnectorError>, usize)> = stream::iter(chunks)
            .buffered(self.in_flight.max(1))
            .collect()
            .await;
        let mut seen: HashMap<String, Record> = HashMap::with_capacity(ids.len());
        for (read, retries) in reads {
            done.retries += retries;
            match read {
                Ok(snapshot) => {
                    seen.extend(snapshot.records.into_iter().map(|r| (r.id.clone(), r)))
                }
                Err(_) => return,
            }
        }
        let mut unconfirmed = 0;
        for (op, result) in &mut done.results {
            let Ok(applied) = result else { continue };
            let Some(id) = target(op, applied) else {
                continue;
            };
            let earlier = prior.get(&(s, id.clone()));
            let read = seen.get(&id);
            let verdict = confirm::verdict(op, applied, read, |w| {
                confirm::before(earlier, baseline, op, w)
            });
            match verdict {
                Verdict::Shown => {
                    if let Some(r) = read {
                        confirm::adopt_stored(op, applied, r, |w| {
                            confirm::before(earlier, baseline, op, w)
                        });
                    }
                    // The version read is the record's as the write left it.
                    if applied.version.is_none() {
                        applied.version = read.and_then(|r| r.version.clone());
                    }
                    done.shown.insert(op.id);
                }
                Verdict::NotMade(why) => {
                    unconfirmed += 1;
                    *result = Err(ConnectorError::unconfirmed(format!(
                        "{} reported applied, but {why}",
                        op.kind
                    ))
                    .with_record(id));
                }
                Verdict::Unknown => {}
            }
        }
        self.emit(SyncEvent::ReadBack {
            system: system.clone(),
            records: ids.len(),
            unconfirmed,
        });
    }
}

/// What an op's answer means for the plan: a delete of a record that is
/// already gone did what it was meant to; a create applied without the new
/// record's id cannot be linked, so it counts as failed (the next run finds
/// the record by its correlation key).
fn settle(op: &WriteOp, answer: OpResult) -> OpResult {
    match answer {
        Err(e) if op.kind == OpKind::Delete && *e.kind() == ErrorKind::NotFound => {
            Ok(Applied::new())
        }
        Ok(applied) if op.kind == OpKind::Create && applied.record_id.is_none() => Err(
            ConnectorError::permanent("create reported applied without the new record's id"),
        ),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::OpId;

    fn op(n: u64, kind: OpKind, entity: &str) -> WriteOp {
        WriteOp {
            id: OpId(n),
            kind,
            object: "contacts".into(),
            system: "shop".into(),
            record_id: (kind != OpKind::Create).then(|| format!("r{n}")),
            entity: EntityId::new(entity),
            expected_version: None,
            correlation: None,
            fields: Vec::new(),
        }
    }

    fn ids(batches: &[Vec<&WriteOp>]) -> Vec<Vec<u64>> {
        batches
            .iter()
            .map(|b| b.iter().map(|op| op.id.0).collect())
            .collect()
    }

    #[test]
    fn batches_hold_one_kind_in_the_order_the_plan_first_has_it() {
        use OpKind::{Create, Delete, Update};
        let ops = [
            op(1, Create, "a"),
            op(2, Update, "b"),
            op(3, Create, "c"),
            op(4, Delete, "d"),
            op(5, Update, "e"),
            op(6, Create, "f"),
        ];
        let mine: Vec<&WriteOp> = ops.iter().collect();
        let b = batches(&mine, 2);
        assert_eq!(ids(&b), [vec![1, 3], vec![6], vec![2, 5], vec![4]]);
        assert!(waits_for(&b).iter().all(Vec::is_empty));
    }

    #[test]
    fn an_entitys_ops_keep_their_order_and_wait_for_each_other() {
        use OpKind::{Create, Delete, Update};
        // Entity "a" has a delete, then a create (a record made anew).
        let ops = [
            op(1, Delete, "a"),
            op(2, Delete, "b"),
            op(3, Create, "a"),
            op(4, Update, "c"),
            op(5, Update, "a"),
        ];
        let mine: Vec<&WriteOp> = ops.iter().collect();
        let b = batches(&mine, 10);
        assert_eq!(ids(&b), [vec![1, 2], vec![3], vec![4, 5]]);
        assert_eq!(waits_for(&b), [vec![], vec![0], vec![1]]);
        let small = batches(&mine, 1);
        assert_eq!(
            waits_for(&small),
            [vec![], vec![], vec![0], vec![], vec![2]]
        );
    }
}
